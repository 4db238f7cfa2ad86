// Scheduled backups, the texts: the scheduler script (scripts/vps-stack-backup.sh) and where it lives in
// the backup container, its environment, the .pgpass line, and the commands an operator runs.
import * as fs from "fs";
import * as path from "path";
import { cronForScheduler } from "../sinks/cron";
import { dockerEnv } from "../sinks/docker";
import { onHost, SshTarget } from "./operator";

/**
 * On the image's PATH (`docker exec <c> vps-stack-backup run`), in the one PATH directory the PostgreSQL images
 * leave empty: with a read-only root, an upload's directory is a volume of its own, and /usr/local/bin holds
 * the server's binaries.
 */
export const BACKUP_SCRIPT = "/usr/local/sbin/vps-stack-backup";
export const BACKUP_PGPASS_FILE = "/run/secrets/pgpass";
export const BACKUP_MOUNT = "/backups";
/** Where the backup job sees the apps' volumes (read-only), one directory per "<app>-<volume>". */
export const APP_VOLUMES_MOUNT = "/volumes";

/** The script, read once from the repository: it is uploaded into the container. */
export const backupScript = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-backup.sh"), "utf8");

export interface BackupSettings {
    postgres: { host: string; port: number; database: string; user: string };
    stack: string;
    schedule: string;
    verifySchedule: string;
    timezone: string;
    retention: { daily: number; weekly: number; monthly: number };
    maxAgeHours: number;
    pitr: { enabled: boolean; baseSchedule: string; days: number; baseMaxAgeHours: number };
    /** The WAL receiver's role and slot, when pitr is enabled. */
    wal?: { role: string; slot: string };
    /** backup.offsite: how stale the last upload may be before the check fails. */
    offsite?: { maxAgeSeconds: number };
    /** The apps' volumes to archive, by "<app>-<volume>", and when. */
    appVolumes?: string[];
    volumeSchedule?: string;
}

/** The backup container's environment: what vps-stack-backup reads. */
export function backupEnv(args: BackupSettings): string[] {
    return [
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
        ...(args.wal && args.pitr.enabled
            ? [
                  dockerEnv("WAL_USER", args.wal.role),
                  dockerEnv("WAL_SLOT", args.wal.slot),
                  dockerEnv("BASE_SCHEDULE", cronForScheduler(args.pitr.baseSchedule)),
                  dockerEnv("PITR_DAYS", String(args.pitr.days)),
                  dockerEnv("BASE_MAX_AGE_HOURS", String(args.pitr.baseMaxAgeHours)),
              ]
            : []),
        ...(args.offsite ? [dockerEnv("OFFSITE", "1"), dockerEnv("OFFSITE_MAX_AGE", String(args.offsite.maxAgeSeconds))] : []),
        ...(args.appVolumes && args.appVolumes.length > 0
            ? [dockerEnv("VOLUMES", args.appVolumes.join(" ")), dockerEnv("VOLUMES_DIR", APP_VOLUMES_MOUNT), dockerEnv("VOLUME_SCHEDULE", cronForScheduler(args.volumeSchedule ?? "30 2 * * *"))]
            : []),
    ];
}

/** The WAL receiver's environment: where the server is, who it logs in as, where the WAL goes. */
export function walReceiverEnv(args: { postgres: { host: string; port: number }; wal: { role: string; slot: string } }): string[] {
    return [
        dockerEnv("PGHOST", args.postgres.host),
        dockerEnv("PGPORT", String(args.postgres.port)),
        dockerEnv("PGPASSFILE", BACKUP_PGPASS_FILE),
        dockerEnv("BACKUP_DIR", BACKUP_MOUNT),
        dockerEnv("WAL_USER", args.wal.role),
        dockerEnv("WAL_SLOT", args.wal.slot),
    ];
}

/** `.pgpass` line for the stack's database: any database name, so the throwaway verify database works. */
export function pgpassLine(p: { host: string; port: number; user: string; password: string }): string {
    const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
    return `${esc(p.host)}:${p.port}:*:${esc(p.user)}:${esc(p.password)}\n`;
}

/** Commands an operator runs from a workstation; pure, exported for tests and outputs. */
export function backupCommands(containerName: string, ssh?: SshTarget) {
    const on = (cmd: string) => onHost(ssh, cmd);
    const exec = (args: string) => on(`docker exec ${containerName} vps-stack-backup ${args}`);
    return {
        now: exec("run"),
        /** A base backup now (point-in-time recovery starts from the newest one). */
        base: exec("base"),
        /** Archive the apps' volumes now. */
        volumes: exec("volumes"),
        check: exec("check"),
        status: exec("status"),
        list: exec("list"),
        verify: exec("verify latest"),
        restore: exec("restore latest --confirm"),
    };
}
