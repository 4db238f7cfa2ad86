// The whole stack, decided before anything is created: names, the TLS source, the proxy and what it
// serves, each app's secrets and release, backups and the public URLs. VpsStack turns this into
// resources. Pure: the sites are read by the caller and passed in.
import { AppConfig, durationSeconds, StackConfig } from "../config";
import { SiteFile, siteFingerprint } from "../config/static-files";
import { nginxSite, NginxSite } from "./proxy";
import { AppRelease, appRelease, releaseNames } from "./release";
import { appUrls } from "./routes";
import { planTls, TlsSource } from "./tls";
import { parseFirewallRule, ProvisionPlan } from "../config/provision";
import { sizeToMiB } from "../config/units";

/** Where an app's secret variable comes from. */
export type SecretSource = { from: "postgres" } | { from: "redis" } | { from: "generated" } | { from: "config"; value: string };

export interface AppPlan {
    app: AppConfig;
    /** Look the tag's digest up on every run; never for the stack's own pinned Nginx image. */
    trackTag: boolean;
    secrets: Record<string, SecretSource>;
    /** Whether it joins the data network (it uses PostgreSQL or Redis). */
    usesData: boolean;
    /** A static app: where its site lives in the container, and the files to upload, if any. */
    static?: { root: string; upload?: { files: SiteFile[]; dir: string } };
    /** Container mode only: the release its containers belong to. */
    release?: AppRelease;
}

export type ProxyPlan =
    | {
          mode: "container";
          containerName: string;
          image: string;
          httpPort: number;
          httpsPort: number;
          /** 127.0.0.1 on dev: the stack is reachable from this machine only. */
          bindAddress: string;
          memory: string;
          cpus: number;
          pidsLimit: number;
          site: Omit<NginxSite, "certificatePath" | "keyPath">;
      }
    | { mode: "host"; site: Omit<NginxSite, "certificatePath" | "keyPath"> };

export interface StackPlan {
    stack: string;
    /** `vps-stack-<stack>`. */
    prefix: string;
    /** SSH to the VPS; undefined on dev (the local engine). */
    ssh?: NonNullable<StackConfig["host"]>;
    /** host.provision: what makes the host ready, run before anything else touches it. */
    provision?: ProvisionPlan & { privateKeyPath?: string };
    /** Private registries, one login per server; the password is secrets.REGISTRY_PASSWORD. */
    registries: { address: string; username: string; password: string }[];
    secrets: { postgresPasswordLength: number; redisPasswordLength: number; wal: boolean; generated: string[]; rotate: Record<string, string> };
    tls: TlsSource;
    proxy: ProxyPlan;
    apps: AppPlan[];
    /** Undefined when backups are disabled. */
    backup?: StackConfig["backup"];
    /** The off-site copy (backup.offsite), with its secrets and defaults resolved. */
    offsite?: OffsitePlan;
    urls: Record<string, { url: string; healthUrl: string }>;
}

export interface OffsitePlan {
    endpoint: string;
    bucket: string;
    region: string;
    pathStyle?: boolean;
    /** Path inside the bucket: `vps-stack/<stack>` unless set. */
    prefix: string;
    accessKeyId: string;
    secretAccessKey: string;
    passphrase: string;
    image: string;
    memory: string;
    cpus: number;
    pidsLimit: number;
    /** Half of backup.rpoSeconds: an upload that starts just before the loss still bounds it. */
    uploadIntervalSeconds: number;
    /** The backup check fails when the last upload is older than this. */
    maxAgeSeconds: number;
}

function planOffsite(cfg: StackConfig): OffsitePlan | undefined {
    const o = cfg.backup.offsite;
    if (!cfg.backup.enabled || !o) return undefined;
    const interval = Math.max(5, Math.floor(cfg.backup.rpoSeconds / 2));
    return {
        endpoint: o.endpoint,
        bucket: o.bucket,
        region: o.region,
        pathStyle: o.pathStyle,
        prefix: o.prefix ?? `${cfg.project}/${cfg.stack}`,
        accessKeyId: o.accessKeyId,
        secretAccessKey: cfg.secrets.OFFSITE_SECRET_ACCESS_KEY,
        passphrase: cfg.secrets.OFFSITE_PASSPHRASE,
        image: o.image,
        memory: o.memory,
        cpus: o.cpus,
        pidsLimit: o.pidsLimit,
        uploadIntervalSeconds: interval,
        // Ten missed uploads, and never under ten minutes: a slow store is not an incident, a dead one is.
        maxAgeSeconds: Math.max(600, interval * 10),
    };
}

function planApp(cfg: StackConfig, app: AppConfig, files: SiteFile[] | undefined, containerProxy: boolean): AppPlan {
    const secrets: Record<string, SecretSource> = {};
    if (app.database) secrets.DATABASE_URL = { from: "postgres" };
    if (app.redis) secrets.REDIS_URL = { from: "redis" };
    for (const [n, spec] of Object.entries(app.secrets)) secrets[n] = spec === "generate" ? { from: "generated" } : { from: "config", value: cfg.secrets[n] };
    return {
        app,
        // The stack's own Nginx image is pinned and pulled like the proxy's.
        trackTag: app.kind === "static" && app.image === cfg.nginx.image ? false : app.trackTag,
        secrets,
        usesData: app.database || app.redis,
        static:
            app.kind === "static" && app.static
                ? { root: app.static.root, ...(files ? { upload: { files, dir: `site-${app.name}-${siteFingerprint(files)}` } } : {}) }
                : undefined,
        // Container mode: apps are released beside their previous release and gated.
        release: containerProxy
            ? {
                  id: appRelease(cfg, app, files),
                  healthTimeoutSeconds: durationSeconds(cfg.releases.healthTimeout),
                  proxy: { container: `${cfg.prefix}-nginx` },
                  drainTimeoutSeconds: durationSeconds(cfg.releases.drainTimeout),
                  stopTimeoutSeconds: durationSeconds(cfg.releases.stopTimeout),
                  keepImages: cfg.releases.keepImages,
              }
            : undefined,
    };
}

function planProvision(cfg: StackConfig): (ProvisionPlan & { privateKeyPath?: string }) | undefined {
    const host = cfg.host;
    const p = host?.provision;
    if (!host || !p) return undefined;
    // The environment check resolved the default keys (the .pub beside host.privateKeyPath).
    if (!p.authorizedKeys?.length) throw new Error("planProvision: host.provision.authorizedKeys was not resolved");
    // The proxy's published ports are the web ports to open; host nginx listens on 80/443 itself.
    const web = cfg.nginx.mode === "container" ? [cfg.nginx.httpPort, cfg.nginx.httpsPort] : [80, 443];
    return {
        user: host.user,
        provisionUser: p.user,
        privateKeyPath: p.privateKeyPath ?? host.privateKeyPath,
        sshPort: host.port,
        webPorts: web,
        authorizedKeys: p.authorizedKeys,
        swap: p.swap === "auto" || p.swap === "off" ? p.swap : Math.round(sizeToMiB(p.swap)),
        unattendedUpgrades: p.unattendedUpgrades,
        journaldMaxUseMiB: Math.round(sizeToMiB(p.journaldMaxUse)),
        maxAuthTries: p.maxAuthTries,
        loginGraceTime: p.loginGraceTime,
        allow: host.firewall.allow.map((r) => parseFirewallRule(r)!),
    };
}

/** `sites`: the files of each static app that uploads one (readAppSites), by app name. */
export function planStack(cfg: StackConfig, sites: Record<string, SiteFile[]> = {}): StackPlan {
    const containerProxy = cfg.nginx.mode === "container";
    const apps = cfg.apps.map((a) => planApp(cfg, a, sites[a.name], containerProxy));
    // What the proxy's upstreams name: a release's own alias, so old and new releases never share one.
    const upstreamHosts = Object.fromEntries(apps.map((a) => [a.app.name, a.release ? releaseNames(cfg.prefix, a.app.name, a.release.id, a.app.replicas).alias : a.app.name]));
    const registries = [...new Map(cfg.apps.filter((a) => a.registry).map((a) => [a.registry!.server, a.registry!])).values()];
    return {
        stack: cfg.stack,
        prefix: cfg.prefix,
        ssh: cfg.host,
        provision: planProvision(cfg),
        registries: registries.map((r) => ({ address: r.server, username: r.username, password: cfg.secrets.REGISTRY_PASSWORD })),
        secrets: {
            postgresPasswordLength: cfg.postgres.passwordLength,
            redisPasswordLength: cfg.redis.passwordLength,
            wal: cfg.backup.enabled && cfg.backup.pitr.enabled,
            generated: cfg.apps.flatMap((a) => Object.entries(a.secrets).filter(([, s]) => s === "generate").map(([n]) => n)),
            rotate: cfg.rotate,
        },
        tls: planTls(cfg),
        proxy: containerProxy
            ? {
                  mode: "container",
                  containerName: `${cfg.prefix}-nginx`,
                  image: cfg.nginx.image,
                  httpPort: cfg.nginx.httpPort,
                  httpsPort: cfg.nginx.httpsPort,
                  bindAddress: cfg.local ? "127.0.0.1" : "0.0.0.0",
                  memory: cfg.nginx.memory,
                  cpus: cfg.nginx.cpus,
                  pidsLimit: cfg.nginx.pidsLimit,
                  site: nginxSite(cfg, upstreamHosts),
              }
            : { mode: "host", site: nginxSite(cfg) },
        apps,
        backup: cfg.backup.enabled ? cfg.backup : undefined,
        offsite: planOffsite(cfg),
        urls: appUrls(cfg),
    };
}
