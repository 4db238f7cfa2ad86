// Checks of the machine running `pulumi up` rather than of the config: a way to authenticate over SSH,
// and the static sites the config points at. Same problem format, before any resource is touched.
import { shellWord } from "../sinks/shell";
import { ConfigProblem, fixFor } from "./problems";
import { StackConfig } from "./schema";
import { PUBLIC_KEY_RE } from "./provision";
import { privateKeyProblem } from "./ssh-keys";
import { SiteFile } from "./static-files";

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
    return [...problems, ...sshProblems(cfg, env), ...provisionProblems(cfg, env)];
}

/**
 * host.provision's deploy keys: the configured ones, or the public key beside host.privateKeyPath. Sets
 * them on the config (the plan reads them there) and reports what is missing.
 */
function provisionProblems(cfg: StackConfig, env: DeployEnvironment): ConfigProblem[] {
    const p = cfg.host?.provision;
    if (!p) return [];
    const problems: ConfigProblem[] = [];
    if (p.privateKeyPath) {
        const file = p.privateKeyPath;
        let problem: string | undefined;
        if (!env.fileExists(file)) problem = "does not exist on this machine";
        else {
            try {
                problem = env.readFile ? privateKeyProblem(env.readFile(file)) : undefined;
            } catch (e) {
                problem = `cannot be read: ${(e as Error).message}`;
            }
        }
        if (problem) problems.push({ path: "host.provision.privateKeyPath", message: `(${file}) ${problem}`, fix: fixFor("host.provision.privateKeyPath") });
    }
    if (p.authorizedKeys?.length) return problems;
    const fix = `pulumi config set --path 'host.provision.authorizedKeys[0]' "$(cat ~/.ssh/id_ed25519.pub)"`;
    const key = cfg.host?.privateKeyPath;
    if (!key) {
        problems.push({ path: "host.provision.authorizedKeys", message: "is required when host.privateKeyPath is unset (the agent's keys are not known here): list the deploy user's public keys", fix });
        return problems;
    }
    const pub = `${key}.pub`;
    let text: string | undefined;
    try {
        text = env.fileExists(pub) && env.readFile ? env.readFile(pub).trim() : undefined;
    } catch {
        text = undefined;
    }
    if (!text) {
        problems.push({ path: "host.provision.authorizedKeys", message: `is unset and ${pub} (the public half of host.privateKeyPath) cannot be read`, fix: `pulumi config set --path 'host.provision.authorizedKeys[0]' "$(ssh-keygen -y -f ${key.startsWith("~/") ? `~/${shellWord(key.slice(2))}` : shellWord(key)})"` });
        return problems;
    }
    const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    const bad = lines.find((l) => !PUBLIC_KEY_RE.test(l));
    if (bad !== undefined || lines.length === 0) {
        problems.push({ path: "host.provision.authorizedKeys", message: `is unset and ${pub} is not one public key line without options`, fix });
        return problems;
    }
    p.authorizedKeys = lines;
    return problems;
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
