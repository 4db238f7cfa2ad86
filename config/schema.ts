// The stack's configuration: one zod schema over every `vps-stack:*` key, and a loader that turns the raw
// Pulumi config into a validated, defaulted plain object — or ONE error listing every problem with its fix.
// Pure: no Pulumi runtime calls here, so the whole thing is tested without mocks.
import { z } from "zod";
import { validateProvidedCertificate } from "./provided-certificate";
import { bindHostPathProblem } from "./sinks/docker";
import { maxGapMinutes, parseCron } from "./sinks/cron";
import { nginxValueProblem } from "./sinks/nginx";
import { shellWord } from "./sinks/shell";
import { hostKeyProblem, privateKeyProblem } from "./ssh-keys";
import { SITE_ARCHIVE_RE, SiteFile } from "./static-files";

export const PROJECT = "vps-stack";

/** Stacks that run against the local Docker engine, with no SSH. */
export const LOCAL_STACKS = ["dev"] as const;

// ---------------------------------------------------------------------------------------------------------
// Value shapes shared by several sections
// ---------------------------------------------------------------------------------------------------------

const HOSTNAME_RE = /^(?=.{1,253}$)(localhost|([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})$/;
const IPV4_RE = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|m|mb|g|gb)$/i;
const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;
const SQL_IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;
const APP_NAME_RE = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/;
const DURATION_RE = /^\d+(ms|s|m|h)$/;
// Each repetition ends in "/", so there is one way to match any input: linear time, no backtracking blowup.
const ROUTE_PATH_RE = /^\/(?:[a-zA-Z0-9._~-]+\/)*[a-zA-Z0-9._~-]*$/;
// A URL path and query (RFC 3986 characters) without "$", which nginx would expand in proxy_pass.
const HEALTH_PATH_RE = /^\/[A-Za-z0-9._~!&'()*+,;=:@%/?-]*$/;

/** Parses "512m", "1g", "2GB", "256MB" into mebibytes. Returns NaN when malformed. */
export function sizeToMiB(size: string): number {
    const m = SIZE_RE.exec(size.trim());
    if (!m) return NaN;
    const n = Number(m[1]);
    switch (m[2].toLowerCase()) {
        case "b": return n / (1024 * 1024);
        case "k": case "kb": return n / 1024;
        case "m": case "mb": return n;
        default: return n * 1024;
    }
}

const hostname = z.string().regex(HOSTNAME_RE, "must be a lower-case DNS name such as api.example.com");
const port = z.number().int("must be an integer").min(1, "must be between 1 and 65535").max(65535, "must be between 1 and 65535");

function memory(defaultValue: string, description: string) {
    return z
        .string()
        // abort: a malformed size has no magnitude to compare, so the range checks would only add noise.
        .regex(SIZE_RE, { message: "must be a size such as 512m or 2g (a positive number and a unit)", abort: true })
        .refine((s) => sizeToMiB(s) >= 16, "is too small: at least 16m")
        .refine((s) => sizeToMiB(s) <= 256 * 1024, "is absurd: at most 256g")
        .default(defaultValue)
        .describe(description);
}

function cpus(defaultValue: number, description: string) {
    return z
        .number()
        .gt(0, "must be greater than 0")
        .max(64, "is absurd: at most 64")
        .default(defaultValue)
        .describe(description);
}

/** An argv element: Docker passes it to exec as is, and no argv can carry NUL. */
const argv = () => z.string().min(1).refine((v) => !v.includes("\0"), "must not contain NUL");

const duration = (def: string, description: string) =>
    z.string().regex(DURATION_RE, "must be a duration such as 60s or 5m").default(def).describe(description);

/** A container image reference, checked for a pinned tag or digest later (the rule depends on the stack). */
const image = (description: string) => z.string().min(1, "must not be empty").describe(description);

// ---------------------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------------------

const hostSchema = z
    .strictObject({
        address: z
            .string()
            .refine((s) => HOSTNAME_RE.test(s) || IPV4_RE.test(s), "must be a DNS name or an IPv4 address")
            .optional()
            .describe("Address of the VPS (DNS name or IPv4). Required on every stack but dev."),
        port: port.default(22).describe("SSH port of the VPS."),
        user: z
            .string()
            .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name such as deploy")
            .default("deploy")
            .describe("SSH user; must be in the docker group on the VPS."),
        hostKey: z
            .string()
            .superRefine((v, ctx) => {
                const problem = hostKeyProblem(v);
                if (problem) ctx.addIssue({ code: "custom", message: problem });
            })
            .optional()
            .describe("The VPS's SSH host public key, pinned: ed25519 (or ECDSA), as `ssh-keyscan -t ed25519 host` prints it minus the host name. RSA keys are refused: Pulumi's command provider can only offer them as SHA-1 ssh-rsa, which OpenSSH 8.8+ refuses."),
        privateKeyPath: z
            .string()
            .regex(/^(\/|~\/)/, "must be an absolute path or start with ~/")
            .optional()
            .describe("Private key file on the deploying machine. When unset, the SSH agent (SSH_AUTH_SOCK) is used."),
        controlPersist: duration("10m", "How long the shared SSH master connection stays open after the last use."),
    })
    .describe("How to reach the VPS over SSH.");

/** Let's Encrypt's ACME directories; `tls.acme.staging` picks the second. */
export const LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";
export const LETSENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory";

const acmeSchema = z
    .strictObject({
        email: z
            .string()
            .regex(/^[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+$/, "must be an e-mail address such as admin@example.com")
            .optional()
            .describe("Account e-mail given to the ACME server (required with tls.mode acme)."),
        staging: z
            .boolean()
            .default(false)
            .describe("Use Let's Encrypt's staging directory (untrusted certificates, generous rate limits): try a new domain with it first."),
        directoryUrl: z
            .string()
            .regex(/^https:\/\/[^\s]+$/, "must be an https:// URL such as https://acme.example.net/directory")
            .optional()
            .describe("ACME directory URL of another CA (or a local test server); overrides staging."),
        caCertificate: z
            .string()
            .includes("-----BEGIN CERTIFICATE-----", { message: "must be a PEM certificate" })
            .optional()
            .describe("PEM CA certificate that signs the ACME server's own HTTPS certificate, for a private ACME server (not needed for Let's Encrypt)."),
        image: image("Image of the ACME client (certbot), pinned by tag or digest.").default("certbot/certbot:v5.7.0"),
        renewInterval: duration("12h", "How often the ACME container runs `certbot renew` (certbot renews 30 days before expiry)."),
        memory: memory("128m", "Memory limit of the ACME container."),
    })
    .describe("Let's Encrypt (tls.mode acme): HTTP-01 challenges through the proxy's /.well-known/acme-challenge/.");

/** The ACME directory a stack uses: its own URL, else Let's Encrypt's (staging or production). */
export function acmeDirectoryUrl(acme: { staging: boolean; directoryUrl?: string }): string {
    return acme.directoryUrl ?? (acme.staging ? LETSENCRYPT_STAGING_DIRECTORY : LETSENCRYPT_DIRECTORY);
}

const tlsSchema = z
    .strictObject({
        mode: z
            .enum(["ca", "provided", "acme"])
            .default("ca")
            .describe('Where certificates come from: "ca" (a per-stack CA made by @pulumi/tls), "provided" (secrets.TLS_CERTIFICATE and secrets.TLS_PRIVATE_KEY) or "acme" (Let\'s Encrypt or another ACME CA, see tls.acme).'),
        validityDays: z.number().int().min(1).max(825).default(365).describe("Validity of the server certificate (ca mode); it is renewed 30 days before expiry on the next `pulumi up`."),
        caValidityDays: z.number().int().min(30).max(7300).default(3650).describe("Validity of the per-stack CA certificate (ca mode)."),
        organization: z.string().min(1).default("vps-stack").describe("Organization written into the certificates' subject (ca mode)."),
        acme: acmeSchema.prefault({}),
    })
    .describe("TLS certificates for the proxy.");

const postgresSchema = z
    .strictObject({
        image: image("PostgreSQL image, pinned by tag or digest.").default("postgres:16-alpine"),
        database: z.string().regex(SQL_IDENT_RE, "must be a lower-case SQL identifier such as app").default("app").describe("Database created at first start."),
        user: z.string().regex(SQL_IDENT_RE, "must be a lower-case SQL identifier such as app").default("app").describe("Owner role of the database."),
        extensions: z
            .array(z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, "must be an extension name such as pgcrypto"))
            .default(["uuid-ossp", "pgcrypto"])
            .describe('Extensions created at first start (add "vector" only with an image that ships pgvector).'),
        maxConnections: z.number().int().min(10).max(10000).default(200).describe("max_connections."),
        sharedBuffers: z.string().regex(/^\d+(kB|MB|GB)$/, "must be a PostgreSQL size such as 256MB").default("256MB").describe("shared_buffers."),
        effectiveCacheSize: z.string().regex(/^\d+(kB|MB|GB)$/, "must be a PostgreSQL size such as 1GB").default("1GB").describe("effective_cache_size."),
        memory: memory("2g", "Memory limit of the container."),
        cpus: cpus(2, "CPU limit of the container."),
        shmSize: memory("256m", "Size of /dev/shm (PostgreSQL uses it for parallel queries)."),
        passwordLength: z.number().int().min(32, "must be at least 32").max(128).default(32).describe("Length of the generated password."),
        protectVolume: z.boolean().optional().describe("Protect the data volume from deletion (default: true on prod, false elsewhere)."),
    })
    .describe("The PostgreSQL service.");

const redisSchema = z
    .strictObject({
        image: image("Redis image, pinned by tag or digest.").default("redis:7-alpine"),
        maxmemory: z.string().regex(/^\d+(mb|gb|kb)$/i, "must be a Redis size such as 256mb").default("256mb").describe("maxmemory."),
        maxmemoryPolicy: z
            .enum(["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"])
            .default("allkeys-lru")
            .describe("maxmemory-policy."),
        appendonly: z.boolean().default(true).describe("AOF persistence (appendonly yes)."),
        appendfsync: z.enum(["always", "everysec", "no"]).default("everysec").describe("appendfsync."),
        memory: memory("512m", "Memory limit of the container."),
        cpus: cpus(1, "CPU limit of the container."),
        passwordLength: z.number().int().min(32, "must be at least 32").max(128).default(32).describe("Length of the generated password."),
    })
    .describe("The Redis service.");

const appSecretSpec = z.enum(["required", "generate"]);

const appSchema = z.strictObject({
    name: z.string().regex(APP_NAME_RE, "must be lower-case letters, digits and dashes, starting with a letter (e.g. api)").describe("App name; containers are named vps-stack-<stack>-<name>-<n>."),
    kind: z
        .enum(["container", "static"])
        .default("container")
        .describe('"container": your image runs the app; "static": a built front end (SPA) served by Nginx with index.html fallback and cache headers.'),
    image: image("Image of the app, pinned by tag or digest (e.g. ghcr.io/acme/api:1.4.2). For a static site: an Nginx-based image holding the site at static.root (default: the stack's Nginx image with static.dir or static.archive uploaded).").optional(),
    static: z
        .strictObject({
            dir: z.string().regex(/^(\/|~\/|\.\/|\.\.\/|[A-Za-z0-9_])/, "must be a path to the built site, e.g. ./web/dist").optional().describe("Local directory of the built site (relative to the project), copied to the host (SFTP) and mounted read-only into the site's container."),
            archive: z
                .string()
                .regex(SITE_ARCHIVE_RE, "must be a .tar, .tar.gz or .tgz file, e.g. ./web/dist.tar.gz")
                .optional()
                .describe("Local archive of the built site (.tar, .tar.gz or .tgz, e.g. a CI artifact; relative to the project), unpacked here, then copied like static.dir. A single top-level directory holding index.html is taken as the site root."),
            root: z
                .string()
                .regex(/^\//, "must be an absolute path")
                .superRefine((v, ctx) => {
                    const problem = nginxValueProblem(v);
                    if (problem) ctx.addIssue({ code: "custom", message: problem });
                })
                .default("/usr/share/nginx/html")
                .describe("Where the site lives inside the container."),
        })
        .optional()
        .describe("The site of a static app: a local build directory or archive, or a path inside its image."),
    proxy: z
        .strictObject({
            clientMaxBodySize: z.string().regex(/^\d+[kKmMgG]?$/, "must be an Nginx size such as 100M").optional().describe("client_max_body_size for this app (default nginx.clientMaxBodySize)."),
            rateLimit: z
                .strictObject({
                    enabled: z.boolean().optional().describe("Limit requests per client IP for this app."),
                    rate: z.string().regex(/^\d+r\/[sm]$/, "must be a rate such as 10r/s").optional().describe("Sustained rate per client IP."),
                    burst: z.number().int().min(0).max(10000).optional().describe("Requests allowed above the rate before 429."),
                })
                .optional()
                .describe("Rate limiting for this app (default nginx.rateLimit)."),
            timeouts: z
                .strictObject({
                    connect: z.string().regex(DURATION_RE, "must be a duration such as 60s or 5m").optional().describe("proxy_connect_timeout."),
                    send: z.string().regex(DURATION_RE, "must be a duration such as 60s or 5m").optional().describe("proxy_send_timeout."),
                    read: z.string().regex(DURATION_RE, "must be a duration such as 60s or 5m").optional().describe("proxy_read_timeout."),
                })
                .optional()
                .describe("Proxy timeouts for this app (default nginx.timeouts)."),
            headers: z
                .record(
                    z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$/, "must be an HTTP header name"),
                    // HTTP field values are visible ASCII and spaces; nginx expands "$", with no escape for it.
                    z.string().regex(/^[\x20-\x7e]*$/, "must be printable ASCII without newlines or tabs").refine((v) => !v.includes("$"), 'must not contain "$": nginx would expand it as a variable'),
                )
                .optional()
                .describe('Response headers added to (or, by the same name, replacing) the security headers; "" removes one. E.g. Content-Security-Policy.'),
        })
        .optional()
        .describe("Proxy settings for this app that override the nginx section."),
    port: port.default(8000).describe("Port the app listens on inside its container."),
    hostPort: port
        .optional()
        .describe('nginx.mode "host" only: replicas are published on 127.0.0.1:hostPort, hostPort+1, … (e.g. 8000, where the host nginx already points); never on a public address.'),
    healthPath: z
        .string()
        .regex(HEALTH_PATH_RE, 'must be a URL path starting with / (letters, digits and -._~!&\'()*+,;=:@%/?; no spaces, quotes or "$")')
        .default("/health")
        .describe("HTTP path of the health endpoint."),
    healthCommand: z.array(argv()).min(1).optional().describe('Healthcheck command (Docker CMD form) when the image has neither curl nor wget, e.g. ["node","healthcheck.js"].'),
    command: z.array(argv()).min(1).optional().describe("Overrides the image's command."),
    migrate: z
        .strictObject({
            command: z.array(argv()).min(1).describe('The migration, in the app\'s image with its environment and secrets, e.g. ["alembic","upgrade","head"].'),
        })
        .optional()
        .describe("Runs once per new image or config, before the app's containers are replaced; a failure stops `pulumi up` and the running version keeps serving."),
    hosts: z.array(hostname).min(1).optional().describe("Host names routed to this app (default: the stack's domain)."),
    paths: z
        .array(z.string().regex(ROUTE_PATH_RE, "must be a path prefix such as /api (letters, digits and -._~ between single slashes)"))
        .min(1)
        .default(["/"])
        .describe("Path prefixes routed to this app on its hosts."),
    env: z
        .record(z.string().regex(ENV_NAME_RE, "must be an upper-case environment variable name"), z.string().refine((v) => !v.includes("\0"), "must not contain NUL"))
        .default({})
        .describe("Plain (non-secret) environment variables."),
    secrets: z
        .record(z.string().regex(ENV_NAME_RE, "must be an upper-case environment variable name"), appSecretSpec)
        .default({ JWT_SECRET: "generate" })
        .describe('Secret variables: "generate" (random, 64 chars, shared by name across apps) or "required" (set with pulumi config set --secret --path secrets.<NAME>).'),
    secretDelivery: z
        .enum(["file", "env"])
        .default("file")
        .describe('"file": each secret is a file under /run/secrets (mode 0444, like Docker secrets) and <NAME>_FILE points to it; "env": plain variables (visible in docker inspect).'),
    database: z.boolean().default(true).describe("Give the app DATABASE_URL and attach it to the data network."),
    redis: z.boolean().default(true).describe("Give the app REDIS_URL and attach it to the data network."),
    replicas: z.number().int().min(1, "must be at least 1").max(20, "is absurd: at most 20").default(1).describe("Number of containers."),
    memory: memory("1g", "Memory limit of each container."),
    cpus: cpus(1, "CPU limit of each container."),
    user: z.string().regex(/^[a-z0-9_-]+(:[a-z0-9_-]+)?$/, "must be user[:group] or uid[:gid]").optional().describe("Run as this user (non-root)."),
    readOnly: z.boolean().default(false).describe("Read-only root filesystem, with a tmpfs on /tmp."),
    capAdd: z
        .array(z.string().regex(/^[A-Z_]+$/, "must be a capability name such as NET_BIND_SERVICE"))
        .default([])
        .describe("Linux capabilities given back (all are dropped by default)."),
    trackTag: z
        .boolean()
        .default(true)
        .describe("Look the tag's digest up in the registry on every run, so a re-pushed tag deploys (turn off for images that exist only on the host)."),
    registry: z
        .strictObject({
            server: z.string().min(1).describe("Registry host, e.g. ghcr.io."),
            username: z.string().min(1).describe("Registry user."),
        })
        .optional()
        .describe("Private registry credentials; the password is the secret config key secrets.REGISTRY_PASSWORD."),
});

const appsSchema = z.array(appSchema).min(1, "must list at least one app").describe("The apps behind the proxy (at least one).");

const nginxSchema = z
    .strictObject({
        mode: z
            .enum(["container", "host"])
            .default("container")
            .describe('"container": an Nginx container publishes 80/443. "host": the site goes into the host\'s own nginx over SSH (needs nginx and passwordless sudo for the SSH user) and the apps are published on 127.0.0.1 only.'),
        image: image("Nginx image, pinned by tag or digest.").default("nginx:1.27-alpine"),
        httpPort: port.optional().describe("Public HTTP port (default 80; 8080 on dev)."),
        httpsPort: port.optional().describe("Public HTTPS port (default 443; 8443 on dev)."),
        clientMaxBodySize: z.string().regex(/^\d+[kKmMgG]?$/, "must be an Nginx size such as 100M").default("100M").describe("client_max_body_size."),
        rateLimit: z
            .strictObject({
                enabled: z.boolean().default(true).describe("Limit requests per client IP."),
                rate: z.string().regex(/^\d+r\/[sm]$/, "must be a rate such as 10r/s").default("10r/s").describe("Sustained rate per client IP."),
                burst: z.number().int().min(0).max(10000).default(20).describe("Requests allowed above the rate before 429."),
            })
            .prefault({})
            .describe("Per-client-IP rate limiting."),
        timeouts: z
            .strictObject({
                connect: duration("60s", "proxy_connect_timeout."),
                send: duration("60s", "proxy_send_timeout."),
                read: duration("60s", "proxy_read_timeout."),
            })
            .prefault({})
            .describe("Proxy timeouts."),
        hsts: z
            .strictObject({
                maxAge: z.number().int().min(0).max(63072000).default(31536000).describe("Strict-Transport-Security max-age in seconds."),
                includeSubDomains: z.boolean().default(true).describe("Add includeSubDomains."),
                preload: z.boolean().default(false).describe("Add preload."),
            })
            .prefault({})
            .describe("HSTS header."),
        keepalive: z.number().int().min(0).max(1024).default(32).describe("Idle keepalive connections kept per upstream."),
        memory: memory("256m", "Memory limit of the container."),
        cpus: cpus(1, "CPU limit of the container."),
    })
    .describe("The Nginx reverse proxy.");

// Cron expressions and time zones are checked for meaning in loadConfig (checkBackup), where a problem can
// carry a fix built from what the user wrote (a wrapped range rewritten, a time zone's right case).
const cron = (def: string, description: string) => z.string().default(def).describe(description);

/** Room for a monthly schedule (a 744h gap) plus the 2h margin. */
const MAX_AGE_HOURS_LIMIT = 24 * 32;

const backupSchema = z
    .strictObject({
        enabled: z.boolean().default(true).describe("Schedule database backups."),
        schedule: cron("0 2 * * *", "When backups run (cron, in `timezone`)."),
        timezone: z.string().default("UTC").describe("Time zone of the schedules: a canonical IANA name such as Europe/Paris (the container's tz database is case-sensitive)."),
        directory: z
            .string()
            .superRefine((v, ctx) => {
                const problem = bindHostPathProblem(v);
                if (problem) ctx.addIssue({ code: "custom", message: problem });
            })
            .optional()
            .describe("Backup directory on the host (default /var/backups/vps-stack/<stack>)."),
        retention: z
            .strictObject({
                daily: z.number().int().min(1, "must keep at least 1").max(3650).default(7).describe("Daily backups kept."),
                weekly: z.number().int().min(0).max(520).default(4).describe("Weekly backups kept."),
                monthly: z.number().int().min(0).max(240).default(6).describe("Monthly backups kept."),
            })
            .prefault({})
            .describe("How many backups are kept."),
        maxAgeHours: z
            .number()
            .int()
            .min(1)
            .max(MAX_AGE_HOURS_LIMIT)
            .default(26)
            .describe("The backup check fails when the last good backup is older than this; it must exceed the longest gap between two scheduled backups by 2h."),
        verifySchedule: cron("0 4 * * 0", "When the latest backup is test-restored (cron, in `timezone`)."),
        memory: memory("512m", "Memory limit of the backup container."),
        cpus: cpus(1, "CPU limit of the backup container."),
    })
    .describe("Scheduled PostgreSQL backups.");

const releasesSchema = z
    .strictObject({
        healthTimeout: duration("120s", "How long a new release of an app may take to become healthy; after that it is removed, `pulumi up` fails and the previous release keeps serving."),
        drainTimeout: duration("30s", "After the proxy switched to a new release, how long requests still in flight to the previous release may take before its containers stop."),
        stopTimeout: duration("10s", "Between SIGTERM and SIGKILL when a drained release stops (the app finishes what it holds)."),
        keepImages: z.number().int().min(1, "must be at least 1").max(20, "is absurd: at most 20").default(3).describe("Images of each app's last releases kept on the host, so that a rollback needs no registry."),
    })
    .describe("How apps are released with the proxy container: a new release starts beside the old one, takes traffic once healthy, and the old one drains.");

const rotateSchema = z
    .record(z.string().regex(/^(postgres|redis|[A-Z_][A-Z0-9_]*)$/, "must be postgres, redis or a generated secret's name"), z.string().min(1))
    .describe("Rotation tokens: change a value (e.g. a date) to regenerate that secret on the next `pulumi up`.");

const secretsSchema = z
    .record(z.string().regex(ENV_NAME_RE, "must be an upper-case variable name"), z.string().min(1, "must not be empty"))
    .describe("Values of the apps' required secrets; always set with --secret.");

/** The whole stack configuration: each key is one `vps-stack:<key>` Pulumi config value. */
export const configSchema = z.strictObject({
    host: hostSchema.prefault({}),
    domain: hostname.default("localhost").describe("Public host name of the stack; required (not localhost) on every stack but dev."),
    tls: tlsSchema.prefault({}),
    postgres: postgresSchema.prefault({}),
    redis: redisSchema.prefault({}),
    apps: appsSchema.default([]),
    nginx: nginxSchema.prefault({}),
    backup: backupSchema.prefault({}),
    releases: releasesSchema.prefault({}),
    rotate: rotateSchema.default({}),
    secrets: secretsSchema.default({}),
});

export type RawConfig = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;
/** An app with everything resolved: host names, image (static sites default to the Nginx image). */
export type AppConfig = Omit<Parsed["apps"][number], "image"> & { hosts: string[]; image: string };

/** Port a static site's Nginx listens on inside its container. */
export const STATIC_SITE_PORT = 8080;

/** The validated configuration with every stack-dependent default resolved. */
export interface StackConfig extends Omit<Parsed, "host" | "domain" | "apps" | "nginx" | "backup" | "postgres"> {
    stack: string;
    project: string;
    /** Resource name prefix: `vps-stack-<stack>`. */
    prefix: string;
    /** True for stacks that use the local Docker engine (dev). */
    local: boolean;
    domain: string;
    host?: Required<Pick<NonNullable<Parsed["host"]>, "address" | "hostKey">> & NonNullable<Parsed["host"]>;
    apps: AppConfig[];
    postgres: Parsed["postgres"] & { protectVolume: boolean };
    nginx: Parsed["nginx"] & { httpPort: number; httpsPort: number };
    backup: Parsed["backup"] & { directory: string };
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

export interface ConfigProblem {
    /** Config path in `pulumi config set --path` syntax, e.g. `apps[0].image`. */
    path: string;
    message: string;
    /** A command that fixes it. */
    fix: string;
    /** Set for a key outside the project's namespace (e.g. a misspelt `vps-stak:backup`). */
    namespace?: string;
}

export class ConfigError extends Error {
    constructor(public readonly stack: string, public readonly problems: ConfigProblem[]) {
        super(
            `Stack "${stack}" has ${problems.length} configuration problem${problems.length === 1 ? "" : "s"}; nothing was deployed:\n` +
                problems.map((p) => `  - ${p.namespace ?? PROJECT}:${p.path} ${p.message}\n      fix: ${p.fix}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

/** Example values used in fix hints, keyed by path with array indexes replaced by []. */
const EXAMPLES: Record<string, string> = {
    "host": "--path 'host.address' 203.0.113.10",
    "host.address": "203.0.113.10",
    "host.port": "22",
    "host.user": "deploy",
    "host.hostKey": '"$(ssh-keyscan -t ed25519 <address> 2>/dev/null | cut -d" " -f2-)"',
    "host.privateKeyPath": "~/.ssh/id_ed25519",
    "host.controlPersist": "10m",
    "domain": "api.example.com",
    "tls.mode": "ca",
    "tls.acme.email": "admin@example.com",
    "tls.acme.staging": "true",
    "tls.acme.directoryUrl": "https://acme.example.net/directory",
    // "--": a PEM value starts with dashes, which the CLI would otherwise read as a flag.
    "tls.acme.caCertificate": '-- "$(cat acme-ca.pem)"',
    "tls.acme.image": "certbot/certbot:v5.7.0",
    "tls.acme.renewInterval": "12h",
    "tls.acme.memory": "128m",
    "postgres.image": "postgres:16-alpine",
    "postgres.database": "app",
    "postgres.user": "app",
    "postgres.memory": "2g",
    "postgres.cpus": "2",
    "postgres.shmSize": "256m",
    "postgres.sharedBuffers": "256MB",
    "postgres.effectiveCacheSize": "1GB",
    "postgres.maxConnections": "200",
    "postgres.passwordLength": "32",
    "redis.image": "redis:7-alpine",
    "redis.maxmemory": "256mb",
    "redis.maxmemoryPolicy": "allkeys-lru",
    "redis.memory": "512m",
    "redis.cpus": "1",
    "redis.passwordLength": "32",
    "apps": "--path 'apps[0].name' api && pulumi config set --path 'apps[0].image' ghcr.io/acme/api:1.4.2",
    "apps[].name": "api",
    "apps[].image": "ghcr.io/acme/api:1.4.2",
    "apps[].port": "8000",
    "apps[].healthPath": "/health",
    "apps[].healthCommand[]": "node",
    "apps[].static.root": "/usr/share/nginx/html",
    "apps[].proxy.timeouts.connect": "60s",
    "apps[].proxy.timeouts.send": "60s",
    "apps[].proxy.timeouts.read": "60s",
    "apps[].proxy.clientMaxBodySize": "100M",
    "apps[].proxy.rateLimit.rate": "10r/s",
    "apps[].user": "1000:1000",
    "apps[].capAdd[]": "NET_BIND_SERVICE",
    "apps[].migrate.command[]": "migrate",
    "apps[].command[]": "serve",
    "postgres.extensions[]": "pgcrypto",
    "redis.appendonly": "true",
    "redis.appendfsync": "everysec",
    "backup.enabled": "true",
    "apps[].hosts[]": "api.example.com",
    "apps[].paths[]": "/api",
    "apps[].replicas": "2",
    "apps[].memory": "1g",
    "apps[].cpus": "1",
    "nginx.mode": "container",
    "nginx.image": "nginx:1.27-alpine",
    "nginx.httpPort": "80",
    "nginx.httpsPort": "443",
    "nginx.clientMaxBodySize": "100M",
    "nginx.rateLimit.rate": "10r/s",
    "nginx.rateLimit.burst": "20",
    "nginx.timeouts.connect": "60s",
    "nginx.timeouts.send": "60s",
    "nginx.timeouts.read": "60s",
    "nginx.memory": "256m",
    "backup.schedule": '"0 2 * * *"',
    "backup.verifySchedule": '"0 4 * * 0"',
    "backup.timezone": "Europe/Paris",
    "backup.directory": "/var/backups/vps-stack/prod",
    "backup.retention.daily": "7",
    "backup.retention.weekly": "4",
    "backup.retention.monthly": "6",
    "backup.maxAgeHours": "26",
    "releases.healthTimeout": "120s",
    "releases.drainTimeout": "30s",
    "releases.stopTimeout": "10s",
    "releases.keepImages": "3",
};

/**
 * A path in `pulumi config --path` syntax: names that Pulumi's path parser reads as one segment are written
 * `.name`, anything else (a dot, a space, a quote…) `["name"]`.
 */
export function formatPath(path: readonly PropertyKey[]): string {
    let out = "";
    for (const seg of path) {
        if (typeof seg === "number") out += `[${seg}]`;
        else if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(String(seg))) out += `[${JSON.stringify(String(seg))}]`;
        else out += out === "" ? String(seg) : `.${String(seg)}`;
    }
    return out;
}

/** A config path as one shell word: single-quoted as the docs write it, escaped when it holds a quote. */
function pathWord(path: string): string {
    return path.includes("'") ? shellWord(path) : `'${path}'`;
}

function fixFor(path: string, opts: { unset?: boolean; secret?: boolean; value?: string } = {}): string {
    if (opts.unset) return `pulumi config rm --path ${pathWord(path)}`;
    if (opts.value !== undefined) return `pulumi config set${opts.secret ? " --secret" : ""} --path ${pathWord(path)} ${shellWord(opts.value)}`;
    const generic = path.replace(/\[\d+\]/g, "[]");
    const example = EXAMPLES[generic] ?? EXAMPLES[generic.replace(/\[\]$/, "")];
    if (example?.startsWith("--path")) return `pulumi config set ${example}`;
    return `pulumi config set${opts.secret ? " --secret" : ""} --path ${pathWord(path)} ${example ?? "<value>"}`;
}

// ---------------------------------------------------------------------------------------------------------
// Cross-field rules: pure functions, exported for tests
// ---------------------------------------------------------------------------------------------------------

/** True when the image reference names a tag other than `latest`, or a digest. */
export function isPinnedImage(ref: string): boolean {
    if (/@sha256:[a-f0-9]{64}$/.test(ref)) return true;
    const lastSlash = ref.lastIndexOf("/");
    const colon = ref.indexOf(":", lastSlash + 1);
    if (colon < 0) return false;
    const tag = ref.slice(colon + 1);
    return /^[\w][\w.-]{0,127}$/.test(tag) && tag !== "latest";
}

const IMAGE_RE = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

/** Route keys ("host + path") used to find two apps claiming the same traffic. */
export function routeKeys(app: { hosts: string[]; paths: string[] }): string[] {
    return app.hosts.flatMap((h) => app.paths.map((p) => `${h}${p === "/" ? "/" : p.replace(/\/$/, "")}`));
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------

/**
 * Raw Pulumi config for this project: key without namespace → parsed JSON value (or the string itself
 * when it is not JSON). Build it with `readRawConfig()` in the program, or by hand in tests.
 */
export type RawConfigMap = Record<string, unknown>;

/** Turns `pulumi.runtime.allConfig()` into a RawConfigMap for our namespace. */
export function rawConfigFromPulumi(all: Record<string, string>): RawConfigMap {
    const out: RawConfigMap = {};
    for (const [fullKey, value] of Object.entries(all)) {
        const idx = fullKey.indexOf(":");
        if (fullKey.slice(0, idx) !== PROJECT) continue;
        const key = fullKey.slice(idx + 1);
        try {
            out[key] = JSON.parse(value);
        } catch {
            out[key] = value;
        }
    }
    return out;
}

/** Names the stack's own services use as network aliases and container names. */
export const RESERVED_APP_NAMES = ["postgres", "redis", "nginx", "backup", "acme", "edge", "data"];

const TOP_LEVEL_KEYS = Object.keys(configSchema.shape);

const TYPE_NAMES: Record<string, string> = { boolean: "a boolean (true or false)", number: "a number", int: "an integer", string: "a string", array: "a list", object: "a map of keys" };

/** What the user gave, for "expected X, got Y"; never the value of a secret. */
function describeInput(v: unknown, secret: boolean): string {
    if (v === null) return "null";
    if (Array.isArray(v)) return "a list";
    if (typeof v === "object") return `a map (keys: ${Object.keys(v as object).slice(0, 5).join(", ")})`;
    if (secret) return `a ${typeof v}`;
    if (typeof v === "string") return `the string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v)}`;
    return `the ${typeof v} ${String(v)}`;
}

/** `apps` given as a map ({ api: {...} }) rather than a list: a fix that rebuilds it as a list. */
function appsMapFix(input: Record<string, unknown>): string {
    const sets = Object.entries(input).flatMap(([name, app], i) => {
        const image = app && typeof app === "object" && typeof (app as any).image === "string" ? (app as any).image : "ghcr.io/acme/api:1.4.2";
        return [`pulumi config set --path 'apps[${i}].name' ${shellWord(name)}`, `pulumi config set --path 'apps[${i}].image' ${shellWord(image)}`];
    });
    return [`pulumi config rm ${PROJECT}:apps`, ...sets].join(" && ");
}

/** A fix for a value of the wrong type that keeps what the user meant when that is clear ("yes" → true). */
function typeFix(path: string, expected: string, input: unknown, secret: boolean): string {
    if (expected === "boolean" && typeof input === "string") {
        const meant = /^(yes|y|on|1|true)$/i.test(input) ? "true" : /^(no|n|off|0|false)$/i.test(input) ? "false" : undefined;
        if (meant) return fixFor(path, { value: meant });
    }
    if ((expected === "number" || expected === "int") && typeof input === "string" && /^\s*-?\d+\s*$/.test(input)) return fixFor(path, { value: input.trim() });
    // A list given as one string: the list with that one item.
    if (expected === "array" && typeof input === "string") return `${fixFor(path, { unset: true })} && ${fixFor(`${path}[0]`, { value: input })}`;
    // A section or map of the wrong shape: removing it brings back its defaults.
    if (expected === "object" || expected === "record" || expected === "array") return path.includes(".") || path.includes("[") ? fixFor(path, { unset: true }) : `pulumi config rm ${PROJECT}:${path}`;
    return fixFor(path, { secret });
}

function zodProblems(issues: z.core.$ZodIssue[]): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    for (const issue of issues) {
        if (issue.code === "unrecognized_keys") {
            for (const k of issue.keys) {
                const path = formatPath([...issue.path, k]);
                out.push({ path, message: "is not a known key", fix: fixFor(path, { unset: true }) });
            }
            continue;
        }
        const path = formatPath(issue.path);
        const secret = path.startsWith("secrets");
        if (issue.code === "invalid_key") {
            // A bad name in a map: setting it again cannot help, removing it (and adding the right one) does.
            const reason = (issue.issues[0]?.message ?? issue.message).replace(/^Invalid input: /, "");
            out.push({ path, message: `has a key that ${reason}`, fix: fixFor(path, { unset: true }) });
            continue;
        }
        if (issue.code === "invalid_type" && path === "apps" && issue.input && typeof issue.input === "object" && !Array.isArray(issue.input)) {
            out.push({ path, message: "must be a list of apps (- name: api …), not a map keyed by name", fix: appsMapFix(issue.input as Record<string, unknown>) });
            continue;
        }
        if (issue.code === "invalid_type" && issue.input !== undefined) {
            const message = `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeInput(issue.input, secret)}`;
            out.push({ path, message, fix: typeFix(path, issue.expected, issue.input, secret) });
            continue;
        }
        const message = issue.code === "invalid_type" ? "is required" : issue.message.replace(/^Invalid input: /, "");
        // An empty list is filled by setting its first item.
        const emptyList = issue.code === "too_small" && issue.origin === "array" && path !== "apps";
        out.push({ path, message, fix: emptyList ? fixFor(`${path}[0]`, { secret }) : fixFor(path, { secret }) });
    }
    // One line per key: the first problem is the one to fix; the next ones usually follow from it.
    const seen = new Set<string>();
    return out.filter((p) => !seen.has(p.path) && seen.add(p.path));
}

function deleteAt(root: any, path: readonly PropertyKey[]): void {
    if (path.length === 0) return;
    let parent = root;
    for (const seg of path.slice(0, -1)) {
        if (parent == null || typeof parent !== "object") return;
        parent = parent[seg as any];
    }
    if (parent == null || typeof parent !== "object") return;
    const last = path[path.length - 1];
    if (Array.isArray(parent) && typeof last === "number") parent.splice(last, 1);
    else delete parent[last as any];
}

function repairedParse(raw: RawConfigMap): Parsed | undefined {
    const copy = structuredClone(raw);
    for (let round = 0; round < 8; round++) {
        const r = configSchema.safeParse(copy, { reportInput: true });
        if (r.success) return r.data;
        // Deepest paths first, so deleting one does not shift the index of another.
        const paths = r.error.issues
            .flatMap((i) => {
                if (i.code === "unrecognized_keys") return i.keys.map((k) => [...i.path, k]);
                // An app without a usable name keeps its other checks under a stand-in name.
                if (i.path.length === 3 && i.path[0] === "apps" && i.path[2] === "name") {
                    const app = (copy as any).apps?.[i.path[1] as number];
                    if (app && typeof app === "object") app.name = `unnamed-app-${String(i.path[1])}`;
                    return [];
                }
                // A missing required field cannot fall back: drop the object that holds it.
                return i.code === "invalid_type" && i.input === undefined ? [i.path.slice(0, -1)] : [i.path];
            })
            .sort((a, b) => b.length - a.length || String(b[b.length - 1]).localeCompare(String(a[a.length - 1])));
        if (paths.some((p) => p.length === 0)) return undefined;
        for (const p of paths) deleteAt(copy, p);
    }
    return undefined;
}

/** What the deploying machine offers for SSH, checked by environmentProblems(). */
export interface DeployEnvironment {
    /** SSH_AUTH_SOCK, when an agent runs. */
    sshAuthSock?: string;
    /** Tells whether a file exists (the private key); injected so this stays testable. */
    fileExists: (path: string) => boolean;
    /** Reads the private key's text, to check that it is a private key usable without a passphrase. */
    readFile?: (path: string) => string;
    /**
     * Reads a static app's site as it will be uploaded (see readSite); throws an Error that completes
     * "<dir or archive> …". Checked here so that a missing, empty or oversized site fails with the other
     * problems, before any resource.
     */
    loadSite?: (site: { dir?: string; archive?: string }) => SiteFile[];
}

/**
 * Problems with the machine running `pulumi up` rather than with the config: no way to authenticate over
 * SSH. Reported in the same format, before any resource is touched.
 */
export function environmentProblems(cfg: StackConfig, env: DeployEnvironment): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    cfg.apps.forEach((a, i) => {
        const site = a.static;
        if (!env.loadSite || !site || (!site.dir && !site.archive) || (site.dir && site.archive)) return;
        const key = site.archive ? `apps[${i}].static.archive` : `apps[${i}].static.dir`;
        const what = `(${site.archive ?? site.dir})`;
        const fix = site.archive ? `tar -czf ${site.archive} -C ./web/dist .` : `pulumi config set --path '${key}' ./web/dist`;
        try {
            if (!env.loadSite(site).some((f) => f.path === "index.html")) {
                const where = site.archive ? "at its top or under its single top-level directory" : "";
                problems.push({ path: key, message: `${what} has no index.html${where ? ` ${where}` : ""}: build the front end first, or point at its output`, fix });
            }
        } catch (e) {
            const err = e as NodeJS.ErrnoException;
            const message = err.code === "ENOENT" ? "does not exist on this machine: build the front end first" : err.message;
            problems.push({ path: key, message: `${what} ${message}`, fix });
        }
    });
    return [...problems, ...sshProblems(cfg, env)];
}

function sshProblems(cfg: StackConfig, env: DeployEnvironment): ConfigProblem[] {
    if (!cfg.host) return [];
    if (cfg.host.privateKeyPath) {
        const file = cfg.host.privateKeyPath;
        if (!env.fileExists(file)) return [{ path: "host.privateKeyPath", message: `(${file}) does not exist on this machine`, fix: fixFor("host.privateKeyPath") }];
        let problem: string | undefined;
        try {
            problem = env.readFile ? privateKeyProblem(env.readFile(file)) : undefined;
        } catch (e) {
            problem = `cannot be read: ${(e as Error).message}`;
        }
        if (!problem) return [];
        const fix = problem.startsWith("is a public key") && file.endsWith(".pub")
            ? fixFor("host.privateKeyPath", { value: file.slice(0, -4) })
            : problem.startsWith("is encrypted")
              ? `${fixFor("host.privateKeyPath", { unset: true })}   # then: ssh-add ${shellWord(file)}`
              : fixFor("host.privateKeyPath");
        return [{ path: "host.privateKeyPath", message: `(${file}) ${problem}`, fix }];
    }
    return env.sshAuthSock
        ? []
        : [{ path: "host.privateKeyPath", message: "is not set and no SSH agent is running (SSH_AUTH_SOCK is empty)", fix: `${fixFor("host.privateKeyPath")}   # or start ssh-agent and ssh-add your key` }];
}

/** Settings of the Nginx container that the host's own nginx (nginx.mode "host") has no use for. */
const CONTAINER_ONLY_NGINX_KEYS = ["image", "memory", "cpus"] as const;

/** A name for a renamed duplicate app that no app uses and the schema accepts. */
function freeAppName(name: string, taken: Set<string>): string {
    for (let n = 2; ; n++) {
        const candidate = `${name.slice(0, 32 - String(n).length - 1).replace(/-+$/, "")}-${n}`;
        if (!taken.has(candidate) && !RESERVED_APP_NAMES.includes(candidate)) return candidate;
    }
}

/** A path prefix for app `name` that no app serves on any of `hosts` (nor claims further on). */
function freeRoute(name: string, hosts: string[], routes: Map<string, unknown>, apps: { paths: string[] }[]): string {
    const claimed = new Set(apps.flatMap((a) => a.paths.map((p) => (p === "/" ? "/" : p.replace(/\/+$/, "")))));
    for (let n = 1; ; n++) {
        const candidate = n === 1 ? `/${name}` : `/${name}-${n}`;
        if (!claimed.has(candidate) && hosts.every((h) => !routes.has(`${h}${candidate}`))) return candidate;
    }
}

/**
 * The time zone as the container's tz database spells it (its file names are case-sensitive, and an
 * unknown name silently means UTC), or a problem with the right spelling.
 */
export function timeZoneProblem(tz: string): { message: string; suggestion?: string } | undefined {
    const known = Intl.supportedValuesOf("timeZone");
    if (known.includes(tz) || tz === "UTC" || tz === "Etc/UTC") return undefined;
    const sameLetters = known.find((k) => k.toLowerCase() === tz.toLowerCase()) ?? (tz.toLowerCase() === "utc" ? "UTC" : undefined);
    if (sameLetters) return { message: `("${tz}") must be spelt "${sameLetters}": the tz database is case-sensitive, and an unknown name silently means UTC`, suggestion: sameLetters };
    let resolved: string;
    try {
        resolved = new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
    } catch {
        return { message: `("${tz}") is not an IANA time zone such as Europe/Paris` };
    }
    // A link such as Asia/Kolkata or Europe/Kyiv: accepted when written with the database's capitals.
    const titled = tz.replace(/[A-Za-z]+/g, (w) => (w.length <= 3 && w === w.toUpperCase() ? w : w[0].toUpperCase() + w.slice(1).toLowerCase()));
    if (tz === titled || tz === tz.toUpperCase()) return undefined;
    return { message: `("${tz}") must be spelt as in the tz database (e.g. "${resolved}"); an unknown name silently means UTC`, suggestion: resolved };
}

/** Margin over the longest gap between backups: the backup's own run time and a DST change. */
export const BACKUP_AGE_MARGIN_HOURS = 2;

function checkBackup(b: Parsed["backup"], add: (p: ConfigProblem) => void): void {
    for (const key of ["schedule", "verifySchedule"] as const) {
        const r = parseCron(b[key]);
        if ("problem" in r) {
            const example = key === "schedule" ? "0 2 * * *" : "0 4 * * 0";
            add({ path: `backup.${key}`, message: `("${b[key]}") ${r.problem}`, fix: fixFor(`backup.${key}`, { value: r.suggestion ?? example }) });
        }
    }
    const tz = timeZoneProblem(b.timezone);
    if (tz) add({ path: "backup.timezone", message: tz.message, fix: fixFor("backup.timezone", { value: tz.suggestion ?? "Europe/Paris" }) });
    const schedule = parseCron(b.schedule);
    if (!b.enabled || !("schedule" in schedule)) return;
    const gapHours = Math.ceil(maxGapMinutes(schedule.schedule) / 60);
    const needed = gapHours + BACKUP_AGE_MARGIN_HOURS;
    if (b.maxAgeHours >= needed) return;
    const why = `the schedule "${b.schedule}" leaves up to ${gapHours}h between backups, so the backup check would fail between two good backups`;
    if (needed <= MAX_AGE_HOURS_LIMIT) {
        add({ path: "backup.maxAgeHours", message: `(${b.maxAgeHours}) must be at least ${needed}: ${why}`, fix: fixFor("backup.maxAgeHours", { value: String(needed) }) });
    } else {
        add({ path: "backup.schedule", message: `("${b.schedule}") runs too rarely: ${why}, and backup.maxAgeHours is at most ${MAX_AGE_HOURS_LIMIT}`, fix: fixFor("backup.schedule", { value: "0 2 * * *" }) });
    }
}

function editDistance(a: string, b: string): number {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    return d[a.length][b.length];
}

/**
 * Keys of other namespaces that look like a typo of ours (`vps-stak:backup`, `vps_stack:backup`): Pulumi
 * keeps them, the program never reads them, and the stack would silently run on defaults.
 * `otherKeys` are full keys (`namespace:key`) as pulumi.runtime.allConfig() lists them.
 */
export function namespaceProblems(otherKeys: string[], ownKeys: string[], stack: string): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    for (const full of otherKeys) {
        const idx = full.indexOf(":");
        if (idx < 0) continue;
        const ns = full.slice(0, idx);
        const key = full.slice(idx + 1);
        if (ns === PROJECT) continue;
        const squashed = ns.toLowerCase().replace(/[^a-z0-9]/g, "");
        if (squashed !== PROJECT.replace(/-/g, "") && editDistance(ns.toLowerCase(), PROJECT) > 2) continue;
        const top = key.split(/[.[]/)[0];
        const clash = ownKeys.includes(top);
        out.push({
            namespace: ns,
            path: key,
            message: `looks like a typo of ${PROJECT}:${key}; the program only reads ${PROJECT}:* keys, so this value is ignored${clash ? ` (${PROJECT}:${top} is also set: move what you need into it)` : ""}`,
            fix: clash
                ? `pulumi config rm ${shellWord(full)}`
                : `sed -i ${shellWord(`s/^  ${ns.replace(/[.*[\]^$\\/]/g, "\\$&")}:${key.replace(/[.*[\]^$\\/]/g, "\\$&")}:/  ${PROJECT}:${key.replace(/[&\\/]/g, "\\$&")}:/`)} Pulumi.${stack}.yaml`,
        });
    }
    return out;
}

/**
 * Validates the raw config for `stack` and resolves stack-dependent defaults. Throws a ConfigError that
 * lists every problem at once.
 */
export function loadConfig(raw: RawConfigMap, stack: string, now: Date = new Date(), otherKeys: string[] = []): StackConfig {
    const problems: ConfigProblem[] = [...namespaceProblems(otherKeys, Object.keys(raw), stack)];
    const local = (LOCAL_STACKS as readonly string[]).includes(stack);

    // Unknown top-level keys get a "did you mean" rather than zod's generic message.
    for (const key of Object.keys(raw)) {
        if (!TOP_LEVEL_KEYS.includes(key)) {
            problems.push({
                path: key,
                message: `is not a known key (known: ${TOP_LEVEL_KEYS.join(", ")})`,
                fix: `pulumi config rm ${PROJECT}:${key}`,
            });
        }
    }
    const known: Record<string, unknown> = Object.fromEntries(Object.entries(raw).filter(([k]) => TOP_LEVEL_KEYS.includes(k)));

    const result = configSchema.safeParse(known, { reportInput: true });
    if (!result.success) problems.push(...zodProblems(result.error.issues));
    // With type errors present, the cross-field rules still run on a copy where each bad value falls back to
    // its default (or its app is left out), so one run reports every problem.
    const cfg = result.success ? result.data : repairedParse(known);
    if (!cfg) throw new ConfigError(stack, problems);
    const reported = new Set(problems.map((p) => p.path));
    const add = (p: ConfigProblem) => {
        if (!reported.has(p.path)) problems.push(p);
        reported.add(p.path);
    };

    // --- host -------------------------------------------------------------------------------------------
    if (!local) {
        if (!cfg.host?.address) add({ path: "host.address", message: `is required on stack "${stack}" (only dev deploys locally)`, fix: fixFor("host.address") });
        if (!cfg.host?.hostKey) add({ path: "host.hostKey", message: "is required: the VPS's host key is pinned, never trusted on first use", fix: fixFor("host.hostKey") });
    }
    if (!local && cfg.domain === "localhost") {
        add({ path: "domain", message: `must be the public host name of stack "${stack}", not localhost`, fix: fixFor("domain") });
    }
    const domain = cfg.domain ?? "localhost";

    // --- images -----------------------------------------------------------------------------------------
    const images: [string, string][] = [
        ["postgres.image", cfg.postgres.image],
        ["redis.image", cfg.redis.image],
        ["nginx.image", cfg.nginx.image],
        ...cfg.apps.flatMap((a, i) => (a.image ? [[`apps[${i}].image`, a.image] as [string, string]] : [])),
        ...(cfg.tls.mode === "acme" ? [["tls.acme.image", cfg.tls.acme.image] as [string, string]] : []),
    ];
    for (const [path, ref] of images) {
        if (!IMAGE_RE.test(ref)) {
            add({ path, message: `"${ref}" is not a valid image reference`, fix: fixFor(path) });
        } else if (!local && !isPinnedImage(ref)) {
            add({ path, message: `"${ref}" has no pinned tag or digest ("latest" and untagged images are refused outside dev)`, fix: fixFor(path) });
        }
    }

    // --- resources --------------------------------------------------------------------------------------
    if (sizeToMiB(cfg.postgres.sharedBuffers.replace(/B$/, "")) >= sizeToMiB(cfg.postgres.memory)) {
        add({ path: "postgres.sharedBuffers", message: `(${cfg.postgres.sharedBuffers}) must be smaller than postgres.memory (${cfg.postgres.memory})`, fix: fixFor("postgres.sharedBuffers") });
    }
    if (sizeToMiB(cfg.redis.maxmemory) >= sizeToMiB(cfg.redis.memory)) {
        add({ path: "redis.maxmemory", message: `(${cfg.redis.maxmemory}) must be smaller than redis.memory (${cfg.redis.memory}) so Redis evicts before the kernel kills it`, fix: fixFor("redis.maxmemory") });
    }

    // --- apps ---------------------------------------------------------------------------------------------
    const names = new Map<string, number>();
    const allNames = new Set(cfg.apps.map((a) => a.name));
    // Route key → the app (by index: two apps may share a name, which is its own problem) that serves it.
    const routes = new Map<string, { name: string; index: number }>();
    const apps: AppConfig[] = cfg.apps.map((a, i) => {
        const hosts = a.hosts ?? [domain];
        if (RESERVED_APP_NAMES.includes(a.name)) {
            add({ path: `apps[${i}].name`, message: `"${a.name}" is reserved for a service of the stack (${RESERVED_APP_NAMES.join(", ")})`, fix: fixFor(`apps[${i}].name`) });
        }
        if (names.has(a.name)) {
            add({ path: `apps[${i}].name`, message: `"${a.name}" is already used by apps[${names.get(a.name)}]`, fix: fixFor(`apps[${i}].name`, { value: freeAppName(a.name, allNames) }) });
        } else names.set(a.name, i);
        const seenPaths = new Map<string, number>();
        a.paths.forEach((p, j) => {
            const norm = p === "/" ? "/" : p.replace(/\/+$/, "");
            const first = seenPaths.get(norm);
            if (first !== undefined) {
                add({ path: `apps[${i}].paths[${j}]`, message: `(${p}) is the same route as apps[${i}].paths[${first}] (${a.paths[first]}); nginx refuses a duplicate location`, fix: fixFor(`apps[${i}].paths[${j}]`, { unset: true }) });
                return;
            }
            seenPaths.set(norm, j);
            for (const key of routeKeys({ hosts, paths: [p] })) {
                const owner = routes.get(key);
                if (owner !== undefined && owner.index !== i) {
                    const free = freeRoute(a.name, hosts, routes, cfg.apps);
                    add({ path: `apps[${i}].paths[${j}]`, message: `route ${key} is already served by apps[${owner.index}] ("${owner.name}")`, fix: fixFor(`apps[${i}].paths[${j}]`, { value: free }) });
                    return;
                }
            }
            for (const key of routeKeys({ hosts, paths: [p] })) routes.set(key, { name: a.name, index: i });
        });
        for (const name of Object.keys(a.env)) {
            if (name in a.secrets || ["DATABASE_URL", "REDIS_URL"].includes(name)) {
                const path = formatPath(["apps", i, "env", name]);
                add({ path, message: "is a secret managed by vps-stack; it cannot also be a plain variable", fix: fixFor(path, { unset: true }) });
            }
        }
        for (const [name, spec] of Object.entries(a.secrets)) {
            if (spec === "required" && !(name in cfg.secrets)) {
                add({ path: `secrets.${name}`, message: `is required by app "${a.name}" and not set`, fix: `pulumi config set --secret --path 'secrets.${name}' <value>` });
            }
            if (spec === "generate" && name in cfg.secrets) {
                add({ path: `secrets.${name}`, message: `is generated for app "${a.name}"; a provided value would be ignored`, fix: `pulumi config rm --path 'secrets.${name}'` });
            }
        }
        if (a.registry && !("REGISTRY_PASSWORD" in cfg.secrets)) {
            add({ path: "secrets.REGISTRY_PASSWORD", message: `is required by apps[${i}].registry`, fix: "pulumi config set --secret --path 'secrets.REGISTRY_PASSWORD' <token>" });
        }
        if (a.kind === "container" && !a.image) {
            add({ path: `apps[${i}].image`, message: "is required", fix: fixFor(`apps[${i}].image`) });
        }
        if (a.kind === "static" && a.migrate) {
            add({ path: `apps[${i}].migrate`, message: "does not apply to a static site", fix: `pulumi config rm --path 'apps[${i}].migrate'` });
        }
        if (a.kind === "container" && a.static) {
            add({ path: `apps[${i}].static`, message: 'only applies to apps of kind "static"', fix: `pulumi config set --path 'apps[${i}].kind' static` });
        }
        if (a.kind === "static") {
            if (!a.image && !a.static?.dir && !a.static?.archive) {
                add({
                    path: `apps[${i}].static.dir`,
                    message: "or apps[].static.archive is required for a static app without its own image (the built site to upload)",
                    fix: `pulumi config set --path 'apps[${i}].static.dir' ./web/dist   # or: pulumi config set --path 'apps[${i}].static.archive' ./web/dist.tar.gz`,
                });
            }
            if (a.static?.dir && a.static?.archive) {
                add({ path: `apps[${i}].static.archive`, message: "and apps[].static.dir are both set: upload one or the other", fix: `pulumi config rm --path 'apps[${i}].static.dir'   # or rm static.archive` });
            }
            // A static site is Nginx serving files: no database, no cache, no secrets, one fixed port.
            return { ...a, hosts, image: a.image ?? cfg.nginx.image, port: STATIC_SITE_PORT, database: false, redis: false, secrets: {}, static: a.static ?? { root: "/usr/share/nginx/html" } };
        }
        return { ...a, hosts, image: a.image ?? "" };
    });
    // --- proxy and TLS ------------------------------------------------------------------------------------
    if (cfg.nginx.mode === "host") {
        const rawNginx = (known.nginx ?? {}) as Record<string, unknown>;
        for (const key of CONTAINER_ONLY_NGINX_KEYS) {
            if (rawNginx && typeof rawNginx === "object" && key in rawNginx) {
                add({ path: `nginx.${key}`, message: 'only applies to the Nginx container; with nginx.mode "host" the host\'s own nginx serves the site and this setting would be ignored', fix: fixFor(`nginx.${key}`, { unset: true }) });
            }
        }
        if (local) add({ path: "nginx.mode", message: `"host" writes into a VPS's own nginx over SSH; stack "${stack}" deploys locally`, fix: fixFor("nginx.mode") });
        const taken = new Map<number, string>();
        cfg.apps.forEach((a, i) => {
            if (a.hostPort === undefined) {
                add({ path: `apps[${i}].hostPort`, message: 'is required with nginx.mode "host" (the 127.0.0.1 port the host\'s nginx proxies to)', fix: `pulumi config set --path 'apps[${i}].hostPort' ${8000 + i * 10}` });
                return;
            }
            for (let r = 0; r < a.replicas; r++) {
                const p = a.hostPort + r;
                const owner = taken.get(p);
                if (owner !== undefined || p > 65535) {
                    add({ path: `apps[${i}].hostPort`, message: `(${a.hostPort}) with ${a.replicas} replicas needs 127.0.0.1:${p}, ${owner ? `already used by app "${owner}"` : "out of range"}`, fix: `pulumi config set --path 'apps[${i}].hostPort' ${8000 + i * 10}` });
                    break;
                }
                taken.set(p, a.name);
            }
        });
    } else {
        cfg.apps.forEach((a, i) => {
            if (a.hostPort !== undefined) add({ path: `apps[${i}].hostPort`, message: 'only applies with nginx.mode "host"; apps are never published otherwise', fix: `pulumi config rm --path 'apps[${i}].hostPort'` });
        });
    }
    if (cfg.tls.mode === "acme") {
        if (local) {
            add({ path: "tls.mode", message: `"acme" needs a public host name the ACME server can reach on port 80; stack "${stack}" deploys locally (use "ca")`, fix: fixFor("tls.mode") });
        }
        if (!cfg.tls.acme.email) add({ path: "tls.acme.email", message: 'is required with tls.mode "acme" (the ACME account\'s contact)', fix: fixFor("tls.acme.email") });
        if (cfg.tls.acme.directoryUrl && cfg.tls.acme.staging) {
            add({ path: "tls.acme.staging", message: "and tls.acme.directoryUrl are both set; staging only picks Let's Encrypt's staging directory", fix: fixFor("tls.acme.staging", { unset: true }) });
        }
    }
    if (cfg.tls.mode === "provided") {
        const cert = cfg.secrets.TLS_CERTIFICATE;
        const key = cfg.secrets.TLS_PRIVATE_KEY;
        if (!cert) add({ path: "secrets.TLS_CERTIFICATE", message: 'is required with tls.mode "provided" (the certificate chain, leaf first)', fix: `pulumi config set --secret --path 'secrets.TLS_CERTIFICATE' -- "$(cat fullchain.pem)"` });
        if (!key) add({ path: "secrets.TLS_PRIVATE_KEY", message: 'is required with tls.mode "provided"', fix: `pulumi config set --secret --path 'secrets.TLS_PRIVATE_KEY' -- "$(cat privkey.pem)"` });
        if (cert && key) {
            const hosts = [...new Set(cfg.apps.flatMap((a) => a.hosts ?? [domain]))];
            for (const p of validateProvidedCertificate(cert, key, hosts, now)) {
                add({ path: p.key, message: p.message, fix: `pulumi config set --secret --path '${p.key}' -- "$(cat ${p.key.endsWith("KEY") ? "privkey" : "fullchain"}.pem)"` });
            }
        }
    }
    const httpPort = cfg.nginx.httpPort ?? (local ? 8080 : 80);
    const httpsPort = cfg.nginx.httpsPort ?? (local ? 8443 : 443);
    if (httpPort === httpsPort) {
        const free = [local ? 8443 : 443, 8443, 4443, 9443].find((p) => p !== httpPort)!;
        add({ path: "nginx.httpsPort", message: `(${httpsPort}) must differ from nginx.httpPort (${httpPort})`, fix: fixFor("nginx.httpsPort", { value: String(free) }) });
    }

    // --- backups ------------------------------------------------------------------------------------------
    checkBackup(cfg.backup, add);

    // --- rotation -----------------------------------------------------------------------------------------
    const generated = new Set(apps.flatMap((a) => Object.entries(a.secrets).filter(([, s]) => s === "generate").map(([n]) => n)));
    for (const key of Object.keys(cfg.rotate)) {
        if (key !== "postgres" && key !== "redis" && !generated.has(key)) {
            add({ path: `rotate.${key}`, message: "names no generated secret (use postgres, redis or a secret marked generate)", fix: `pulumi config rm --path 'rotate.${key}'` });
        }
    }

    if (problems.length > 0) throw new ConfigError(stack, problems);

    return {
        ...cfg,
        stack,
        project: PROJECT,
        prefix: `${PROJECT}-${stack}`,
        local,
        domain,
        host: local ? undefined : (cfg.host as StackConfig["host"]),
        apps,
        postgres: { ...cfg.postgres, protectVolume: cfg.postgres.protectVolume ?? stack === "prod" },
        nginx: { ...cfg.nginx, httpPort, httpsPort },
        backup: { ...cfg.backup, directory: cfg.backup.directory ?? `/var/backups/${PROJECT}/${stack}` },
    };
}
