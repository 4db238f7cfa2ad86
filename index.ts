// vps-stack: load and validate the stack's config, build the stack, export its outputs. Decisions live in
// plan/, texts in render/, resources in components/ (see docs/architecture.md).
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { VpsStack } from "./components/vps-stack";
import { ConfigError, environmentProblems, loadConfig, rawConfigFromPulumi } from "./config";
import { expandHome } from "./config/paths";
import { readSite } from "./config/static-files";
import { releaseCommands } from "./render/release";
import { resticRepository } from "./render/offsite";

function loadStackConfig() {
    try {
        const stack = pulumi.getStack();
        const all = pulumi.runtime.allConfig();
        // Every namespace's keys, so that a misspelt `vps-stak:…` is reported rather than ignored.
        const cfg = loadConfig(rawConfigFromPulumi(all), stack, new Date(), Object.keys(all));
        const problems = environmentProblems(cfg, {
            sshAuthSock: process.env.SSH_AUTH_SOCK,
            fileExists: (p) => fs.existsSync(expandHome(p)),
            readFile: (p) => fs.readFileSync(expandHome(p), "utf8"),
            loadSite: (s) => readSite(s),
        });
        if (problems.length > 0) throw new ConfigError(stack, problems);
        return cfg;
    } catch (e) {
        // RunError prints the message alone, without a stack trace: it is the whole story.
        if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
}

const cfg = loadStackConfig();
const stack = new VpsStack("vps-stack", cfg, { stateDir: process.env.VPS_STACK_STATE_DIR });

export const urls = Object.fromEntries(Object.entries(stack.urls).map(([app, u]) => [app, u.url]));
export const healthUrls = Object.fromEntries(Object.entries(stack.urls).map(([app, u]) => [app, u.healthUrl]));
/** The CA to trust when calling the stack (tls.mode "ca"); absent with a provided certificate. */
export const caCertificate = stack.certificates?.caCertPem ?? null;
export const dockerHost = stack.host.dockerHost ?? "local";
/**
 * host.provision: who deploys, and the command that applies the provisioning again (preview compares the
 * config with the last run, not with the host, so a change made by hand on the host needs it).
 */
export const hostProvision = stack.host.provision
    ? {
          deployUser: cfg.host!.user,
          firewallAllows: cfg.host!.firewall.allow,
          reapply: pulumi.interpolate`pulumi up --stack ${cfg.stack} --replace '${stack.host.provision.command.urn}'`,
      }
    : null;
export const networks = { edge: stack.networks.edge.name, data: stack.networks.data.name };
export const containers = {
    postgres: stack.postgres.containerName,
    redis: stack.redis.containerName,
    nginx: stack.proxy?.containerName,
    backup: stack.backup?.containerName,
    acme: stack.acme?.containerName,
    apps: Object.fromEntries(Object.entries(stack.apps).map(([app, s]) => [app, s.containerNames])),
};
/**
 * Container mode: each app's live release (id and image) and the command that prints its history on the
 * host; `scripts/rollback.sh` reads them to go back one release.
 */
export const releases = (() => {
    const history = releaseCommands(cfg.stack, cfg.apps.map((a) => a.name), cfg.host);
    return Object.fromEntries(
        cfg.apps.flatMap((a, index) => {
            const release = stack.apps[a.name].release;
            return release ? [[a.name, { index, release, image: a.image, history: history[a.name].history }]] : [];
        }),
    );
})();
/** nginx.mode "host": the site file in the host's nginx. */
// null rather than undefined where a stack has no such thing: Pulumi warns about every undefined output,
// which a newcomer's first `pulumi up` should not show.
export const nginxSite = stack.hostSite?.siteFile ?? null;
export const volumes = { postgres: stack.postgres.volumeName, redis: stack.redis.volumeName };
export const postgres = {
    host: stack.postgres.hostAlias,
    port: stack.postgres.port,
    database: stack.postgres.database,
    user: stack.postgres.user,
    password: stack.postgres.password,
};
export const postgresConnectionString = stack.postgres.connectionString;
export const redisUrl = stack.redis.url;
export const backup = {
    enabled: cfg.backup.enabled,
    directory: cfg.backup.directory,
    schedule: cfg.backup.schedule,
    verifySchedule: cfg.backup.verifySchedule,
    timezone: cfg.backup.timezone,
    retention: cfg.backup.retention,
    maxAgeHours: cfg.backup.maxAgeHours,
    commands: stack.backupCommands,
    /** Point-in-time recovery: scripts/restore.sh --to '<time>' --confirm. */
    pitr: cfg.backup.pitr.enabled
        ? {
              days: cfg.backup.pitr.days,
              baseSchedule: cfg.backup.pitr.baseSchedule,
              restore: `scripts/restore.sh --stack ${cfg.stack} --to '<time, e.g. 2026-12-01 10:42:00+01>' --confirm`,
          }
        : null,
    /** Where a restore finds things on the host: scripts/restore.sh reads this. */
    restore: stack.restoreTargets ?? null,
    /** The off-site copy: where, and the uploader's commands. */
    offsite: stack.plan.offsite
        ? { repository: resticRepository(stack.plan.offsite), uploadIntervalSeconds: stack.plan.offsite.uploadIntervalSeconds, commands: stack.offsiteCommands }
        : null,
};
/** tls.mode "acme": which CA, which certificate, and the commands to inspect or renew it. */
export const acme = stack.acme
    ? { directoryUrl: stack.plan.tls.mode === "acme" ? stack.plan.tls.directoryUrl : null, certificateName: stack.acme.certName, commands: stack.acmeCommands }
    : null;
/** Alerts: the watcher's container and its commands (`test` sends a test notification); null without a destination. */
export const alerts = stack.alerts
    ? { container: stack.alerts.containerName, destinations: [...(cfg.alerts?.webhooks ?? []).map((w) => w.kind), ...(cfg.alerts?.email ? ["email"] : [])], commands: stack.alertsCommands }
    : null;
