// Loading: turns the raw Pulumi config into a validated, defaulted plain object — or ONE error listing
// every problem with its fix. Pure: no Pulumi runtime calls here, so the whole thing is tested without mocks.
import { z } from "zod";
import { shellWord } from "../sinks/shell";
import { checkAlerts } from "./alerts-rules";
import { ConfigError, ConfigProblem, fixFor, formatPath } from "./problems";
import { validateProvidedCertificate } from "./provided-certificate";
import { AppConfig, configSchema, LOCAL_STACKS, Parsed, PROJECT, STATIC_SITE_PORT, StackConfig } from "./schema";
import { checkBackup, checkMaxAge, CONTAINER_ONLY_NGINX_KEYS, freeAppName, freeRoute, IMAGE_RE, isPinnedImage, namespaceProblems, POSTGRES_PIDS_MARGIN, RESERVED_APP_NAMES, routeKeys } from "./rules";
import { sizeToMiB } from "./units";

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
    const provision = cfg.host?.provision;
    if (provision && local) add({ path: "host.provision", message: `prepares a VPS over SSH; stack "${stack}" deploys to the local engine`, fix: fixFor("host.provision", { unset: true }) });
    if (provision && provision.user === cfg.host?.user) {
        add({ path: "host.provision.user", message: `is host.user ("${provision.user}"): provisioning creates the deploy user, so it needs another way in (root, or a sudo user)`, fix: fixFor("host.provision.user", { value: "root" }) });
    }
    if (provision && cfg.nginx.mode === "host") {
        add({ path: "host.provision", message: 'prepares a Docker host with the Nginx container in front; with nginx.mode "host" the host\'s own nginx and its sudo rights are yours to set up', fix: `${fixFor("host.provision", { unset: true })}   # or: pulumi config set --path 'nginx.mode' container` });
    }
    if (!provision && (cfg.host?.firewall?.allow.length ?? 0) > 0) {
        add({ path: "host.firewall.allow", message: "only applies with host.provision, which installs the firewall", fix: `${fixFor("host.firewall", { unset: true })}   # or set host.provision (see docs/hosts.md)` });
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
        const seen = new Map<string, string>();
        a.volumes.forEach((v, j) => {
            const path = `apps[${i}].volumes[${j}]`;
            if (a.kind === "static") {
                add({ path, message: "is on a static site: its files come from static.dir, static.archive or its image", fix: fixFor(`apps[${i}].volumes`, { unset: true }) });
                return;
            }
            for (const [key, value] of [["name", v.name], ["path", v.path]] as const) {
                const other = seen.get(`${key}=${value}`);
                if (other) add({ path: `${path}.${key}`, message: `("${value}") is also ${other}'s ${key}: each volume of an app needs its own`, fix: fixFor(`${path}`, { unset: true }) });
                seen.set(`${key}=${value}`, path);
            }
        });
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

    // One PostgreSQL process per connection, plus the server's own (about 20) and the healthchecks.
    const pgPids = cfg.postgres.maxConnections + POSTGRES_PIDS_MARGIN;
    if (cfg.postgres.pidsLimit < pgPids) {
        add({
            path: "postgres.pidsLimit",
            message: `(${cfg.postgres.pidsLimit}) must be at least postgres.maxConnections + ${POSTGRES_PIDS_MARGIN} (${pgPids}): PostgreSQL runs a process per connection, and past the limit new connections fail`,
            fix: fixFor("postgres.pidsLimit", { value: String(pgPids) }),
        });
    }

    // --- backups ------------------------------------------------------------------------------------------
    checkBackup(cfg.backup, add);
    if (cfg.backup.enabled && cfg.apps.some((a) => a.volumes.some((v) => v.backup))) {
        checkMaxAge(
            { scheduleKey: "volumeSchedule", schedule: cfg.backup.volumeSchedule, ageKey: "maxAgeHours", maxAge: cfg.backup.maxAgeHours, what: "volume archives", example: "30 2 * * *" },
            add,
        );
    }
    const offsite = cfg.backup.offsite;
    if (offsite && cfg.backup.enabled) {
        if (offsite.endpoint.startsWith("http://") && !offsite.insecureHttp) {
            add({
                path: "backup.offsite.endpoint",
                message: `("${offsite.endpoint}") is plain http: the store's credentials would cross the network in clear; use https, or set backup.offsite.insecureHttp for a store on a private network`,
                fix: fixFor("backup.offsite.endpoint", { value: offsite.endpoint.replace(/^http:/, "https:") }),
            });
        }
        for (const name of ["OFFSITE_SECRET_ACCESS_KEY", "OFFSITE_PASSPHRASE"]) {
            const what = name === "OFFSITE_PASSPHRASE" ? "<a long passphrase, kept outside the VPS too>" : "<secret key>";
            const fix = `pulumi config set --secret --path 'secrets.${name}' ${what}`;
            const value = cfg.secrets[name];
            if (value === undefined) {
                add({ path: `secrets.${name}`, message: "is required by backup.offsite", fix });
            } else if (/[\r\n]/.test(value) || value !== value.trim()) {
                // The key goes into an INI file and the passphrase into a file restic trims: one line, as typed.
                add({ path: `secrets.${name}`, message: "must be one line without leading or trailing spaces", fix });
            } else if (name === "OFFSITE_PASSPHRASE" && value.length < 16) {
                add({ path: `secrets.${name}`, message: "is shorter than 16 characters: it is the only key to the off-site copy", fix: `pulumi config set --secret --path 'secrets.${name}' "$(openssl rand -base64 32)"` });
            }
        }
        if (!cfg.backup.pitr.enabled) {
            add({ path: "backup.pitr.enabled", message: "is false: backup.offsite ships the WAL and base backups, which PITR makes", fix: fixFor("backup.pitr.enabled", { value: "true" }) });
        }
    }

    // --- alerts -------------------------------------------------------------------------------------------
    checkAlerts(cfg.alerts, cfg.secrets, add);

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
        redis: { ...cfg.redis, protectVolume: cfg.redis.protectVolume ?? stack === "prod" },
        nginx: { ...cfg.nginx, httpPort, httpsPort },
        backup: { ...cfg.backup, directory: cfg.backup.directory ?? `/var/backups/${PROJECT}/${stack}` },
    };
}
