// Scheduled PostgreSQL backups, as a small container on the data network: the PostgreSQL image itself
// (so pg_dump's major version is the server's), running vps-stack-backup's scheduler.
//
// Why a container rather than the host's cron: it needs no root on the host (the deploy user only has
// Docker), it restarts with the host like every other service (restart: unless-stopped), it reaches the
// database on the internal network without publishing it, its healthcheck is the backup max-age check (so
// `docker ps` shows a stale backup as unhealthy), and `pulumi destroy` removes it like any resource. The
// backups themselves live in a host directory that destroy never touches.
//
// With backup.pitr, a second container of the same image streams the WAL into that directory as the server
// writes it (pg_receivewal over the replication protocol, through a slot, so nothing is missed while it is
// down), and the backup job also takes base backups (pg_basebackup): together they restore the database to
// any second of the last pitr.days (scripts/restore.sh). See docs/decisions/0003-backups.md.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck, readOnlyRoot } from "../plan/container-defaults";
import { containerFilesAt } from "./container-files";
import { limitPids } from "./pids-limit";
import { APP_VOLUMES_MOUNT, BACKUP_MOUNT, BACKUP_PGPASS_FILE, BACKUP_SCRIPT, backupEnv, backupScript, pgpassLine, walReceiverEnv } from "../render/backup";
import { bindHostPathProblem } from "../sinks/docker";
import { StackConfig } from "../config";
import { StackScope } from "./scope";

export const BACKUP_JOB_TYPE = "vps-stack:index:BackupJob";

/** Schedules, retention and limits are the config's backup section, with its defaults. */
export interface BackupJobArgs extends StackScope, Omit<StackConfig["backup"], "enabled" | "offsite" | "rpoSeconds"> {
    /** The PostgreSQL image id: the same binaries as the server. */
    image: pulumi.Input<string>;
    dataNetwork: pulumi.Input<string>;
    postgres: { host: string; port: number; database: string; user: string; password: pulumi.Input<string> };
    /** The apps' volumes to archive (apps[].volumes with backup), each by "<app>-<volume>". */
    appVolumes?: { id: string; volumeName: pulumi.Input<string> }[];
    /** backup.offsite: local retention then deletes only what was shipped, and the check watches the uploads. */
    offsiteMaxAgeSeconds?: number;
    /** The replication role (pitr): the WAL receiver and base backups log in as it. */
    wal?: { role: string; slot: string; password: pulumi.Input<string> };
    /** Start after the database. */
    dependsOn: pulumi.Resource[];
}

export class BackupJob extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly container: docker.Container;
    /** The WAL receiver (pitr). */
    readonly walContainerName?: string;
    readonly walContainer?: docker.Container;

    constructor(name: string, args: BackupJobArgs, opts?: pulumi.ComponentResourceOptions) {
        super(BACKUP_JOB_TYPE, name, {}, opts);
        this.containerName = `${args.prefix}-backup`;
        const badDirectory = bindHostPathProblem(args.directory);
        if (badDirectory) throw new pulumi.ResourceError(`backup directory ${JSON.stringify(args.directory)} ${badDirectory}`, this);
        const wal = args.pitr.enabled ? args.wal : undefined;
        const appVolumes = args.appVolumes ?? [];
        const pgpass = pulumi.secret(
            pulumi
                .all([args.postgres.password, wal?.password ?? ""])
                .apply(([password, walPassword]) => pgpassLine({ ...args.postgres, password }) + (wal ? pgpassLine({ ...args.postgres, user: wal.role, password: walPassword }) : "")),
        );
        // Read-only volumes of files, shared by the job and the WAL receiver: the script on the image's PATH,
        // the password file where libpq is told to find it (libpq ignores one readable by others; the job
        // runs as root).
        const files = containerFilesAt(
            args.host,
            `${name}-files`,
            { container: this.containerName, stack: args.stack, service: "backup", image: args.image },
            [
                { path: BACKUP_SCRIPT, content: backupScript(), mode: 0o555 },
                { path: BACKUP_PGPASS_FILE, content: pgpass, mode: 0o400 },
            ],
            { parent: this },
        );
        const fileMounts = files.mounts;
        const ready = files.ready;
        // A bind mount: the backups outlive the container, the stack and `pulumi destroy`.
        const backupsMount = [{ hostPath: args.directory, containerPath: BACKUP_MOUNT }];

        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: args.image,
                ...baseContainerArgs(args.stack, "backup", args),
                entrypoints: [BACKUP_SCRIPT],
                command: ["schedule"],
                envs: backupEnv({
                    ...args,
                    wal,
                    offsite: args.offsiteMaxAgeSeconds ? { maxAgeSeconds: args.offsiteMaxAgeSeconds } : undefined,
                    appVolumes: appVolumes.map((v) => v.id),
                }),
                // It writes only the backup directory. The apps' volumes read-only: archived, never written.
                ...readOnlyRoot({
                    volumes: [...fileMounts, ...backupsMount, ...appVolumes.map((v) => ({ volumeName: v.volumeName, containerPath: `${APP_VOLUMES_MOUNT}/${v.id}`, readOnly: true }))],
                }),
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
            { parent: this, provider: args.host.provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [...args.dependsOn, ...ready] },
        );
        limitPids(args.host, name, this.container, this.containerName, args.pidsLimit);
        if (wal) {
            this.walContainerName = `${args.prefix}-wal`;
            this.walContainer = new docker.Container(
                `${name}-wal`,
                {
                    name: this.walContainerName,
                    image: args.image,
                    ...baseContainerArgs(args.stack, "wal", args),
                    entrypoints: [BACKUP_SCRIPT],
                    command: ["receive-wal"],
                    envs: walReceiverEnv({ postgres: args.postgres, wal }),
                    ...readOnlyRoot({ volumes: [...fileMounts, ...backupsMount] }),
                    networksAdvanced: [{ name: args.dataNetwork }],
                    capabilities: { drops: ["ALL"] },
                    // Healthy while the server sees the receiver's slot active: the WAL is being streamed.
                    healthcheck: healthcheck({ tests: ["CMD", BACKUP_SCRIPT, "wal-check"], interval: "15s", timeout: "10s", retries: 2, startPeriod: "30s" }),
                    waitTimeout: 90,
                },
                // Fixed name; the slot on the server keeps the WAL while it is replaced.
                { parent: this, provider: args.host.provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [...args.dependsOn, ...ready] },
            );
            limitPids(args.host, `${name}-wal`, this.walContainer, this.walContainerName, args.pidsLimit);
        }
        this.registerOutputs({ containerName: this.containerName, walContainerName: this.walContainerName });
    }
}
