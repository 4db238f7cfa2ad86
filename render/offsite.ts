// The off-site copy, the texts: the uploader script (scripts/vps-stack-offsite.sh, beside this file) and where it lives in
// the restic container, restic's repository URL, the container's environment, the credentials file, and
// the commands an operator runs.
import * as fs from "fs";
import * as path from "path";
import { dockerEnv } from "../sinks/docker";
import { onHost, SshTarget } from "./operator";

/**
 * On the image's PATH (`docker exec <c> vps-stack-offsite status`), in the one PATH directory both the official
 * image and the stand-in leave empty: with a read-only root, an upload's directory is a volume of its own.
 */
export const OFFSITE_SCRIPT = "/usr/local/sbin/vps-stack-offsite";
/** restic's cache and its temporary pack files, on disk in volumes of the container's own (the root is read-only). */
export const RESTIC_CACHE_DIR = "/var/cache/restic";
export const OFFSITE_TMPDIR = "/var/tmp";
export const RESTIC_PASSWORD_FILE = "/run/secrets/restic-password";
export const AWS_CREDENTIALS_FILE = "/run/secrets/aws-credentials";

/** The script, read once from the repository: it is uploaded into the container. */
export const offsiteScript = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-offsite.sh"), "utf8");

export interface OffsiteSettings {
    endpoint: string;
    bucket: string;
    region: string;
    pathStyle?: boolean;
    prefix: string;
}

/** restic's S3 repository: `s3:<endpoint>/<bucket>/<prefix>`; every part was validated by the config. */
export function resticRepository(o: Pick<OffsiteSettings, "endpoint" | "bucket" | "prefix">): string {
    return `s3:${o.endpoint.replace(/\/$/, "")}/${o.bucket}/${o.prefix}`;
}

/** The uploader's environment: where the repository is, how often to upload, what to keep. No secret. */
export function offsiteEnv(args: {
    offsite: OffsiteSettings;
    stack: string;
    backupMount: string;
    uploadIntervalSeconds: number;
    retention: { daily: number; weekly: number; monthly: number };
    timezone: string;
}): string[] {
    const o = args.offsite;
    return [
        dockerEnv("RESTIC_REPOSITORY", resticRepository(o)),
        dockerEnv("RESTIC_PASSWORD_FILE", RESTIC_PASSWORD_FILE),
        dockerEnv("AWS_SHARED_CREDENTIALS_FILE", AWS_CREDENTIALS_FILE),
        dockerEnv("AWS_DEFAULT_REGION", o.region),
        ...(o.pathStyle === undefined ? [] : [dockerEnv("S3_PATH_STYLE", o.pathStyle ? "1" : "0")]),
        dockerEnv("BACKUP_DIR", args.backupMount),
        dockerEnv("OFFSITE_HOST", args.stack),
        dockerEnv("UPLOAD_INTERVAL", String(args.uploadIntervalSeconds)),
        dockerEnv("KEEP_DAILY", String(args.retention.daily)),
        dockerEnv("KEEP_WEEKLY", String(args.retention.weekly)),
        dockerEnv("KEEP_MONTHLY", String(args.retention.monthly)),
        dockerEnv("TZ", args.timezone),
        dockerEnv("RESTIC_CACHE_DIR", RESTIC_CACHE_DIR),
        dockerEnv("TMPDIR", OFFSITE_TMPDIR),
    ];
}

/** The AWS shared credentials file restic reads; a value with a line break would add lines to it. */
export function awsCredentials(accessKeyId: string, secretAccessKey: string): string {
    for (const v of [accessKeyId, secretAccessKey]) {
        if (/[\r\n]/.test(v) || v !== v.trim()) throw new Error("awsCredentials: a key must be one line with no surrounding spaces");
    }
    return `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`;
}

/** Commands an operator runs from a workstation; pure, exported for tests and outputs. */
export function offsiteCommands(containerName: string, ssh?: SshTarget) {
    const exec = (args: string) => onHost(ssh, `docker exec ${containerName} vps-stack-offsite ${args}`);
    return {
        now: exec("upload"),
        check: exec("check"),
        status: exec("status"),
        verify: exec("verify"),
        /** Fetch the newest dump back from the store (the weekly verification test-restores it); daily by itself. */
        fetch: exec("fetch-dump"),
    };
}
