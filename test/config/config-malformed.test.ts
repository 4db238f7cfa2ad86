// Malformed configs, grouped by class: what a careless user types and what an attacker who controls one
// config value would try. Every case must be rejected before any resource, name its key, and carry a fix
// that really fixes: the fix command is applied to the raw config (applyFix interprets `pulumi config
// set/rm --path` and the namespace rename) and the config is loaded again, where that problem must be gone.
import { ConfigError, ConfigProblem, environmentProblems, loadConfig, RawConfigMap } from "../../config";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";

function good(): any {
    return {
        host: { address: "203.0.113.10", hostKey: KEY },
        domain: "api.example.com",
        apps: [{ name: "api", image: "ghcr.io/acme/api:1.4.2" }],
    };
}

// ---------------------------------------------------------------------------------------------------------
// A small interpreter for the fix commands
// ---------------------------------------------------------------------------------------------------------

/** Splits one command line into words as sh would (quotes and backslashes; no expansions). */
function shellWords(line: string): string[] {
    const words: string[] = [];
    let cur: string | undefined;
    for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (c === "'") {
            const end = line.indexOf("'", i + 1);
            cur = (cur ?? "") + line.slice(i + 1, end);
            i = end;
        } else if (c === '"') {
            let j = i + 1;
            let s = "";
            for (; line[j] !== '"'; j++) s += line[j] === "\\" && '"\\$`'.includes(line[j + 1]) ? line[++j] : line[j];
            cur = (cur ?? "") + s;
            i = j;
        } else if (c === "\\") cur = (cur ?? "") + line[++i];
        else if (c === " " || c === "\t") {
            if (cur !== undefined) words.push(cur);
            cur = undefined;
        } else if (c === "#" && cur === undefined) break;
        else cur = (cur ?? "") + c;
    }
    if (cur !== undefined) words.push(cur);
    return words;
}

/** `a.b[0]["x.y"]` → ["a", "b", 0, "x.y"], as Pulumi's --path parser reads it. */
function parsePath(path: string): (string | number)[] {
    const out: (string | number)[] = [];
    const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(path))) out.push(m[1] !== undefined ? m[1] : m[2] !== undefined ? Number(m[2]) : JSON.parse(`"${m[3]}"`));
    return out;
}

/** Pulumi stores --path values that look like booleans or integers as such. */
function typed(v: string): unknown {
    if (v === "true" || v === "false") return v === "true";
    if (/^-?\d+$/.test(v)) return Number(v);
    return v;
}

interface World {
    raw: RawConfigMap;
    /** Keys of other namespaces, as `ns:key` → value. */
    other: Record<string, unknown>;
    privateKeyPath?: string;
}

function applyFix(world: World, fix: string, placeholder: string): void {
    for (const command of fix.split(/ && |\n/)) {
        const words = shellWords(command.trim()).map((w) => (/^<[^>]+>$/.test(w) || w.includes("$(") ? placeholder : w));
        if (words[0] === "sed") {
            // sed -i 's/^  ns:key:/  vps-stack:key:/' Pulumi.<stack>.yaml: the namespace rename.
            const m = /^s\/\^ {2}(.*):\/ {2}(.*):\/$/.exec(words[2])!;
            const from = m[1].replace(/\\(.)/g, "$1");
            const to = m[2].replace(/\\(.)/g, "$1");
            const value = world.other[from];
            delete world.other[from];
            world.raw[to.slice("vps-stack:".length)] = value;
            continue;
        }
        expect(words.slice(0, 2)).toEqual(["pulumi", "config"]);
        const verb = words[2];
        const rest = words.slice(3).filter((w) => w !== "--secret" && w !== "--");
        const usePath = rest[0] === "--path";
        const args = usePath ? rest.slice(1) : rest;
        let key = args[0];
        if (!usePath) {
            const ns = key.includes(":") ? key.slice(0, key.indexOf(":")) : "vps-stack";
            if (ns !== "vps-stack") {
                expect(verb).toBe("rm");
                delete world.other[key];
                continue;
            }
            key = key.slice(key.indexOf(":") + 1);
        }
        const path = usePath ? parsePath(key) : [key];
        if (verb === "rm") {
            if (path.length === 1 && path[0] === "host.privateKeyPath") throw new Error("unexpected");
            if (path.join(".") === "host.privateKeyPath") world.privateKeyPath = undefined;
            let parent: any = world.raw;
            for (const seg of path.slice(0, -1)) parent = parent?.[seg];
            const last = path[path.length - 1];
            if (Array.isArray(parent) && typeof last === "number") parent.splice(last, 1);
            else if (parent) delete parent[last];
        } else {
            expect(verb).toBe("set");
            let parent: any = world.raw;
            path.slice(0, -1).forEach((seg, i) => {
                if (parent[seg] === undefined || typeof parent[seg] !== "object") parent[seg] = typeof path[i + 1] === "number" ? [] : {};
                parent = parent[seg];
            });
            parent[path[path.length - 1]] = typed(args[1]);
            if (path.join(".") === "host.privateKeyPath") world.privateKeyPath = args[1];
        }
    }
}

function problemsOf(world: World, stack: string, env?: Env): ConfigProblem[] {
    const otherKeys = Object.keys(world.other);
    try {
        const cfg = loadConfig(world.raw, stack, new Date("2026-06-01T00:00:00Z"), otherKeys);
        return env ? environmentProblems(cfg, envFor(env, world)) : [];
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
}

// ---------------------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------------------

/** Key files on a pretend deploying machine, for host.privateKeyPath. */
type Env = Record<string, string>;
function envFor(files: Env, world: World) {
    return { sshAuthSock: "/tmp/agent.sock", fileExists: (p: string) => p in files, readFile: (p: string) => files[p], privateKeyPath: world.privateKeyPath };
}

interface Case {
    title: string;
    mutate: (c: any) => void;
    /** The key the problem must name (without the namespace). */
    key: string;
    namespace?: string;
    stack?: string;
    /** Other namespaces' keys. */
    other?: Record<string, unknown>;
    /** Substituted for a placeholder (<value>, $(ssh-keyscan …)) in the fix. */
    placeholder?: string;
    env?: Env;
}

const LONG = "a".repeat(5000);
const c = (title: string, mutate: (c: any) => void, key: string, more: Partial<Case> = {}): Case => ({ title, mutate, key, ...more });

const classes: Record<string, Case[]> = {
    "nginx injection: values that would become directives": [
        c("header value with an nginx variable", (x) => (x.apps[0].proxy = { headers: { "X-A": "$request_uri" } }), "apps[0].proxy.headers.X-A"),
        c("header value with a newline and a directive", (x) => (x.apps[0].proxy = { headers: { "X-A": 'a";\nreturn 200 pwned;#' } }), "apps[0].proxy.headers.X-A"),
        c("header value with CR LF (response splitting)", (x) => (x.apps[0].proxy = { headers: { "X-A": "a\r\nSet-Cookie: s=1" } }), "apps[0].proxy.headers.X-A"),
        c("header value with NUL", (x) => (x.apps[0].proxy = { headers: { "X-A": "a\0b" } }), "apps[0].proxy.headers.X-A"),
        c("header value with a tab", (x) => (x.apps[0].proxy = { headers: { "X-A": "a\tb" } }), "apps[0].proxy.headers.X-A"),
        c("header value with non-ASCII text", (x) => (x.apps[0].proxy = { headers: { "X-A": "café" } }), "apps[0].proxy.headers.X-A"),
        c("header value with ${} interpolation", (x) => (x.apps[0].proxy = { headers: { "X-A": "${host}" } }), "apps[0].proxy.headers.X-A"),
        c("header name with a colon", (x) => (x.apps[0].proxy = { headers: { "X-A:": "1" } }), 'apps[0].proxy.headers["X-A:"]'),
        c("header name with a semicolon and a directive", (x) => (x.apps[0].proxy = { headers: { "X;return 200 x": "1" } }), 'apps[0].proxy.headers["X;return 200 x"]'),
        c("header name with a newline", (x) => (x.apps[0].proxy = { headers: { "X\nY": "1" } }), 'apps[0].proxy.headers["X\\nY"]'),
        c("static root with an nginx variable", (x) => (x.apps[0] = { name: "web", kind: "static", static: { dir: "./web/dist", root: "$document_root/x" } }), "apps[0].static.root"),
        c("static root with a newline", (x) => (x.apps[0] = { name: "web", kind: "static", static: { dir: "./web/dist", root: "/srv\nautoindex on;" } }), "apps[0].static.root"),
        c("relative static root", (x) => (x.apps[0] = { name: "web", kind: "static", static: { dir: "./web/dist", root: "html" } }), "apps[0].static.root"),
        c("route path with a semicolon", (x) => (x.apps[0].paths = ["/api;return 200 x"]), "apps[0].paths[0]"),
        c("route path with braces", (x) => (x.apps[0].paths = ["/api/{id}"]), "apps[0].paths[0]"),
        c("route path with a space", (x) => (x.apps[0].paths = ["/api v2"]), "apps[0].paths[0]"),
        c("route path with a quote", (x) => (x.apps[0].paths = ['/api"']), "apps[0].paths[0]"),
        c("route path with a backslash", (x) => (x.apps[0].paths = ["/api\\"]), "apps[0].paths[0]"),
        c("route path with a dollar", (x) => (x.apps[0].paths = ["/$uri"]), "apps[0].paths[0]"),
        c("route path with a double slash", (x) => (x.apps[0].paths = ["/api//v2"]), "apps[0].paths[0]"),
        c("route path without a leading slash", (x) => (x.apps[0].paths = ["api"]), "apps[0].paths[0]"),
        c("route path with unicode", (x) => (x.apps[0].paths = ["/café"]), "apps[0].paths[0]"),
        c("very long route path that ends badly", (x) => (x.apps[0].paths = [`/${"a-".repeat(20000)}{`]), "apps[0].paths[0]"),
        c("host name with a semicolon", (x) => (x.apps[0].hosts = ["evil.com;"]), "apps[0].hosts[0]"),
        c("host name with a brace", (x) => (x.apps[0].hosts = ["a.example.com{"]), "apps[0].hosts[0]"),
        c("wildcard host name", (x) => (x.apps[0].hosts = ["*.example.com"]), "apps[0].hosts[0]"),
        c("domain with a space and a directive", (x) => (x.domain = "example.com return"), "domain"),
        c("client body size with a directive", (x) => (x.nginx = { clientMaxBodySize: "1m; autoindex on" }), "nginx.clientMaxBodySize"),
        c("rate with a directive", (x) => (x.nginx = { rateLimit: { rate: "10r/s;" } }), "nginx.rateLimit.rate"),
        c("timeout with a directive", (x) => (x.apps[0].proxy = { timeouts: { read: "60s; return 200" } }), "apps[0].proxy.timeouts.read"),
    ],
    "shell and healthcheck injection": [
        c("health path with command substitution", (x) => (x.apps[0].healthPath = "/health$(touch${IFS}x)"), "apps[0].healthPath"),
        c("health path with backticks", (x) => (x.apps[0].healthPath = "/health`id`"), "apps[0].healthPath"),
        c("health path with a space", (x) => (x.apps[0].healthPath = "/health -o /etc/passwd"), "apps[0].healthPath"),
        c("health path with a double quote", (x) => (x.apps[0].healthPath = '/health"'), "apps[0].healthPath"),
        c("health path with a newline", (x) => (x.apps[0].healthPath = "/health\nreboot"), "apps[0].healthPath"),
        c("health path with a brace (nginx)", (x) => (x.apps[0].healthPath = "/health{"), "apps[0].healthPath"),
        c("health path without a slash", (x) => (x.apps[0].healthPath = "health"), "apps[0].healthPath"),
        c("health command with NUL", (x) => (x.apps[0].healthCommand = ["node", "a\0b"]), "apps[0].healthCommand[1]"),
        c("empty health command", (x) => (x.apps[0].healthCommand = []), "apps[0].healthCommand"),
        c("migration command with an empty word", (x) => (x.apps[0].migrate = { command: ["alembic", ""] }), "apps[0].migrate.command[1]"),
        c("env value with NUL", (x) => (x.apps[0].env = { A: "x\0y" }), "apps[0].env.A"),
        c("app name with a semicolon", (x) => (x.apps[0].name = "api;rm"), "apps[0].name"),
        c("app name with command substitution", (x) => (x.apps[0].name = "$(id)"), "apps[0].name"),
        c("app name too long", (x) => (x.apps[0].name = "a".repeat(40)), "apps[0].name"),
        c("SSH user with a semicolon", (x) => (x.host.user = "deploy;id"), "host.user"),
        c("container user with a space", (x) => (x.apps[0].user = "1000 --privileged"), "apps[0].user"),
        c("capability in lower case", (x) => (x.apps[0].capAdd = ["net_admin"]), "apps[0].capAdd[0]"),
        c("image with a newline", (x) => (x.apps[0].image = "ghcr.io/acme/api:1\n--privileged"), "apps[0].image"),
        c("image with command substitution", (x) => (x.apps[0].image = "$(curl evil)/api:1"), "apps[0].image"),
        c("host address with a semicolon", (x) => (x.host.address = "203.0.113.10;id"), "host.address"),
        c("private key path that is relative", (x) => (x.host.privateKeyPath = "id_ed25519"), "host.privateKeyPath"),
    ],
    "Docker bind specs": [
        c("backup directory with a colon", (x) => (x.backup = { directory: "/srv/backups:/etc" }), "backup.directory"),
        c("backup directory with a comma", (x) => (x.backup = { directory: "/srv/a,b" }), "backup.directory"),
        c("backup directory with a newline", (x) => (x.backup = { directory: "/srv/a\nb" }), "backup.directory"),
        c("backup directory with ..", (x) => (x.backup = { directory: "/srv/../etc" }), "backup.directory"),
        c("backup directory that is the root", (x) => (x.backup = { directory: "/" }), "backup.directory"),
        c("relative backup directory", (x) => (x.backup = { directory: "./backups" }), "backup.directory"),
        c("backup directory with a trailing slash", (x) => (x.backup = { directory: "/srv/backups/" }), "backup.directory"),
    ],
    "SQL identifiers": [
        c("database name with a statement", (x) => (x.postgres = { database: "app; DROP TABLE users" }), "postgres.database"),
        c("database name with a quote", (x) => (x.postgres = { database: 'app"' }), "postgres.database"),
        c("database user in upper case", (x) => (x.postgres = { user: "App" }), "postgres.user"),
        c("database name over 63 bytes", (x) => (x.postgres = { database: "a".repeat(64) }), "postgres.database"),
        c("extension with a quote", (x) => (x.postgres = { extensions: ['uuid"ossp'] }), "postgres.extensions[0]"),
        c("extension with a statement", (x) => (x.postgres = { extensions: ["pgcrypto; DROP"] }), "postgres.extensions[0]"),
    ],
    "cron and time zones": [
        c("a range across midnight", (x) => (x.backup = { schedule: "0 22-4 * * *" }), "backup.schedule"),
        c("a stepped range across midnight", (x) => (x.backup = { schedule: "0 22-4/2 * * *" }), "backup.schedule"),
        c("days of week across Sunday", (x) => (x.backup = { verifySchedule: "0 4 * * 5-1" }), "backup.verifySchedule"),
        c("an hour out of range", (x) => (x.backup = { schedule: "0 25 * * *" }), "backup.schedule"),
        c("words instead of cron", (x) => (x.backup = { verifySchedule: "every sunday" }), "backup.verifySchedule"),
        c("six fields (seconds)", (x) => (x.backup = { schedule: "0 0 2 * * *" }), "backup.schedule"),
        c("L (last day), which the scheduler cannot list", (x) => (x.backup = { schedule: "0 2 L * *" }), "backup.schedule"),
        c("nth weekday", (x) => (x.backup = { schedule: "0 2 * * 1#2" }), "backup.schedule"),
        c("a macro", (x) => (x.backup = { schedule: "@daily" }), "backup.schedule"),
        c("an empty schedule", (x) => (x.backup = { schedule: "" }), "backup.schedule"),
        c("a day that never comes", (x) => (x.backup = { schedule: "0 2 30 2 *" }), "backup.schedule"),
        c("a zero step", (x) => (x.backup = { schedule: "*/0 * * * *" }), "backup.schedule"),
        c("a schedule with a shell command after it", (x) => (x.backup = { schedule: "0 2 * * *; rm -rf /" }), "backup.schedule"),
        c("a lower-case time zone", (x) => (x.backup = { timezone: "europe/paris" }), "backup.timezone"),
        c("an upper-case time zone", (x) => (x.backup = { timezone: "EUROPE/PARIS" }), "backup.timezone"),
        c("utc in lower case", (x) => (x.backup = { timezone: "utc" }), "backup.timezone"),
        c("a city alone", (x) => (x.backup = { timezone: "Paris" }), "backup.timezone"),
        c("a time zone with a trailing space", (x) => (x.backup = { timezone: "Europe/Paris " }), "backup.timezone"),
        c("a made-up time zone", (x) => (x.backup = { timezone: "Mars/Olympus_Mons" }), "backup.timezone"),
        c("a time zone with a path", (x) => (x.backup = { timezone: "../../etc/passwd" }), "backup.timezone"),
        c("a wrongly cased multi-word zone", (x) => (x.backup = { timezone: "America/new_york" }), "backup.timezone"),
    ],
    "backups that would never be fresh enough": [
        c("weekly schedule with the default max age", (x) => (x.backup = { schedule: "0 2 * * 0" }), "backup.maxAgeHours"),
        c("monthly schedule with a daily max age", (x) => (x.backup = { schedule: "0 2 1 * *", maxAgeHours: 26 }), "backup.maxAgeHours"),
        c("every other day with the default max age", (x) => (x.backup = { schedule: "0 0 */2 * *" }), "backup.maxAgeHours"),
        c("weekdays only with the default max age", (x) => (x.backup = { schedule: "0 2 * * 1-5" }), "backup.maxAgeHours"),
        c("hourly schedule with a one-hour max age", (x) => (x.backup = { schedule: "0 * * * *", maxAgeHours: 1 }), "backup.maxAgeHours"),
        c("a leap-day schedule", (x) => (x.backup = { schedule: "0 2 29 2 *" }), "backup.schedule"),
        c("max age of zero", (x) => (x.backup = { maxAgeHours: 0 }), "backup.maxAgeHours"),
        c("weekly base backups with the default base max age", (x) => (x.backup = { pitr: { baseSchedule: "0 1 * * 0" } }), "backup.pitr.baseMaxAgeHours"),
        c("a base backup schedule that never comes", (x) => (x.backup = { pitr: { baseSchedule: "0 1 31 2 *" } }), "backup.pitr.baseSchedule"),
        c("a base backup schedule across midnight", (x) => (x.backup = { pitr: { baseSchedule: "0 22-2 * * *" } }), "backup.pitr.baseSchedule"),
        c("a PITR window of zero days", (x) => (x.backup = { pitr: { days: 0 } }), "backup.pitr.days"),
        c("a slot WAL cap in Redis's units", (x) => (x.postgres = { maxSlotWalKeepSize: "2gb" }), "postgres.maxSlotWalKeepSize"),
    ],
    "wrong types": [
        c('"yes" for a boolean', (x) => (x.redis = { appendonly: "yes" }), "redis.appendonly"),
        c("a string for a number", (x) => (x.postgres = { maxConnections: "200" }), "postgres.maxConnections"),
        c("a string for replicas", (x) => (x.apps[0].replicas = "2"), "apps[0].replicas"),
        c("null for a port", (x) => (x.apps[0].port = null), "apps[0].port"),
        c("a number for the domain", (x) => (x.domain = 42), "domain"),
        c("a string for a section", (x) => (x.nginx = "container"), "nginx"),
        c("a string for the route list", (x) => (x.apps[0].paths = "/api"), "apps[0].paths"),
        c("a list for the env map", (x) => (x.apps[0].env = ["A=1"]), "apps[0].env"),
        c("apps as a map keyed by name", (x) => (x.apps = { api: { image: "ghcr.io/acme/api:1.4.2" } }), "apps"),
        c("a string for backup.enabled", (x) => (x.backup = { enabled: "no" }), "backup.enabled"),
        c("an object for an image", (x) => (x.apps[0].image = { name: "x" }), "apps[0].image"),
        c("a fractional replica count", (x) => (x.apps[0].replicas = 1.5), "apps[0].replicas"),
        c("a negative memory", (x) => (x.apps[0].memory = "-1g"), "apps[0].memory"),
        c("a memory with a bad unit", (x) => (x.redis = { memory: "1tb" }), "redis.memory"),
    ],
    "names and routes that clash": [
        c("two apps with one name", (x) => x.apps.push({ name: "api", image: "ghcr.io/acme/web:1.0.0", paths: ["/web"] }), "apps[1].name"),
        c("three apps with one name", (x) => x.apps.push({ name: "api", image: "ghcr.io/acme/web:1.0.0", paths: ["/web"] }, { name: "api-2", image: "ghcr.io/acme/x:1.0.0", paths: ["/x"] }, { name: "api", image: "ghcr.io/acme/y:1.0.0", paths: ["/y"] }), "apps[3].name"),
        c("a reserved app name", (x) => (x.apps[0].name = "postgres"), "apps[0].name", { placeholder: "api" }),
        c("two apps on the same route", (x) => x.apps.push({ name: "web", image: "ghcr.io/acme/web:1.0.0" }), "apps[1].paths[0]"),
        c("a route clash whose suggested route is taken", (x) => x.apps.push({ name: "web", image: "ghcr.io/acme/web:1.0.0", paths: ["/web", "/"] }, { name: "x", image: "ghcr.io/acme/x:1.0.0", paths: ["/web"] }), "apps[2].paths[0]"),
        c("the same path twice in one app", (x) => (x.apps[0].paths = ["/api", "/api/"]), "apps[0].paths[1]"),
        c("http and https on one port", (x) => (x.nginx = { httpPort: 8443, httpsPort: 8443 }), "nginx.httpsPort"),
        c("https port set to the default http port", (x) => (x.nginx = { httpsPort: 80 }), "nginx.httpsPort"),
        c("http port set to the default https port", (x) => (x.nginx = { httpPort: 443 }), "nginx.httpsPort"),
        c("a plain variable named like a managed secret", (x) => (x.apps[0].env = { DATABASE_URL: "postgres://x" }), "apps[0].env.DATABASE_URL"),
        c("an env name with a dot", (x) => (x.apps[0].env = { "my.var": "1" }), 'apps[0].env["my.var"]'),
        c("an env name in lower case", (x) => (x.apps[0].env = { debug: "1" }), "apps[0].env.debug"),
        c("an env name with a dash", (x) => (x.apps[0].env = { "MY-VAR": "1" }), "apps[0].env.MY-VAR"),
        c("an env name starting with a digit", (x) => (x.apps[0].env = { "1VAR": "1" }), 'apps[0].env["1VAR"]'),
        c("an env name with a quote", (x) => (x.apps[0].env = { "A'B": "1" }), `apps[0].env["A'B"]`),
        c("a secret name with a space", (x) => (x.secrets = { "API KEY": "s3cret" }), 'secrets["API KEY"]'),
        c("a rotation key naming nothing", (x) => (x.rotate = { NOPE: "2026-01-01" }), "rotate.NOPE"),
    ],
    "settings that would be silently ignored": [
        c("nginx.memory with nginx.mode host", (x) => ((x.nginx = { mode: "host", memory: "512m" }), (x.apps[0].hostPort = 8000)), "nginx.memory"),
        c("nginx.cpus with nginx.mode host", (x) => ((x.nginx = { mode: "host", cpus: 2 }), (x.apps[0].hostPort = 8000)), "nginx.cpus"),
        c("nginx.image with nginx.mode host", (x) => ((x.nginx = { mode: "host", image: "nginx:1.27-alpine" }), (x.apps[0].hostPort = 8000)), "nginx.image"),
        c("a hostPort without nginx.mode host", (x) => (x.apps[0].hostPort = 8000), "apps[0].hostPort"),
        c("a misspelt namespace (vps-stak)", () => undefined, "backup", { namespace: "vps-stak", other: { "vps-stak:backup": { retention: { daily: 30 } } } }),
        c("an underscore namespace (vps_stack)", () => undefined, "domain", { namespace: "vps_stack", other: { "vps_stack:domain": "api.example.com" } }),
        c("a capitalised namespace", () => undefined, "apps", { namespace: "VPS-Stack", other: { "VPS-Stack:apps": [] } }),
        c("a misspelt namespace whose key is also set correctly", (x) => (x.backup = { maxAgeHours: 30 }), "backup", { namespace: "vps-stakc", other: { "vps-stakc:backup": { maxAgeHours: 48 } } }),
        c("an unknown top-level key", (x) => (x.postgress = { memory: "1g" }), "postgress"),
        c("an unknown nested key", (x) => (x.backup = { retension: { daily: 3 } }), "backup.retension"),
        c("a static site setting on a container app", (x) => (x.apps[0].static = { dir: "./web/dist" }), "apps[0].static"),
    ],
    "SSH keys": [
        c("a host key with a comment", (x) => (x.host.hostKey = `${KEY} root@vps`), "host.hostKey", { placeholder: KEY }),
        c("a truncated host key", (x) => (x.host.hostKey = KEY.slice(0, -10)), "host.hostKey", { placeholder: KEY }),
        c("a host key with a newline and a second key", (x) => (x.host.hostKey = `${KEY}\n${KEY}`), "host.hostKey", { placeholder: KEY }),
        c("a private key path to the public key", (x) => (x.host.privateKeyPath = "/home/me/.ssh/id_ed25519.pub"), "host.privateKeyPath", {
            env: { "/home/me/.ssh/id_ed25519.pub": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+ me@laptop\n", "/home/me/.ssh/id_ed25519": "PRIVATE" },
        }),
        c("an encrypted private key", (x) => (x.host.privateKeyPath = "/home/me/.ssh/id_ed25519"), "host.privateKeyPath", { env: { "/home/me/.ssh/id_ed25519": "ENCRYPTED" } }),
        c("a private key path to some other file", (x) => (x.host.privateKeyPath = "/home/me/notes.txt"), "host.privateKeyPath", { env: { "/home/me/notes.txt": "hello\n", "~/.ssh/id_ed25519": "PRIVATE" } }),
    ],
};

// Real key files, made once with ssh-keygen's formats: sshpk reads them in the code under test.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-keys-"));
execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(keyDir, "plain")]);
execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "passphrase", "-f", path.join(keyDir, "encrypted")]);
const REAL: Record<string, string> = { PRIVATE: fs.readFileSync(path.join(keyDir, "plain"), "utf8"), ENCRYPTED: fs.readFileSync(path.join(keyDir, "encrypted"), "utf8") };

const cases = Object.entries(classes).flatMap(([cls, list]) => list.map((x) => [cls, x.title, x] as [string, string, Case]));

describe("malformed configs", () => {
    it("are many, in many classes", () => {
        expect(Object.keys(classes).length).toBeGreaterThanOrEqual(10);
        expect(cases.length).toBeGreaterThanOrEqual(120);
    });

    test.each(cases)("%s: %s", (_cls, _title, kase) => {
        const stack = kase.stack ?? "preprod";
        const raw = good();
        kase.mutate(raw);
        const env = kase.env && Object.fromEntries(Object.entries(kase.env).map(([k, v]) => [k, REAL[v] ?? v]));
        const world: World = { raw, other: { ...kase.other }, privateKeyPath: raw.host?.privateKeyPath };
        const is = (p: ConfigProblem) => p.path === kase.key && (p.namespace ?? "vps-stack") === (kase.namespace ?? "vps-stack");

        const started = Date.now();
        const problems = problemsOf(world, stack, env);
        expect(Date.now() - started).toBeLessThan(1000);
        const problem = problems.find(is);
        expect({ key: kase.key, problems: problems.map((p) => p.path) }).toEqual({ key: kase.key, problems: expect.arrayContaining([kase.key]) });
        expect(problems.filter(is)).toHaveLength(1);
        expect(problem!.fix).toMatch(/^(pulumi config (set|rm) |sed -i )/);
        // A secret's value never shows in a message.
        if (kase.key.startsWith("secrets")) expect(problem!.message).not.toContain("s3cret");

        applyFix(world, problem!.fix, kase.placeholder ?? "api.example.com");
        const after = problemsOf(world, stack, env).filter(is);
        expect({ fix: problem!.fix, after }).toEqual({ fix: problem!.fix, after: [] });
    });
});

describe("messages", () => {
    const load = (raw: any) => {
        try {
            loadConfig(raw, "preprod");
        } catch (e) {
            return e as ConfigError;
        }
        throw new Error("accepted");
    };

    it("say the real type error, not 'is required'", () => {
        const raw = good();
        raw.redis = { appendonly: "yes" };
        expect(load(raw).message).toContain('vps-stack:redis.appendonly expected a boolean (true or false), got the string "yes"');
    });

    it("keep an app's other problems, and a route clash, next to its type error", () => {
        const raw = good();
        raw.apps.push({ name: "api", image: "ghcr.io/acme/web:latest", replicas: "2", healthPath: "health" });
        const paths = load(raw).problems.map((p) => p.path);
        expect(paths).toEqual(expect.arrayContaining(["apps[1].replicas", "apps[1].healthPath", "apps[1].name", "apps[1].image", "apps[1].paths[0]"]));
    });

    it("give a negative memory one clear line", () => {
        const raw = good();
        raw.apps[0].memory = "-1g";
        const lines = load(raw).problems.filter((p) => p.path === "apps[0].memory");
        expect(lines).toEqual([expect.objectContaining({ message: "must be a size such as 512m or 2g (a positive number and a unit)" })]);
    });

    it("rewrite a range across midnight into the hours meant", () => {
        const raw = good();
        raw.backup = { schedule: "0 22-4 * * *" };
        expect(load(raw).problems.find((p) => p.path === "backup.schedule")!.fix).toBe("pulumi config set --path 'backup.schedule' '0 22-23,0-4 * * *'");
    });

    it("spell the time zone as the tz database does", () => {
        const raw = good();
        raw.backup = { timezone: "europe/paris" };
        expect(load(raw).problems.find((p) => p.path === "backup.timezone")!.fix).toBe("pulumi config set --path 'backup.timezone' Europe/Paris");
    });

    it("set a weekly schedule's max age to the gap plus the margin", () => {
        const raw = good();
        raw.backup = { schedule: "0 2 * * 0" };
        expect(load(raw).problems.find((p) => p.path === "backup.maxAgeHours")!.fix).toBe("pulumi config set --path 'backup.maxAgeHours' 170");
    });

    it("remove a dotted env name with Pulumi's bracket quoting", () => {
        const raw = good();
        raw.apps[0].env = { "my.var": "1" };
        expect(load(raw).problems.find((p) => p.path.includes("my.var"))!.fix).toBe(`pulumi config rm --path 'apps[0].env["my.var"]'`);
    });

    it("do not report other namespaces that are not typos", () => {
        expect(() => loadConfig(good(), "preprod", new Date(), ["docker:host", "aws:region", "vps-stack:domain", "stack:x"])).not.toThrow();
    });

    it("accept canonical time zones and links in the database's spelling", () => {
        for (const timezone of ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Etc/UTC", "America/Argentina/Buenos_Aires"]) {
            expect(() => loadConfig({ ...good(), backup: { timezone } }, "preprod")).not.toThrow();
        }
    });
});

describe("regexes are linear", () => {
    // Inputs shaped to make a backtracking regex explode: long runs that almost match, then fail at the end.
    // The first one takes a backtracking route regex about 1.5 s (it doubles with each extra letter); the
    // long ones would never finish.
    const inputs = ["/" + "a".repeat(28) + "{", "/" + "a/".repeat(20000) + "{", "/" + "a-".repeat(30000) + "!", "a.".repeat(20000) + "@", "x@" + "a.".repeat(20000) + "!", "1".repeat(50000) + "x", LONG + "\0"];
    const fields: ((x: any, v: string) => void)[] = [
        (x, v) => (x.apps[0].paths = [v]),
        (x, v) => (x.apps[0].healthPath = v),
        (x, v) => (x.domain = v),
        (x, v) => (x.apps[0].hosts = [v]),
        (x, v) => (x.apps[0].image = v),
        (x, v) => (x.apps[0].memory = v),
        (x, v) => (x.tls = { mode: "acme", acme: { email: v } }),
        (x, v) => (x.host.address = v),
        (x, v) => (x.backup = { schedule: v }),
        (x, v) => (x.backup = { timezone: v }),
        (x, v) => (x.apps[0].proxy = { headers: { "X-A": v } }),
    ];
    it("every field judges adversarial long inputs within a bounded time", () => {
        for (const [i, set] of fields.entries()) {
            for (const v of inputs) {
                const raw = good();
                set(raw, v);
                const started = Date.now();
                try {
                    loadConfig(raw, "preprod");
                } catch (e) {
                    expect(e).toBeInstanceOf(ConfigError);
                }
                expect([i, v.slice(0, 10), Date.now() - started < 500]).toEqual([i, v.slice(0, 10), true]);
            }
        }
    });
});
