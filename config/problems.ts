// Config problems and their fixes: every problem names its key and a command that fixes it, and the
// whole list is one error.
import { shellWord } from "../sinks/shell";
import { configReference } from "./reference";
import { PROJECT } from "./schema";

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

/**
 * Example values used in fix hints, keyed by path with array indexes replaced by []: for keys without a
 * default, or where the default makes a poor example. Every other key's example is its schema default.
 */
const EXAMPLES: Record<string, string> = {
    "host": "--path 'host.address' 203.0.113.10",
    "host.address": "203.0.113.10",
    "host.hostKey": '"$(ssh-keyscan -t ed25519 <address> 2>/dev/null | cut -d" " -f2-)"',
    "host.privateKeyPath": "~/.ssh/id_ed25519",
    "domain": "api.example.com",
    "tls.acme.email": "admin@example.com",
    "tls.acme.staging": "true",
    "tls.acme.directoryUrl": "https://acme.example.net/directory",
    // "--": a PEM value starts with dashes, which the CLI would otherwise read as a flag.
    "tls.acme.caCertificate": '-- "$(cat acme-ca.pem)"',
    "apps": "--path 'apps[0].name' api && pulumi config set --path 'apps[0].image' ghcr.io/acme/api:1.4.2",
    "apps[].name": "api",
    "apps[].image": "ghcr.io/acme/api:1.4.2",
    "apps[].healthCommand[]": "node",
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
    "apps[].hosts[]": "api.example.com",
    "apps[].paths[]": "/api",
    "apps[].replicas": "2",
    "nginx.httpPort": "80",
    "nginx.httpsPort": "443",
    "backup.timezone": "Europe/Paris",
    "backup.directory": "/var/backups/vps-stack/prod",
};

/** Scalar schema defaults as a fix writes them: a value with spaces in double quotes. */
const DEFAULTS: Record<string, string> = Object.fromEntries(
    configReference().flatMap((r) => (r.default === undefined || typeof r.default === "object" ? [] : [[r.path, /\s/.test(String(r.default)) ? `"${String(r.default)}"` : String(r.default)]])),
);

const exampleFor = (generic: string): string | undefined => EXAMPLES[generic] ?? DEFAULTS[generic];

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

export function fixFor(path: string, opts: { unset?: boolean; secret?: boolean; value?: string } = {}): string {
    if (opts.unset) return `pulumi config rm --path ${pathWord(path)}`;
    if (opts.value !== undefined) return `pulumi config set${opts.secret ? " --secret" : ""} --path ${pathWord(path)} ${shellWord(opts.value)}`;
    const generic = path.replace(/\[\d+\]/g, "[]");
    const example = exampleFor(generic) ?? exampleFor(generic.replace(/\[\]$/, ""));
    if (example?.startsWith("--path")) return `pulumi config set ${example}`;
    return `pulumi config set${opts.secret ? " --secret" : ""} --path ${pathWord(path)} ${example ?? "<value>"}`;
}
