// The proxy container's texts: where its config lives, the install script (scripts/vps-stack-proxy.sh) and
// the command that runs it, the reload, the watchers that run beside nginx, its command and healthcheck.
import * as fs from "fs";
import * as path from "path";
import { shellCommand, shellWord } from "../sinks/shell";
import { NGINX_HEALTH_PATH } from "./nginx";

/** The config volume, inside the proxy (read-only) and the throwaway container that installs it. */
export const PROXY_CONFIG_DIR = "/etc/nginx/vps-stack";
/** What the proxy runs: the live version's nginx.conf (a symlink switched by vps-stack-proxy.sh). */
export const NGINX_CONF_FILE = `${PROXY_CONFIG_DIR}/live/nginx.conf`;
/** Relative to the version's directory, so `nginx -t` of a staged version reads its own files. */
export const NGINX_CERT_FILE = "tls/server.crt";
export const NGINX_KEY_FILE = "tls/server.key";

/** The install script, read from the repository: piped to `sh -s` in a throwaway proxy container. */
export const proxyScript = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-proxy.sh"), "utf8");

/**
 * Reloads the proxy container's nginx from inside, after `nginx -t`. Never `docker kill --signal`: Docker
 * records any `docker kill` as a manual stop, and from then on `restart: unless-stopped` no longer brings
 * the container back after a crash or a daemon restart (moby/moby#41302), so the first reboot after a
 * deploy would leave the site down.
 */
export function nginxReloadCommand(container: string): string {
    const nginx = ["docker", "exec", container, "nginx", "-c", NGINX_CONF_FILE];
    return `${shellCommand([...nginx, "-t", "-q"])} && ${shellCommand([...nginx, "-s", "reload"])}`;
}

/**
 * A shell loop started beside the proxy's nginx: nginx resolves upstream names once, when it loads its
 * config, so an app container that comes back with another address (stopped and started by hand, or
 * restarted after the others by a daemon restart) would get 502s until the next reload. Every `interval`
 * seconds this resolves the upstream hosts named in the live config and, when their addresses changed,
 * reloads nginx after `nginx -t` (which fails, and is retried, while a name does not resolve).
 */
export function upstreamWatcher(opts: { conf?: string; nginx?: string; interval?: number } = {}): string {
    const conf = opts.conf ?? NGINX_CONF_FILE;
    const nginx = opts.nginx ?? `nginx -c ${conf}`;
    return [
        `c=${shellWord(conf)}`,
        "addrs() {",
        `  for h in $(sed -n 's/^[[:space:]]*server[[:space:]][[:space:]]*\\([A-Za-z0-9._-]*\\):[0-9][0-9]*.*/\\1/p' "$c" 2>/dev/null | sort -u); do`,
        // Every address, sorted (Docker's DNS shuffles them): glibc's ahostsv4 (Debian), busybox's nslookup
        // (Alpine, whose getent prints only the first).
        '    { getent ahostsv4 "$h" 2>/dev/null || nslookup "$h" 2>/dev/null | sed -n "s/^Address[^:]*: *//p"; } | awk -v h="$h" \'{ print h, $1 }\' | sort -u',
        "  done | sort | cksum",
        "}",
        // A new config (a release) is reloaded by whoever installed it: start over from its addresses.
        'conf() { cksum < "$c" 2>/dev/null; }',
        "last=$(addrs) seen=$(conf)",
        `while sleep ${opts.interval ?? 5}; do`,
        "  now=$(addrs)",
        '  if [ "$(conf)" != "$seen" ]; then seen=$(conf) last=$now; continue; fi',
        '  [ "$now" = "$last" ] && continue',
        `  if ${nginx} -t -q 2>/dev/null; then ${nginx} -s reload && last=$now && echo "vps-stack: an upstream address changed, nginx reloaded" >&2; fi`,
        "done",
    ].join("\n");
}

/** The call that follows proxyScript on stdin: install this config (and, without ACME, certificate and key). */
export function proxyInstallCall(config: string, files?: { cert: string; key: string }): string {
    const b64 = (v: string) => Buffer.from(v).toString("base64");
    return files
        ? `vps_proxy_install ${PROXY_CONFIG_DIR} ${b64(config)} ${b64(files.cert)} ${b64(files.key)}\n`
        : `vps_proxy_install ${PROXY_CONFIG_DIR} ${b64(config)}\n`;
}

/**
 * Installs the configuration into the config volume through a throwaway container of the proxy's image on
 * the edge network (so nginx -t resolves the upstreams as the proxy will), then reloads the running proxy
 * (not on the first deploy, when it starts on the installed config).
 */
export function proxyInstallCommand(a: { container: string; network: string; image: string; configVolume: string; readOnlyMounts: { volume: string; path: string }[] }): string {
    return [
        shellCommand([
            "docker", "run", "--rm", "-i", "--network", a.network,
            "-v", `${a.configVolume}:${PROXY_CONFIG_DIR}`,
            ...a.readOnlyMounts.flatMap((m) => ["-v", `${m.volume}:${m.path}:ro`]),
            "--entrypoint", "sh", a.image, "-s",
        ]),
        `if [ "$(docker inspect -f '{{.State.Running}}' ${shellWord(a.container)} 2>/dev/null)" = true ]; then ${nginxReloadCommand(a.container)}; fi`,
    ].join(" && ");
}

/** The proxy's command: the watchers in the background, nginx in the foreground. */
export function proxyCommand(watchers: string[]): string[] {
    return ["sh", "-c", [...watchers.map((w) => `(\n${w}\n) &`), `exec ${PROXY_NGINX} -g 'daemon off;'`].join("\n")];
}

/** nginx with the live config, as the proxy's command and its watchers run it. */
export const PROXY_NGINX = `nginx -c ${NGINX_CONF_FILE}`;

/** The proxy's healthcheck: its own liveness endpoint, with whichever of curl and wget the image has. */
export function proxyHealthTest(): string[] {
    const healthUrl = `http://127.0.0.1${NGINX_HEALTH_PATH}`;
    return ["CMD-SHELL", `curl -fsS -o /dev/null ${healthUrl} || wget -q -O /dev/null ${healthUrl}`];
}
