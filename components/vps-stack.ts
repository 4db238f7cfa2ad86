// The whole stack on one host: networks, secrets, certificates, PostgreSQL, Redis, the apps and the proxy,
// wired from a validated StackConfig. index.ts only loads the config, builds this and exports outputs.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { AcmeClient, acmeCommands } from "./acme-client";
import { ApiService } from "./api-service";
import { BackupJob, backupCommands } from "./backup-job";
import { acmeDirectoryUrl, StackConfig } from "./config";
import { HostNginxSite, hostSiteCommand, hostSiteScript } from "./host-nginx-site";
import { NginxProxy, nginxReloadCommand } from "./nginx-proxy";
import { PostgresService } from "./postgres-service";
import { RedisService } from "./redis-service";
import { hostRoutes, NginxSite } from "./render/nginx";
import { StackCertificates } from "./stack-certificates";
import { StackNetworks } from "./stack-networks";
import { StackSecrets } from "./stack-secrets";
import { pullImage } from "./image";
import { fingerprint, releaseId } from "./release";
import { materializeSite, readSite, SiteFile, siteFingerprint } from "./static-files";
import { VpsHost } from "./vps-host";

export const VPS_STACK_TYPE = "vps-stack:index:VpsStack";

export interface VpsStackOptions extends pulumi.ComponentResourceOptions {
    /** Where known_hosts and SSH control sockets go (tests point it at a temporary directory). */
    stateDir?: string;
}

/** Public URL and health URL of each app; pure, exported for tests. */
export function appUrls(cfg: Pick<StackConfig, "apps" | "nginx">): Record<string, { url: string; healthUrl: string }> {
    const port = cfg.nginx.httpsPort === 443 ? "" : `:${cfg.nginx.httpsPort}`;
    const routes = hostRoutes(cfg.apps.map((a) => ({ ...a, servers: [] })));
    return Object.fromEntries(
        cfg.apps.map((a) => {
            const host = a.hosts[0];
            const base = `https://${host}${port}`;
            const ownsHealth = routes.find((r) => r.host === host)?.healthApp.name === a.name;
            return [a.name, { url: `${base}${a.paths[0]}`, healthUrl: ownsHealth ? `${base}/health` : `${base}${a.healthPath}` }];
        }),
    );
}

/** See appRelease: a change here releases every app once. */
export const RELEASE_FORMAT = 1;

/**
 * The release id of an app (see release.ts): everything its containers are made of, and nothing that only
 * the proxy uses (routes, per-app proxy settings), so a header change is a reload, not a release. Secret
 * values appear only as fingerprints. Pure, exported for tests.
 */
export function appRelease(cfg: Pick<StackConfig, "apps" | "secrets" | "rotate" | "postgres" | "redis" | "nginx">, app: StackConfig["apps"][number], site?: SiteFile[]): string {
    const { proxy: _proxy, hosts: _hosts, paths: _paths, ...spec } = app;
    const provided = Object.entries(app.secrets)
        .filter(([, s]) => s === "required")
        .map(([n]) => [n, fingerprint(cfg.secrets[n] ?? "")]);
    const generated = Object.entries(app.secrets).filter(([, s]) => s === "generate").map(([n]) => n);
    return releaseId({
        // Bumped when vps-stack changes what an app's containers are made of (defaults, rendered files),
        // so that such a change is a release too, not a replacement in place.
        format: RELEASE_FORMAT,
        spec,
        provided: Object.fromEntries(provided),
        // Only the rotation tokens of this app's own secrets: rotating another one is not its release.
        rotate: Object.fromEntries(generated.filter((n) => cfg.rotate[n] !== undefined).map((n) => [n, cfg.rotate[n]])),
        // DATABASE_URL and REDIS_URL are made of these.
        database: app.database ? { user: cfg.postgres.user, database: cfg.postgres.database, passwordLength: cfg.postgres.passwordLength, rotate: cfg.rotate.postgres } : undefined,
        redis: app.redis ? { passwordLength: cfg.redis.passwordLength, rotate: cfg.rotate.redis } : undefined,
        // A static site's files, and the stack's Nginx image that serves them by default.
        site: site ? fingerprint(site.map((f) => `${f.path}\0${f.contentBase64}`).join("\0")) : undefined,
        staticImage: app.kind === "static" ? app.image : undefined,
    });
}

/** What the proxy serves, from the stack's config (certificate paths are the proxy's business). */
export function nginxSite(
    cfg: Pick<StackConfig, "apps" | "nginx"> & Partial<Pick<StackConfig, "releases">>,
    /** Container mode: each app's upstream host (its release's alias); default the app's name. */
    upstreamHosts: Record<string, string> = {},
): Omit<NginxSite, "certificatePath" | "keyPath"> {
    const host = cfg.nginx.mode === "host";
    return {
        apps: cfg.apps.map((a) => ({
            name: a.name,
            // Container mode: the release's alias on the edge network. Host mode: its 127.0.0.1 ports.
            // (The config requires hostPort in host mode.)
            servers: host ? Array.from({ length: a.replicas }, (_, i) => `127.0.0.1:${a.hostPort! + i}`) : [`${upstreamHosts[a.name] ?? a.name}:${a.port}`],
            hosts: a.hosts,
            paths: a.paths,
            healthPath: a.healthPath,
            clientMaxBodySize: a.proxy?.clientMaxBodySize,
            rateLimit: a.proxy?.rateLimit,
            timeouts: a.proxy?.timeouts,
            headers: a.proxy?.headers,
        })),
        httpsPort: cfg.nginx.httpsPort,
        clientMaxBodySize: cfg.nginx.clientMaxBodySize,
        rateLimit: cfg.nginx.rateLimit,
        timeouts: cfg.nginx.timeouts,
        hsts: cfg.nginx.hsts,
        keepalive: cfg.nginx.keepalive,
        // The host's nginx listens on the public ports itself; the container maps them onto 80/443.
        ...(host ? { listen: { http: cfg.nginx.httpPort, https: cfg.nginx.httpsPort } } : {}),
        // The proxy container's old workers give up on requests still held after a release's drain.
        ...(!host && cfg.releases ? { drainTimeoutSeconds: durationSeconds(cfg.releases.drainTimeout) } : {}),
    };
}

/** "90s", "5m", "12h" in seconds (the config checked the format). */
export function durationSeconds(d: string): number {
    const m = /^(\d+)(ms|s|m|h)$/.exec(d);
    if (!m) throw new Error(`durationSeconds: unsupported duration ${d}`);
    return Math.max(1, Math.round(Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "ms" | "s" | "m" | "h"]));
}

export class VpsStack extends pulumi.ComponentResource {
    readonly host: VpsHost;
    readonly networks: StackNetworks;
    readonly secrets: StackSecrets;
    /** The per-stack CA and server certificate (tls.mode "ca" only). */
    readonly certificates?: StackCertificates;
    /** What the proxy serves: made by the stack's CA or provided in config (not with tls.mode "acme"). */
    readonly serverCertificate?: { certPem: pulumi.Output<string>; keyPem: pulumi.Output<string> };
    /** The ACME client container (tls.mode "acme"). */
    readonly acme?: AcmeClient;
    /** Commands an operator runs for the ACME certificate (tls.mode "acme"). */
    readonly acmeCommands?: ReturnType<typeof acmeCommands>;
    readonly postgres: PostgresService;
    readonly redis: RedisService;
    readonly apps: Record<string, ApiService>;
    /** The proxy container (nginx.mode "container"). */
    readonly proxy?: NginxProxy;
    /** The site in the host's own nginx (nginx.mode "host"). */
    readonly hostSite?: HostNginxSite;
    readonly backup?: BackupJob;
    /** Commands an operator runs for backups (empty when backups are disabled). */
    readonly backupCommands?: ReturnType<typeof backupCommands>;
    readonly urls: Record<string, { url: string; healthUrl: string }>;

    constructor(name: string, cfg: StackConfig, opts: VpsStackOptions = {}) {
        super(VPS_STACK_TYPE, name, {}, opts);
        const child = { parent: this };
        const { prefix, stack } = cfg;

        const registries = [...new Map(cfg.apps.filter((a) => a.registry).map((a) => [a.registry!.server, a.registry!])).values()];
        this.host = new VpsHost(
            `${name}-host`,
            {
                ssh: cfg.host && {
                    address: cfg.host.address,
                    port: cfg.host.port,
                    user: cfg.host.user,
                    hostKey: cfg.host.hostKey,
                    privateKeyPath: cfg.host.privateKeyPath,
                    controlPersist: cfg.host.controlPersist,
                },
                registryAuth: registries.map((r) => ({ address: r.server, username: r.username, password: pulumi.secret(cfg.secrets.REGISTRY_PASSWORD) })),
                stateDir: opts.stateDir,
            },
            child,
        );
        const host = this.host;

        this.networks = new StackNetworks(`${name}-networks`, { host, prefix, stack }, child);

        this.secrets = new StackSecrets(
            `${name}-secrets`,
            {
                postgresPasswordLength: cfg.postgres.passwordLength,
                redisPasswordLength: cfg.redis.passwordLength,
                generated: cfg.apps.flatMap((a) => Object.entries(a.secrets).filter(([, s]) => s === "generate").map(([n]) => n)),
                rotate: cfg.rotate,
            },
            child,
        );

        if (cfg.tls.mode === "provided") {
            // Validated at config time: parses, matches its key, valid now, covers every host.
            this.serverCertificate = {
                certPem: pulumi.output(cfg.secrets.TLS_CERTIFICATE),
                keyPem: pulumi.secret(cfg.secrets.TLS_PRIVATE_KEY),
            };
        } else if (cfg.tls.mode === "ca") {
            const dnsNames = [...new Set([cfg.domain, ...cfg.apps.flatMap((a) => a.hosts), ...(cfg.local ? ["localhost"] : [])])];
            this.certificates = new StackCertificates(
                `${name}-tls`,
                {
                    dnsNames,
                    ipAddresses: cfg.local ? ["127.0.0.1"] : [],
                    organization: cfg.tls.organization,
                    validityDays: cfg.tls.validityDays,
                    caValidityDays: cfg.tls.caValidityDays,
                    stack,
                },
                child,
            );
            this.serverCertificate = { certPem: this.certificates.certPem, keyPem: this.certificates.keyPem };
        }

        this.postgres = new PostgresService(
            `${name}-postgres`,
            { host, prefix, stack, network: this.networks.data.name, password: this.secrets.postgresPassword, ...cfg.postgres },
            child,
        );
        this.redis = new RedisService(
            `${name}-redis`,
            { host, prefix, stack, network: this.networks.data.name, password: this.secrets.redisPassword, ...cfg.redis },
            child,
        );

        // Container mode: apps are released beside their previous release and gated; the gate asks the
        // app's health path from the proxy's network, with the proxy's image.
        const containerProxy = cfg.nginx.mode === "container";
        const proxyImage = containerProxy ? pullImage(`${name}-nginx-image`, { ref: cfg.nginx.image, trackTag: false }, { parent: this, provider: host.provider }) : undefined;
        const proxyContainer = `${prefix}-nginx`;
        this.apps = Object.fromEntries(
            cfg.apps.map((app) => {
                const secrets: Record<string, pulumi.Input<string>> = {};
                if (app.database) secrets.DATABASE_URL = this.postgres.connectionString;
                if (app.redis) secrets.REDIS_URL = this.redis.url;
                for (const [n, spec] of Object.entries(app.secrets)) {
                    secrets[n] = spec === "generate" ? this.secrets.generated[n] : pulumi.secret(cfg.secrets[n]);
                }
                // A built site is written out once per content on this machine, copied to the host over
                // SFTP and mounted read-only: it never travels in the stack's state.
                const files = app.kind === "static" && app.static && (app.static.dir || app.static.archive) ? readSite(app.static) : undefined;
                let staticSite: { root: string; hostDir?: pulumi.Input<string>; ready?: pulumi.Resource[] } | undefined =
                    app.kind === "static" && app.static ? { root: app.static.root } : undefined;
                if (files) {
                    const dir = `site-${app.name}-${siteFingerprint(files)}`;
                    const local = path.join(host.stateDir, "sites", dir, "site");
                    materializeSite(files, local);
                    const copy = host.copyDirectory(dir, stack, local);
                    staticSite = { root: app.static!.root, hostDir: copy.path, ready: copy.ready };
                }
                const service = new ApiService(
                    `${name}-app-${app.name}`,
                    {
                        ...app,
                        // The stack's own Nginx image is pinned and pulled like the proxy's.
                        trackTag: app.kind === "static" && app.image === cfg.nginx.image ? false : app.trackTag,
                        staticSite,
                        host,
                        prefix,
                        stack,
                        secrets,
                        edgeNetwork: this.networks.edge.name,
                        dataNetwork: app.database || app.redis ? this.networks.data.name : undefined,
                        release: proxyImage
                            ? {
                                  id: appRelease(cfg, app, files),
                                  healthTimeoutSeconds: durationSeconds(cfg.releases.healthTimeout),
                                  proxy: { container: proxyContainer, image: proxyImage.imageId },
                                  drainTimeoutSeconds: durationSeconds(cfg.releases.drainTimeout),
                                  stopTimeoutSeconds: durationSeconds(cfg.releases.stopTimeout),
                                  keepImages: cfg.releases.keepImages,
                              }
                            : undefined,
                    },
                    // Apps start after the data services are healthy.
                    { parent: this, dependsOn: [this.postgres, this.redis, ...(proxyImage ? [proxyImage] : [])] },
                );
                return [app.name, service];
            }),
        );

        const upstreams = Object.values(this.apps).flatMap((a) => a.containers);
        const upstreamHosts = Object.fromEntries(Object.values(this.apps).map((a) => [a.appName, a.upstreamHost]));
        if (cfg.tls.mode === "acme") {
            const acme = cfg.tls.acme;
            this.acme = new AcmeClient(
                `${name}-acme`,
                {
                    host,
                    prefix,
                    stack,
                    image: acme.image,
                    // Every name the proxy answers for; the stack's domain first (the certificate's subject).
                    domains: [...new Set([cfg.domain, ...cfg.apps.flatMap((a) => a.hosts)])],
                    email: acme.email!,
                    server: acmeDirectoryUrl(acme),
                    caCertificate: acme.caCertificate,
                    renewIntervalSeconds: durationSeconds(acme.renewInterval),
                    memory: acme.memory,
                    network: this.networks.edge.name,
                    storage: cfg.nginx.mode === "host" ? "host" : "volumes",
                },
                child,
            );
            this.acmeCommands = acmeCommands(this.acme.containerName, cfg.host);
        }
        const cert = this.serverCertificate;
        if (cfg.nginx.mode === "host") {
            this.hostSite = new HostNginxSite(
                `${name}-host-nginx`,
                { host, prefix, site: nginxSite(cfg), certificatePem: cert?.certPem, keyPem: cert?.keyPem, acme: this.acme, upstreams },
                child,
            );
            this.acme?.issueThenReload(`${name}-acme-issue`, hostSiteCommand(hostSiteScript("reload-if-changed", prefix, { watch: this.acme.servedFile })), [this.hostSite.site]);
        } else {
            this.proxy = new NginxProxy(
                `${name}-nginx`,
                {
                    host,
                    prefix,
                    stack,
                    image: proxyImage!,
                    site: nginxSite(cfg, upstreamHosts),
                    httpPort: cfg.nginx.httpPort,
                    httpsPort: cfg.nginx.httpsPort,
                    bindAddress: cfg.local ? "127.0.0.1" : "0.0.0.0",
                    certificatePem: cert?.certPem,
                    keyPem: cert?.keyPem,
                    acme: this.acme,
                    edgeNetwork: this.networks.edge.name,
                    upstreams: Object.values(this.apps).flatMap((a) => (a.gate ? [a.gate] : a.containers)),
                    reloadOn: upstreams.map((c) => c.id),
                    memory: cfg.nginx.memory,
                    cpus: cfg.nginx.cpus,
                },
                child,
            );
            this.acme?.issueThenReload(`${name}-acme-issue`, nginxReloadCommand(this.proxy.containerName), [this.proxy.container, this.proxy.configCommand]);
        }

        if (cfg.backup.enabled) {
            this.backup = new BackupJob(
                `${name}-backup`,
                {
                    host,
                    prefix,
                    stack,
                    image: this.postgres.imageId,
                    dataNetwork: this.networks.data.name,
                    postgres: {
                        host: this.postgres.hostAlias,
                        port: this.postgres.port,
                        database: this.postgres.database,
                        user: this.postgres.user,
                        password: this.postgres.password,
                    },
                    ...cfg.backup,
                    dependsOn: [this.postgres],
                },
                child,
            );
            this.backupCommands = backupCommands(this.backup.containerName, cfg.host);
        }

        this.urls = appUrls(cfg);
        this.registerOutputs({ urls: this.urls });
    }
}
