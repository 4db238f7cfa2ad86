// The alerts section of the config (the watcher: components/alert-watcher.ts): its schema and defaults.
// Its cross-field rules are in alerts-rules.ts (this file is imported by schema.ts, so it imports no problem helper).
import { z } from "zod";
import { SIZE_RE, sizeToMiB } from "./units";

const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;
// An e-mail address as SMTP's MAIL FROM/RCPT TO take it: no spaces, quotes or angle brackets to escape.
const EMAIL_RE = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/;
const SMTP_HOST_RE = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/** The secret that holds a webhook's URL when alerts.webhooks[].secret is not set. */
export const DEFAULT_WEBHOOK_SECRET = { json: "ALERTS_WEBHOOK_URL", slack: "ALERTS_SLACK_WEBHOOK_URL", discord: "ALERTS_DISCORD_WEBHOOK_URL" } as const;
export const SMTP_PASSWORD_SECRET = "ALERTS_SMTP_PASSWORD";

const webhookSchema = z.strictObject({
    kind: z
        .enum(["json", "slack", "discord"])
        .default("json")
        .describe('"slack" and "discord": their incoming webhooks ({"text"} / {"content"}); "json": any receiver, a JSON object with stack, event, kind, key, summary, action, since, time and text.'),
    secret: z
        .string()
        .regex(ENV_NAME_RE, "must be an upper-case secret name such as ALERTS_SLACK_WEBHOOK_URL")
        .optional()
        .describe("The secrets.<NAME> that holds the URL (it carries a token); default ALERTS_WEBHOOK_URL, ALERTS_SLACK_WEBHOOK_URL or ALERTS_DISCORD_WEBHOOK_URL by kind."),
});

const emailSchema = z.strictObject({
    host: z.string().regex(SMTP_HOST_RE, "must be the SMTP relay's host name or IPv4 address, such as smtp.example.com").describe("SMTP relay (your provider's: Brevo, Mailgun, SES, your ISP…)."),
    port: z.number().int().min(1).max(65535).default(587).describe("SMTP port: 587 with STARTTLS, 465 with tls: \"tls\"."),
    tls: z.enum(["starttls", "tls", "none"]).default("starttls").describe('"starttls" (required, not opportunistic), "tls" (smtps, port 465) or "none" (a relay on a private network only).'),
    from: z.string().regex(EMAIL_RE, "must be an e-mail address such as alerts@example.com").describe("Sender address."),
    to: z.array(z.string().regex(EMAIL_RE, "must be an e-mail address such as ops@example.com")).min(1, "needs at least one address").describe("Recipients."),
    user: z
        .string()
        .regex(/^[\x21-\x7e]{1,256}$/, "must be printable ASCII without spaces")
        .optional()
        .describe("SMTP login; its password is the secret secrets.ALERTS_SMTP_PASSWORD. Unset: no authentication."),
});

export const alertsSchema = z
    .strictObject({
        webhooks: z.array(webhookSchema).default([]).describe("Webhook destinations: Slack, Discord or generic JSON."),
        email: emailSchema.optional().describe("E-mail through an SMTP relay."),
        insecure: z.boolean().default(false).describe("Allow http:// webhook URLs and an SMTP login without TLS (a receiver on a private network, or tests)."),
        intervalSeconds: z.number().int().min(10).max(3600).default(60).describe("How often the watcher looks."),
        confirmRounds: z.number().int().min(1).max(10).default(2).describe("Rounds in a row a problem must be seen before it is notified (a blip is not an incident)."),
        reminderHours: z.number().int().min(1).max(24 * 7).default(24).describe("A reminder is sent this often while a problem lasts."),
        certificateDays: z.number().int().min(1).max(80).default(14).describe("Alert when the served certificate expires in fewer days (ACME renews at 30 days left)."),
        diskPercent: z.number().int().min(50).max(99).default(90).describe("Alert when the disk of Docker's data or of the backup directory is fuller than this."),
        oomWindowMinutes: z.number().int().min(1).max(24 * 60).default(60).describe("An OOM kill stays a problem this long after it happened, then resolves."),
        healthUrls: z.boolean().default(true).describe("Ask every app's public health URL through the host's published ports (not on dev, which publishes on 127.0.0.1 only)."),
        image: z.string().min(1).optional().describe("Image of the watcher (needs sh, curl with smtp, df); default nginx.image, which the stack already pins."),
        memory: z
            .string()
            .regex(SIZE_RE, { message: "must be a size such as 64m", abort: true })
            .refine((s) => sizeToMiB(s) >= 16, "is too small: at least 16m")
            .default("64m")
            .describe("Memory limit of the watcher."),
        cpus: z.number().gt(0).max(4).default(0.25).describe("CPU limit of the watcher."),
    })
    .describe("Alerts: a watcher that notifies webhooks and e-mail once when a problem starts, once when it resolves, and daily while it lasts.");

export type AlertsConfig = z.output<typeof alertsSchema>;

export const webhookSecret = (w: AlertsConfig["webhooks"][number]): string => w.secret ?? DEFAULT_WEBHOOK_SECRET[w.kind];

/** True when the section names at least one destination. */
export const hasDestination = (a: AlertsConfig | undefined): a is AlertsConfig => !!a && (a.webhooks.length > 0 || !!a.email);
