// Scheduled PostgreSQL backups, as a small container on the data network: the PostgreSQL image itself
// (so pg_dump's major version is the server's), running vps-stack-backup's scheduler.
//
// Why a container rather than the host's cron: it needs no root on the host (the deploy user only has
// Docker), it restarts with the host like every other service (restart: unless-stopped), it reaches the
// database on the internal network without publishing it, its healthcheck is the backup max-age check (so
// `docker ps` shows a stale backup as unhealthy), and `pulumi destroy` removes it like any resource. The
// backups themselves live in a host directory that destroy never touches.
import * as fs from "fs";
import * as path from "path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck } from "./container-defaults";
import { cronForScheduler } from "./sinks/cron";
import { bindHostPathProblem, dockerEnv } from "./sinks/docker";
import { VpsHost } from "./vps-host";

export const BACKUP_JOB_TYPE = "vps-stack:index:BackupJob";

export const BACKUP_SCRIPT = "/usr/local/bin/vps-stack-backup";
export const BACKUP_PGPASS_FILE = "/run/secrets/pgpass";
export const BACKUP_MOUNT = "/backups";

/** The script, read once from the repository: it is uploaded into the container. */
export const backupScript = (): string => fs.readFileSync(path.join(__dirname, "backup", "vps-stack-backup.sh"), "utf8");

export interface BackupJobArgs {
    host: VpsHost;
    prefix: string;
    stack: string;
    /** The PostgreSQL image id: the same binaries as the server. */
    image: pulumi.Input<string>;
    dataNetwork: pulumi.Input<string>;
    postgres: { host: string; port: number; database: string; user: string; password: pulumi.Input<string> };
    /** Host directory for the backups. @default "/var/backups/vps-stack/<stack>" */
    directory: string;
    /** @default "0 2 * * *" */
    schedule: string;
    /** @default "0 4 * * 0" */
    verifySchedule: string;
    /** @default "UTC" */
    timezone: string;
    /** @default { daily: 7, weekly: 4, monthly: 6 } */
    retention: { daily: number; weekly: number; monthly: number };
    /** @default 26 */
    maxAgeHours: number;
    /** @default "512m" */
    memory: string;
    /** @default 1 */
    cpus: number;
    /** Start after the database. */
    dependsOn: pulumi.Resource[];
}

/** `.pgpass` line for the stack's database: any database name, so the throwaway verify database works. */
export function pgpassLine(p: { host: string; port: number; user: string; password: string }): string {
    const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
    return `${esc(p.host)}:${p.port}:*:${esc(p.user)}:${esc(p.password)}\n`;
}

/** Commands an operator runs from a workstation; pure, exported for tests and outputs. */
export function backupCommands(containerName: string, ssh?: { address: string; port: number; user: string }) {
    const on = (cmd: string) => (ssh ? `ssh -p ${ssh.port} ${ssh.user}@${ssh.address} ${cmd}` : cmd);
    const exec = (args: string) => on(`docker exec ${containerName} vps-stack-backup ${args}`);
    return {
        now: exec("run"),
        check: exec("check"),
        status: exec("status"),
        list: exec("list"),
        verify: exec("verify latest"),
        restore: exec("restore latest --confirm"),
    };
}

export class BackupJob extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly container: docker.Container;

    constructor(name: string, args: BackupJobArgs, opts?: pulumi.ComponentResourceOptions) {
        super(BACKUP_JOB_TYPE, name, {}, opts);
        this.containerName = `${args.prefix}-backup`;
        const badDirectory = bindHostPathProblem(args.directory);
        if (badDirectory) throw new pulumi.ResourceError(`backup directory ${JSON.stringify(args.directory)} ${badDirectory}`, this);
        const pgpass = pulumi.secret(pulumi.output(args.postgres.password).apply((password) => pgpassLine({ ...args.postgres, password })));

        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: args.image,
                ...baseContainerArgs(args.stack, "backup", args),
                entrypoints: [BACKUP_SCRIPT],
                command: ["schedule"],
                envs: [
                    dockerEnv("PGHOST", args.postgres.host),
                    dockerEnv("PGPORT", String(args.postgres.port)),
                    dockerEnv("PGUSER", args.postgres.user),
                    dockerEnv("PGDATABASE", args.postgres.database),
                    dockerEnv("PGPASSFILE", BACKUP_PGPASS_FILE),
                    dockerEnv("BACKUP_DIR", BACKUP_MOUNT),
                    dockerEnv("BACKUP_PREFIX", `${args.stack}-${args.postgres.database}`),
                    // Expanded by cron-parser into value lists: the script only matches lists.
                    dockerEnv("BACKUP_SCHEDULE", cronForScheduler(args.schedule)),
                    dockerEnv("VERIFY_SCHEDULE", cronForScheduler(args.verifySchedule)),
                    dockerEnv("TZ", args.timezone),
                    dockerEnv("KEEP_DAILY", String(args.retention.daily)),
                    dockerEnv("KEEP_WEEKLY", String(args.retention.weekly)),
                    dockerEnv("KEEP_MONTHLY", String(args.retention.monthly)),
                    dockerEnv("MAX_AGE_HOURS", String(args.maxAgeHours)),
                ],
                uploads: [
                    { file: BACKUP_SCRIPT, content: backupScript(), permissions: "0555" },
                    // libpq ignores a password file readable by others; the job runs as root.
                    { file: BACKUP_PGPASS_FILE, content: pgpass, permissions: "0400" },
                ],
                // A bind mount: the backups outlive the container, the stack and `pulumi destroy`.
                volumes: [{ hostPath: args.directory, containerPath: BACKUP_MOUNT }],
                networksAdvanced: [{ name: args.dataNetwork }],
                capabilities: { drops: ["ALL"] },
                healthcheck: healthcheck({
                    tests: ["CMD", BACKUP_SCRIPT, "check"],
                    // Cheap (it reads marker files); a short interval also keeps the first `pulumi up` short,
                    // since the provider waits for the first healthy report.
                    interval: "15s",
                    timeout: "10s",
                    retries: 1,
                    startPeriod: "30s",
                }),
                waitTimeout: 90,
            },
            // Fixed name; nothing is lost when it is replaced (state lives in the backup directory).
            { parent: this, provider: args.host.provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: args.dependsOn },
        );
        this.registerOutputs({ containerName: this.containerName });
    }
}
