// The whole stack on one host, built from a plan (plan/stack.ts): networks, secrets, certificates,
// PostgreSQL, Redis, the apps, the proxy and backups. Every decision is the plan's; this file only
// creates, in the order the resources depend on each other.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "../config";
import { materializeSite, readAppSites } from "../config/static-files";
import { AppPlan, planStack, StackPlan } from "../plan/stack";
import { acmeCommands } from "../render/acme";
import { BACKUP_MOUNT, backupCommands } from "../render/backup";
import { offsiteCommands } from "../render/offsite";
import { onHost } from "../render/operator";
import { hostSiteCommand, hostSiteScript } from "../render/host-nginx";
import { nginxReloadCommand } from "../render/proxy";
import { WAL_ROLE, WAL_SLOT } from "../render/services";
import { hasDestination, SMTP_PASSWORD_SECRET, webhookSecret } from "../config/alerts";
import { alertsCommands } from "../render/alerts";
import { AcmeClient } from "./acme-client";
import { AlertWatcher } from "./alert-watcher";
import { ApiService } from "./api-service";
import { BackupJob } from "./backup-job";
import { HostNginxSite } from "./host-nginx-site";
import { pullImage } from "./image";
import { NginxProxy } from "./nginx-proxy";
import { OffsiteUploader } from "./offsite-uploader";
import { PostgresService } from "./postgres-service";
import { RedisService } from "./redis-service";
import { ServedCertificate, StackScope } from "./scope";
import { StackCertificates } from "./stack-certificates";
import { StackNetworks } from "./stack-networks";
import { StackSecrets } from "./stack-secrets";
import { VpsHost } from "./vps-host";

export const VPS_STACK_TYPE = "vps-stack:index:VpsStack";

export interface VpsStackOptions extends pulumi.ComponentResourceOptions {
    /** Where known_hosts and SSH control sockets go (tests point it at a temporary directory). */
    stateDir?: string;
}

export class VpsStack extends pulumi.ComponentResource {
    /** What this stack was built from. */
    readonly plan: StackPlan;
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
    /** Where everything a restore touches is on the host, for scripts/restore.sh. */
    readonly restoreTargets?: {
        ssh: string;
        postgresContainer: string;
        postgresVolume: string;
        backupContainer: string;
        directory: string;
        /** The WAL receiver (backup.pitr); null without point-in-time recovery. */
        walContainer: string | null;
        /** The uploader, which also fetches from the store (--from-offsite); null without backup.offsite. */
        offsiteContainer: string | null;
        /** The apps' archived volumes: "<app>-<name>" → the Docker volume. */
        appVolumes: Record<string, string>;
    };
    readonly offsite?: OffsiteUploader;
    readonly offsiteCommands?: ReturnType<typeof offsiteCommands>;
    readonly urls: Record<string, { url: string; healthUrl: string }>;
    /** The watcher (alerts with a destination). */
    readonly alerts?: AlertWatcher;
    readonly alertsCommands?: ReturnType<typeof alertsCommands>;

    constructor(name: string, cfg: StackConfig, opts: VpsStackOptions = {}) {
        super(VPS_STACK_TYPE, name, {}, opts);
        const child = { parent: this };
        const plan = (this.plan = planStack(cfg, readAppSites(cfg.apps)));

        this.host = new VpsHost(
            `${name}-host`,
            {
                ssh: plan.ssh,
                provision: plan.provision,
                registryAuth: plan.registries.map((r) => ({ ...r, password: pulumi.secret(r.password) })),
                stateDir: opts.stateDir,
            },
            child,
        );
        const scope: StackScope = { host: this.host, prefix: plan.prefix, stack: plan.stack };
        this.networks = new StackNetworks(`${name}-networks`, scope, child);
        this.secrets = new StackSecrets(`${name}-secrets`, plan.secrets, child);

        // The certificate's files, unless an ACME client keeps it (created once the apps exist).
        if (plan.tls.mode === "provided") {
            this.serverCertificate = { certPem: pulumi.output(plan.tls.certificatePem), keyPem: pulumi.secret(plan.tls.keyPem) };
        } else if (plan.tls.mode === "ca") {
            this.certificates = new StackCertificates(`${name}-tls`, { ...plan.tls, stack: plan.stack }, child);
            this.serverCertificate = { certPem: this.certificates.certPem, keyPem: this.certificates.keyPem };
        }

        const data = this.networks.data.name;
        const wal = this.secrets.walPassword ? { role: WAL_ROLE, slot: WAL_SLOT, password: this.secrets.walPassword } : undefined;
        this.postgres = new PostgresService(`${name}-postgres`, { ...scope, network: data, password: this.secrets.postgresPassword, wal, ...cfg.postgres }, child);
        this.redis = new RedisService(`${name}-redis`, { ...scope, network: data, password: this.secrets.redisPassword, ...cfg.redis }, child);

        // Container mode: the release gates ask the apps' health paths with the proxy's own image.
        const proxyImage =
            plan.proxy.mode === "container" ? pullImage(`${name}-nginx-image`, { ref: plan.proxy.image, trackTag: false }, { parent: this, provider: this.host.provider }) : undefined;
        this.apps = Object.fromEntries(plan.apps.map((a) => [a.app.name, this.createApp(name, scope, a, proxyImage)]));

        const upstreams = Object.values(this.apps).flatMap((a) => a.containers);
        if (plan.tls.mode === "acme") {
            this.acme = new AcmeClient(`${name}-acme`, { ...scope, tls: plan.tls, network: this.networks.edge.name }, child);
            this.acmeCommands = acmeCommands(this.acme.containerName, plan.ssh);
        }
        const certificate: ServedCertificate = this.acme ? { source: "acme", client: this.acme } : { source: "files", ...this.serverCertificate! };

        if (plan.proxy.mode === "host") {
            this.hostSite = new HostNginxSite(`${name}-host-nginx`, { ...scope, site: plan.proxy.site, certificate, upstreams }, child);
            this.acme?.issueThenReload(`${name}-acme-issue`, hostSiteCommand(hostSiteScript("reload-if-changed", plan.prefix, { watch: this.acme.servedFile })), [this.hostSite.site]);
        } else {
            const { mode: _mode, containerName: _containerName, image: _image, ...proxy } = plan.proxy;
            this.proxy = new NginxProxy(
                `${name}-nginx`,
                {
                    ...scope,
                    ...proxy,
                    image: proxyImage!,
                    certificate,
                    edgeNetwork: this.networks.edge.name,
                    upstreams: Object.values(this.apps).flatMap((a) => (a.gate ? [a.gate] : a.containers)),
                    reloadOn: upstreams.map((c) => c.id),
                },
                child,
            );
            this.acme?.issueThenReload(`${name}-acme-issue`, nginxReloadCommand(this.proxy.containerName), [this.proxy.container, this.proxy.configCommand]);
        }

        if (plan.backup) {
            const { enabled: _enabled, offsite: _offsite, rpoSeconds: _rpo, ...backup } = plan.backup;
            const pg = this.postgres;
            this.backup = new BackupJob(
                `${name}-backup`,
                {
                    ...scope,
                    image: pg.imageId,
                    dataNetwork: data,
                    postgres: { host: pg.hostAlias, port: pg.port, database: pg.database, user: pg.user, password: pg.password },
                    wal,
                    ...backup,
                    offsiteMaxAgeSeconds: plan.offsite?.maxAgeSeconds,
                    appVolumes: Object.values(this.apps).flatMap((app) =>
                        app.volumes.filter((v) => v.backup).map((v) => ({ id: `${app.appName}-${v.name}`, volumeName: v.volume.name })),
                    ),
                    dependsOn: [pg],
                },
                child,
            );
            this.backupCommands = backupCommands(this.backup.containerName, plan.ssh);
            if (plan.offsite) {
                this.offsite = new OffsiteUploader(
                    `${name}-offsite`,
                    { ...scope, offsite: plan.offsite, directory: backup.directory, backupMount: BACKUP_MOUNT, retention: backup.retention, timezone: backup.timezone },
                    child,
                );
                this.offsiteCommands = offsiteCommands(this.offsite.containerName, plan.ssh);
            } else if (plan.stack === "prod") {
                // Not an error (a first deploy may come before the bucket), but never silent.
                pulumi.log.warn("backups are local only: they are lost with the VPS. Set backup.offsite (docs/backups.md, \"Off-site copy\").", this);
            }
            this.restoreTargets = {
                ssh: onHost(plan.ssh, "").trim(),
                postgresContainer: pg.containerName,
                postgresVolume: pg.volumeName,
                backupContainer: this.backup.containerName,
                directory: backup.directory,
                walContainer: this.backup.walContainerName ?? null,
                offsiteContainer: this.offsite?.containerName ?? null,
                appVolumes: Object.fromEntries(
                    Object.values(this.apps).flatMap((app) => app.volumes.filter((v) => v.backup).map((v) => [`${app.appName}-${v.name}`, `${plan.prefix}-${app.appName}-${v.name}`])),
                ),
            };
        }

        this.alerts = this.createAlerts(name, scope, cfg);
        this.alertsCommands = this.alerts && alertsCommands(this.alerts.containerName, plan.ssh);

        this.urls = plan.urls;
        this.registerOutputs({ urls: this.urls });
    }

    /** The watcher, last: it watches everything above. Prod without a destination is warned about. */
    private createAlerts(name: string, scope: StackScope, cfg: StackConfig): AlertWatcher | undefined {
        const a = cfg.alerts;
        if (!hasDestination(a)) {
            // Not an error (a first deploy may come before the webhook), but never silent.
            if (cfg.stack === "prod") pulumi.log.warn('no alert destination: nobody is told when a backup fails or the disk fills. Set alerts.webhooks or alerts.email (README, "Alerts").', this);
            return undefined;
        }
        const { webhooks, email, image, insecure: _insecure, healthUrls, ...settings } = a;
        return new AlertWatcher(
            `${name}-alerts`,
            {
                ...scope,
                ...settings,
                image: image ?? cfg.nginx.image,
                email,
                webhooks: webhooks.map((w) => ({ kind: w.kind, url: pulumi.secret(cfg.secrets[webhookSecret(w)]) })),
                smtpPassword: email?.user ? pulumi.secret(cfg.secrets[SMTP_PASSWORD_SECRET]) : undefined,
                backupDirectory: this.backup ? cfg.backup.directory : undefined,
                expected: [this.postgres.containerName, this.redis.containerName, this.proxy?.containerName, this.backup?.containerName, this.backup?.walContainerName, this.offsite?.containerName, this.acme?.containerName].filter(
                    (c): c is string => !!c,
                ),
                healthUrls: healthUrls && !cfg.local ? Object.values(this.plan.urls).map((u) => u.healthUrl) : [],
            },
            { parent: this, dependsOn: [this.postgres, this.redis, ...Object.values(this.apps), ...(this.proxy ? [this.proxy] : []), ...(this.backup ? [this.backup] : [])] },
        );
    }

    /** One app: its secrets wired to the stack's, its site copied to the host, its containers. */
    private createApp(name: string, scope: StackScope, a: AppPlan, proxyImage?: { imageId: pulumi.Output<string> } & pulumi.Resource): ApiService {
        const secrets: Record<string, pulumi.Input<string>> = {};
        for (const [n, s] of Object.entries(a.secrets)) {
            switch (s.from) {
                case "postgres":
                    secrets[n] = this.postgres.connectionString;
                    break;
                case "redis":
                    secrets[n] = this.redis.url;
                    break;
                case "generated":
                    secrets[n] = this.secrets.generated[n];
                    break;
                case "config":
                    secrets[n] = pulumi.secret(s.value);
                    break;
                default: {
                    const never: never = s;
                    throw new pulumi.ResourceError(`app "${a.app.name}": unknown secret source ${JSON.stringify(never)}`, this);
                }
            }
        }
        // A built site is written out once per content on this machine, copied to the host over SFTP and
        // mounted read-only: it never travels in the stack's state.
        let staticSite: { root: string; hostDir?: pulumi.Input<string>; ready?: pulumi.Resource[] } | undefined = a.static && { root: a.static.root };
        if (a.static?.upload) {
            const { files, dir } = a.static.upload;
            const local = path.join(scope.host.stateDir, "sites", dir, "site");
            materializeSite(files, local);
            const copy = scope.host.copyDirectory(dir, scope.stack, local);
            staticSite = { root: a.static.root, hostDir: copy.path, ready: copy.ready };
        }
        return new ApiService(
            `${name}-app-${a.app.name}`,
            {
                ...a.app,
                ...scope,
                trackTag: a.trackTag,
                staticSite,
                secrets,
                edgeNetwork: this.networks.edge.name,
                dataNetwork: a.usesData ? this.networks.data.name : undefined,
                release: a.release && proxyImage ? { ...a.release, proxy: { ...a.release.proxy, image: proxyImage.imageId } } : undefined,
            },
            // Apps start after the data services are healthy.
            { parent: this, dependsOn: [this.postgres, this.redis, ...(proxyImage ? [proxyImage] : [])] },
        );
    }
}
