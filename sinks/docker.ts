// The Docker sink: values that become parts of Docker's own string formats (bind specs "host:container",
// environment entries "NAME=value") and healthcheck commands.
// Rules: a bind's host path is absolute, normalized and free of ":" and "," (Docker splits bind specs on
// ":" and mount options on ","), and of control characters; an environment entry's name is a plain
// identifier and its value has no NUL; healthchecks are exec form (["CMD", …]), so no value is ever parsed
// by a shell.

/** Why `path` cannot be the host side of a bind mount, or undefined when it can. */
export function bindHostPathProblem(path: string): string | undefined {
    if (!path.startsWith("/")) return "must be an absolute path";
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(path)) return "must not contain control characters (newlines, tabs, NUL)";
    if (path.includes(":")) return 'must not contain ":": Docker splits a bind mount "host:container[:options]" on it';
    if (path.includes(",")) return 'must not contain ",": Docker reads it as a separator of mount options';
    if (path === "/") return "must not be the root directory";
    if (path.split("/").some((seg) => seg === "." || seg === "..")) return 'must not contain "." or ".." segments';
    if (/\/\/|\/$/.test(path)) return "must be written without repeated or trailing slashes";
    return undefined;
}

/** "host:container[:ro]", refusing host paths Docker would read as something else. */
export function bindSpec(hostPath: string, containerPath: string, readOnly = false): string {
    for (const p of [hostPath, containerPath]) {
        const problem = bindHostPathProblem(p);
        if (problem) throw new Error(`docker sink: bind path ${JSON.stringify(p)} ${problem}`);
    }
    return `${hostPath}:${containerPath}${readOnly ? ":ro" : ""}`;
}

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One "NAME=value" entry of a container's environment. */
export function dockerEnv(name: string, value: string): string {
    if (!ENV_NAME_RE.test(name)) throw new Error(`docker sink: ${JSON.stringify(name)} is not an environment variable name`);
    if (value.includes("\0")) throw new Error(`docker sink: the value of ${name} contains NUL`);
    return `${name}=${value}`;
}

/** An exec-form healthcheck: Docker runs argv as given, with no shell in between. */
export function execHealthTest(argv: string[]): string[] {
    if (argv.length === 0) throw new Error("docker sink: a healthcheck needs a command");
    for (const a of argv) if (a.includes("\0")) throw new Error("docker sink: a healthcheck argument contains NUL");
    return ["CMD", ...argv];
}

/**
 * An HTTP healthcheck for an image that has curl or wget (or both): one small fixed script tries curl,
 * then wget. The URL is the script's $1, never part of the script's text, so `&`, `;`, `$(…)` or quotes in
 * it are just bytes of the URL.
 */
export const HTTP_CHECK_SCRIPT = 'curl -fsS -o /dev/null "$1" || wget -q -O /dev/null "$1"';

export function httpHealthTest(url: string): string[] {
    return execHealthTest(["sh", "-c", HTTP_CHECK_SCRIPT, "sh", url]);
}
