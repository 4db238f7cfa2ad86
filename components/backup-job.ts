// Scheduled PostgreSQL backups, as a small container on the data network: the PostgreSQL image itself
// (so pg_dump's major version is the server's), running vps-stack-backup's scheduler.
//
// Why a container rather than the host's cron: it needs no root on the host (the deploy user only has
// Docker), it restarts with the host like every other service (restart: unless-stopped), it reaches the
// database on the internal network without publishing it, its healthcheck is the backup max-age check (so
// `docker ps` shows a stale backup as unhealthy), and `pulumi destroy` removes it like any resource. The
// backups themselves live in a host directory that destroy never touches.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck } from "../plan/container-defaults";
import { BACKUP_MOUNT, BACKUP_PGPASS_FILE, BACKUP_SCRIPT, backupEnv, backupScript, pgpassLine } from "../render/backup";
import { bindHostPathProblem } from "../sinks/docker";
import { StackConfig } from "../config";
import { StackScope } from "./scope";

export const BACKUP_JOB_TYPE = "vps-stack:index:BackupJob";

/** Schedules, retention and limits are the config's backup section, with its defaults. */
export interface BackupJobArgs extends StackScope, Omit<StackConfig["backup"], "enabled"> {
    /** The PostgreSQL image id: the same binaries as the server. */
    image: pulumi.Input<string>;
    dataNetwork: pulumi.Input<string>;
    postgres: { host: string; port: number; database: string; user: string; password: pulumi.Input<string> };
    /** Start after the database. */
    dependsOn: pulumi.Resource[];
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
                envs: backupEnv(args),
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
