// The stack's configuration schema: one zod schema over every `vps-stack:*` key, with its defaults and
// descriptions (the generated reference reads both), and the types of the validated config. Value checks
// that a sink defines (nginx values, bind paths) are the sink's own rule, so config never accepts what a
// sink could not write.
import { z } from "zod";
import { bindHostPathProblem } from "../sinks/docker";
import { alertsSchema } from "./alerts";
import { nginxValueProblem } from "../sinks/nginx";
import { hostKeyProblem } from "./ssh-keys";
import { firewallSchema, provisionSchema } from "./provision";
import { SITE_ARCHIVE_RE } from "./static-files";
import { DURATION_RE, SIZE_RE, sizeToMiB } from "./units";

export const PROJECT = "vps-stack";

/** Stacks that run against the local Docker engine, with no SSH. */
export const LOCAL_STACKS = ["dev"] as const;

// ---------------------------------------------------------------------------------------------------------
// Value shapes shared by several sections
// ---------------------------------------------------------------------------------------------------------

const HOSTNAME_RE = /^(?=.{1,253}$)(localhost|([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})$/;
const IPV4_RE = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;
const SQL_IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;
const APP_NAME_RE = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/;
// Each repetition ends in "/", so there is one way to match any input: linear time, no backtracking blowup.
const ROUTE_PATH_RE = /^\/(?:[a-zA-Z0-9._~-]+\/)*[a-zA-Z0-9._~-]*$/;
// A URL path and query (RFC 3986 characters) without "$", which nginx would expand in proxy_pass.
const HEALTH_PATH_RE = /^\/[A-Za-z0-9._~!&'()*+,;=:@%/?-]*$/;


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

function pids(defaultValue: number, description: string) {
    return z
        .number()
        .int("must be an integer")
        .min(16, "is too small: at least 16 (the image's own processes, a healthcheck and a shell)")
        .max(65536, "is absurd: at most 65536")
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
        provision: provisionSchema,
        firewall: firewallSchema,
    })
    .describe("How to reach the VPS over SSH, and how to prepare it.");

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
        pidsLimit: pids(128, "Most processes and threads in the ACME container (certbot, its shell, a healthcheck)."),
    })
    .describe("Let's Encrypt (tls.mode acme): HTTP-01 challenges through the proxy's /.well-known/acme-challenge/.");

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
            .describe('Extensions created in the database (if missing) whenever the server container is new and whenever this list changes, so one added later reaches an existing database (add "vector" only with an image that ships pgvector).'),
        maxConnections: z.number().int().min(10).max(10000).default(200).describe("max_connections."),
        sharedBuffers: z.string().regex(/^\d+(kB|MB|GB)$/, "must be a PostgreSQL size such as 256MB").default("256MB").describe("shared_buffers."),
        effectiveCacheSize: z.string().regex(/^\d+(kB|MB|GB)$/, "must be a PostgreSQL size such as 1GB").default("1GB").describe("effective_cache_size."),
        maxSlotWalKeepSize: z
            .string()
            .regex(/^\d+(MB|GB)$/, "must be a PostgreSQL size such as 2GB")
            .default("2GB")
            .describe("max_slot_wal_keep_size: the most WAL the server keeps for a WAL receiver that is down (backup.pitr), so that it never fills the disk."),
        memory: memory("2g", "Memory limit of the container."),
        cpus: cpus(2, "CPU limit of the container."),
        pidsLimit: pids(512, "Most processes and threads in the container: one per connection (maxConnections) plus about 20 of the server's own and the healthchecks; at least maxConnections + 64."),
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
        pidsLimit: pids(128, "Most processes and threads in the container (redis-server's threads, a forked save or AOF rewrite, healthchecks)."),
        passwordLength: z.number().int().min(32, "must be at least 32").max(128).default(32).describe("Length of the generated password."),
        protectVolume: z.boolean().optional().describe("Protect the data volume (sessions, queues: the AOF) from deletion (default: true on prod, false elsewhere)."),
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
    pidsLimit: pids(512, "Most processes and threads in each of its containers: raise it for runtimes with large thread pools."),
    user: z.string().regex(/^[a-z0-9_-]+(:[a-z0-9_-]+)?$/, "must be user[:group] or uid[:gid]").optional().describe("Run as this user (non-root)."),
    readOnly: z
        .boolean()
        .default(true)
        .describe("Read-only root filesystem, with a tmpfs on /tmp (64m) and the secret files in a read-only volume of their own; set false for an image that writes elsewhere (or give it apps[].volumes)."),
    volumes: z
        .array(
            z.strictObject({
                name: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, "must be lower-case letters, digits and dashes, starting with a letter (e.g. uploads)").describe("Volume name; the Docker volume is vps-stack-<stack>-<app>-<name>."),
                path: z
                    .string()
                    .superRefine((v, ctx) => {
                        const problem = bindHostPathProblem(v) ?? (/^\/(run\/secrets|tmp|proc|sys|dev)(\/|$)/.test(v) ? "must not be under /run/secrets, /tmp, /proc, /sys or /dev" : undefined);
                        if (problem) ctx.addIssue({ code: "custom", message: problem });
                    })
                    .describe("Where it is mounted in every replica, e.g. /app/uploads."),
                backup: z.boolean().default(true).describe("Archived on backup.volumeSchedule with the backup retention (and off-site with backup.offsite)."),
                protect: z.boolean().optional().describe("Protect the volume from deletion (default: true on prod, false elsewhere)."),
            }),
        )
        .default([])
        .describe("Named volumes (e.g. uploaded files): kept across releases and replacements, shared by the replicas, backed up."),
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
        pidsLimit: pids(256, "Most processes and threads in the proxy container (one nginx worker per CPU, the watchers, reloads, healthchecks)."),
    })
    .describe("The Nginx reverse proxy.");

// Cron expressions and time zones are checked for meaning in loadConfig (checkBackup), where a problem can
// carry a fix built from what the user wrote (a wrapped range rewritten, a time zone's right case).
const cron = (def: string, description: string) => z.string().default(def).describe(description);

/** Room for a monthly schedule (a 744h gap) plus the 2h margin. */
export const MAX_AGE_HOURS_LIMIT = 24 * 32;

/**
 * An S3 endpoint: scheme, host and optional port, nothing else (it becomes part of restic's repository
 * URL, in the container's environment). http:// only where the operator says the path is private.
 */
const S3_ENDPOINT_RE = /^https?:\/\/[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?\/?$/;
/** S3 bucket names as AWS defines them (lower case, digits, dots, hyphens; 3 to 63). */
const S3_BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const offsiteSchema = z
    .strictObject({
        endpoint: z
            .string()
            .regex(S3_ENDPOINT_RE, "must be an S3 endpoint URL such as https://s3.eu-west-3.amazonaws.com (scheme, host, optional port; no path)")
            .describe("S3-compatible endpoint, e.g. https://s3.fr-par.scw.cloud or https://s3.us-west-004.backblazeb2.com."),
        insecureHttp: z.boolean().default(false).describe("Allow an http:// endpoint (a store on a private network, or tests). The data is encrypted either way; the credentials are not."),
        bucket: z.string().regex(S3_BUCKET_RE, "must be an S3 bucket name: 3 to 63 lower-case letters, digits, dots or hyphens").describe("The bucket (create it first, or let restic create it on first use)."),
        region: z.string().regex(/^[a-z0-9-]{1,64}$/, "must be a region name such as eu-west-3").default("us-east-1").describe("The bucket's region."),
        pathStyle: z.boolean().optional().describe("Path-style addressing (endpoint/bucket) instead of a bucket sub-domain; default: restic's choice (sub-domain on AWS, path elsewhere). Self-hosted stores usually need true."),
        prefix: z
            .string()
            .regex(/^(?!(.*\/)?\.{1,2}(\/|$))[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, "must be a path of letters, digits, dots, hyphens and underscores, such as vps-stack/prod (no . or .. part)")
            .optional()
            .describe("Path inside the bucket (default vps-stack/<stack>): one restic repository per stack."),
        accessKeyId: z.string().regex(/^[A-Za-z0-9+/=_-]{1,128}$/, "must be an access key id (letters, digits, + / = _ -)").describe("Access key id; the secret key is the secret config key secrets.OFFSITE_SECRET_ACCESS_KEY."),
        image: image("Image of the uploader (restic), pinned by tag or digest.").default("restic/restic:0.17.3"),
        memory: memory("256m", "Memory limit of the uploader."),
        cpus: cpus(0.5, "CPU limit of the uploader."),
        pidsLimit: pids(256, "Most processes and threads in the uploader (restic's threads, its scheduler's shells)."),
    })
    .describe(
        "Off-site copy of the backup directory (dumps, base backups, WAL) to an S3-compatible store, encrypted on the VPS by restic with the passphrase secrets.OFFSITE_PASSPHRASE: lose the passphrase and the off-site copy cannot be read.",
    );

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
        pitr: z
            .strictObject({
                enabled: z.boolean().default(true).describe("Stream the WAL continuously into the backup directory (pg_receivewal) and take base backups (pg_basebackup), so the database can be restored to any second of the last `days`."),
                baseSchedule: cron("0 1 * * *", "When base backups run (cron, in `timezone`)."),
                days: z.number().int().min(1).max(90).default(7).describe("Days back to which a point-in-time restore is possible: base backups and WAL older than the oldest base backup in this window are deleted (the newest base backup is always kept)."),
                baseMaxAgeHours: z
                    .number()
                    .int()
                    .min(1)
                    .max(MAX_AGE_HOURS_LIMIT)
                    .default(26)
                    .describe("The backup check fails when the newest base backup is older than this; it must exceed the longest gap between two base backups by 2h."),
            })
            .prefault({})
            .describe("Point-in-time recovery: continuous WAL archiving and base backups."),
        volumeSchedule: cron("30 2 * * *", "When the apps' volumes are archived (cron, in `timezone`)."),
        rpoSeconds: z
            .number()
            .int()
            .min(10, "must be at least 10")
            .max(3600)
            .default(60)
            .describe("With backup.offsite: at most this many seconds of committed writes are lost if the VPS is lost; the WAL goes off-site every rpoSeconds/2."),
        offsite: offsiteSchema.optional(),
        memory: memory("512m", "Memory limit of the backup container."),
        cpus: cpus(1, "CPU limit of the backup container."),
        pidsLimit: pids(256, "Most processes and threads in the backup container, and in the WAL receiver (pg_dump, pg_basebackup, the scheduler's shells)."),
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
    alerts: alertsSchema.prefault({}),
    releases: releasesSchema.prefault({}),
    rotate: rotateSchema.default({}),
    secrets: secretsSchema.default({}),
});

export type RawConfig = z.input<typeof configSchema>;
export type Parsed = z.output<typeof configSchema>;
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
    redis: Parsed["redis"] & { protectVolume: boolean };
    nginx: Parsed["nginx"] & { httpPort: number; httpsPort: number };
    backup: Parsed["backup"] & { directory: string };
}
