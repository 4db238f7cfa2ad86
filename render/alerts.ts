// Alerts, the texts: the watcher script (scripts/vps-stack-alerts.sh) and where it lives in its container,
// its environment (no secret), the curl config files that carry the webhook URLs and the SMTP login, and the
// commands an operator runs.
import * as fs from "fs";
import * as path from "path";
import { dockerEnv } from "../sinks/docker";
import { DOCKER_API_SOCKET } from "./docker-api-proxy";
import { onHost, SshTarget } from "./operator";

/** On the image's PATH (`docker exec <c> vps-stack-alerts test`), in a directory the Nginx images leave empty: its files volume. */
export const ALERTS_SCRIPT = "/usr/local/sbin/vps-stack-alerts";
export const ALERTS_STATE_DIR = "/var/lib/vps-stack-alerts";
export const ALERTS_SECRETS_DIR = "/run/secrets";
/** Where the watcher sees the backup directory (read-only), to measure its disk. */
export const ALERTS_BACKUP_MOUNT = "/backups";
/**
 * The host, as the watcher's container reaches it: its default gateway (the host's address on the watcher's
 * own network), read by the script. Not Docker's "host-gateway", which is the default bridge's address: a
 * host without docker0 (a daemon with "bridge": "none", or the link removed) has no such address.
 */
export const HOST_GATEWAY = "gateway";

export type WebhookKind = "json" | "slack" | "discord";

/** The script, read once from the repository: it is uploaded into the container. */
export const alertsScript = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-alerts.sh"), "utf8");

/** A value in a curl config file: double-quoted, with curl's escapes; the config rejected line breaks. */
export function curlConfigValue(v: string): string {
    if (/[\r\n\0]/.test(v)) throw new Error("curlConfigValue: a value must be one line");
    return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The secret file of a webhook: its URL (which carries the token), read by `curl -K`. */
export const webhookCurlConfig = (url: string): string => `url = ${curlConfigValue(url)}\n`;
/** The secret file of the SMTP login, read by `curl -K`. */
export const smtpCurlConfig = (user: string, password: string): string => `user = ${curlConfigValue(`${user}:${password}`)}\n`;

export const webhookFile = (index: number): string => `${ALERTS_SECRETS_DIR}/alerts-webhook-${index}`;
export const SMTP_AUTH_FILE = `${ALERTS_SECRETS_DIR}/alerts-smtp`;

export interface AlertSettings {
    stack: string;
    intervalSeconds: number;
    reminderHours: number;
    confirmRounds: number;
    certificateDays: number;
    diskPercent: number;
    oomWindowMinutes: number;
    /** Containers that must exist (fixed names; apps' release containers are watched by label). */
    expected: string[];
    /** Public health URLs, asked through the host's published ports; empty on a local stack. */
    healthUrls: string[];
    webhooks: { kind: WebhookKind }[];
    email?: { host: string; port: number; tls: "starttls" | "tls" | "none"; from: string; to: string[]; user?: string };
    /** Whether the backup directory is mounted (to measure its disk). */
    backupDirectory: boolean;
}

/** smtp:// (STARTTLS or plain) or smtps:// (TLS from the first byte, usually port 465). */
export function smtpUrl(e: NonNullable<AlertSettings["email"]>): string {
    return `${e.tls === "tls" ? "smtps" : "smtp"}://${e.host}:${e.port}`;
}

/** The watcher's environment: what vps-stack-alerts reads. No secret: those are files. */
export function alertsEnv(a: AlertSettings): string[] {
    return [
        dockerEnv("STACK", a.stack),
        dockerEnv("STATE_DIR", ALERTS_STATE_DIR),
        dockerEnv("INTERVAL", String(a.intervalSeconds)),
        dockerEnv("REMINDER", String(a.reminderHours * 3600)),
        dockerEnv("CONFIRM", String(a.confirmRounds)),
        dockerEnv("CERT_DAYS", String(a.certificateDays)),
        dockerEnv("DISK_PERCENT", String(a.diskPercent)),
        dockerEnv("OOM_WINDOW", String(a.oomWindowMinutes * 60)),
        // The container's own root is on the filesystem of Docker's data root (overlay2's upper layer).
        dockerEnv("DISKS", ["docker=/", ...(a.backupDirectory ? [`backups=${ALERTS_BACKUP_MOUNT}`] : [])].join(" ")),
        // Through the proxy that passes on only the watcher's reads; the watcher never holds Docker's socket.
        dockerEnv("DOCKER_SOCKET", DOCKER_API_SOCKET),
        dockerEnv("EXPECTED", a.expected.join(" ")),
        dockerEnv("HEALTH_URLS", a.healthUrls.join(" ")),
        dockerEnv("HEALTH_CONNECT", a.healthUrls.length > 0 ? HOST_GATEWAY : ""),
        dockerEnv("WEBHOOKS", a.webhooks.map((w, i) => `${w.kind}=${webhookFile(i)}`).join(" ")),
        ...(a.email
            ? [
                  dockerEnv("SMTP_URL", smtpUrl(a.email)),
                  dockerEnv("SMTP_STARTTLS", a.email.tls === "none" ? "0" : "1"),
                  dockerEnv("SMTP_AUTH", a.email.user ? SMTP_AUTH_FILE : ""),
                  dockerEnv("MAIL_FROM", a.email.from),
                  dockerEnv("MAIL_TO", a.email.to.join(" ")),
              ]
            : []),
    ];
}

/** Commands an operator runs from a workstation; pure, exported for tests and outputs. */
export function alertsCommands(containerName: string, ssh?: SshTarget) {
    const exec = (args: string) => onHost(ssh, `docker exec ${containerName} vps-stack-alerts ${args}`);
    return {
        /** Sends a test notification to every destination. */
        test: exec("test"),
        /** The problems active now. */
        status: exec("status"),
        /** The watcher's own liveness (its healthcheck). */
        check: exec("check"),
    };
}
