// Releases of an app, the host's side: the shell programs that gate, record, drain and retire a release
// (run on the host by remote commands), and the operator's history command. The ids and names are the
// plan's (plan/release.ts). Pure text.
//
// How a release goes (container mode):
//   1. the new release's containers start beside the old ones (new URNs, new names, an edge-network alias
//      of their own), after the migration, if any;
//   2. the gate waits for Docker's healthcheck on every replica and asks healthPath from the proxy's
//      network; if that never succeeds, it prints the last log lines, removes the new containers and
//      fails `pulumi up`: the proxy was never pointed at them, the old release keeps serving;
//   3. the proxy's config names the new alias; it is applied by `nginx -t` and a graceful reload (see
//      NginxProxy), so requests in flight finish on the old workers and the old release;
//   4. the old release's resources are no longer declared, and Pulumi deletes them last: its drain
//      command waits until the proxy has no old worker left (bounded by drainTimeout), then stops the
//      old containers with SIGTERM (the app finishes what it holds) before they are removed.
import { shellCommand, shellWord } from "../sinks/shell";
import { onHost, SshTarget } from "./operator";

/** Where the host keeps each stack's release history (one line per release that went live). */
export function releaseLogPath(stack: string, app: string): string {
    return `$HOME/.local/state/vps-stack/${stack}/releases-${app}.log`;
}

/** The same path as one shell word: $HOME expands, the names never do (they go through the shell sink). */
function releaseLogWord(stack: string, app: string): string {
    return `"$HOME"/.local/state/vps-stack/${shellWord(stack)}/${shellWord(`releases-${app}.log`)}`;
}

export interface GateArgs {
    app: string;
    stack: string;
    release: string;
    image: string;
    containers: string[];
    /** Seconds to wait for every replica to be healthy. */
    timeoutSeconds: number;
    /** HTTP check from the proxy's network: the image that runs it, the network, the URL per container. */
    http?: { image: string; network: string; port: number; path: string };
    /** Images kept on the host for rollbacks (this app's last N releases). */
    keepImages: number;
    /**
     * The networks the containers must be on, with their aliases. The Docker provider creates a container,
     * then connects it network by network: an SSH connection lost in between leaves a container that
     * exists, runs, and can reach nothing, which no refresh notices. The gate connects what is missing.
     */
    networks?: { name: string; aliases: string[] }[];
}

/**
 * The gate, run on the host once the release's containers exist: exit 0 when all are healthy (and answer
 * healthPath from the proxy's network), then record the release and prune this app's older images.
 * Otherwise print why with the containers' last log lines, remove them, and exit 1.
 */
export function gateScript(g: GateArgs): string {
    const cs = g.containers.map(shellWord).join(" ");
    const log = releaseLogWord(g.stack, g.app);
    const lines = [
        "set -u",
        // The SSH session may go away mid-gate: the first message would then kill the script with SIGPIPE
        // before it removed the release.
        "trap '' PIPE",
        `app=${shellWord(g.app)} release=${shellWord(g.release)} image=${shellWord(g.image)}`,
        "fail() {",
        `    echo "vps-stack: app $app: release $release ($image) did not become healthy: $1" >&2`,
        `    for c in ${cs}; do echo "--- last lines of $c:" >&2; docker logs --tail 20 "$c" 2>&1 | sed 's/^/    /' >&2; done`,
        // -v: with a read-only root, the secret files live in an anonymous volume; it goes with them.
        `    docker rm -f -v ${cs} >/dev/null 2>&1`,
        `    echo "vps-stack: app $app: the new containers were removed; the previous release keeps serving" >&2`,
        "    exit 1",
        "}",
        ...(g.networks && g.networks.length > 0
            ? [
                  `for c in ${cs}; do`,
                  // Connecting twice is refused by Docker ("already exists"), which is what should happen.
                  ...g.networks.map(
                      (n) => `    ${shellCommand(["docker", "network", "connect", ...n.aliases.flatMap((a) => ["--alias", a]), n.name])} "$c" >/dev/null 2>&1 || true`,
                  ),
                  "done",
              ]
            : []),
        `deadline=$(( $(date +%s) + ${g.timeoutSeconds} ))`,
        `for c in ${cs}; do`,
        "    while :; do",
        `        s=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c" 2>/dev/null) || s=missing`,
        '        case "$s" in',
        '            "running healthy"|"running none") break ;;',
        // Unhealthy is not final: Docker keeps checking, and a slow starter gets there before the deadline.
        '            "running "*|"created "*|"restarting "*) ;;',
        '            *) fail "$c is $s" ;;',
        "        esac",
        `        [ "$(date +%s)" -lt "$deadline" ] || fail "$c is still $s after ${g.timeoutSeconds}s"`,
        "        sleep 1",
        "    done",
        "done",
    ];
    if (g.http) {
        const urls = g.containers.map((c) => `http://${c}:${g.http!.port}${g.http!.path}`);
        // The proxy's image on the proxy's network reaches the containers exactly as nginx will. The URLs
        // are sh's positional parameters, never parsed as shell text.
        lines.push(
            `docker run --rm --network ${shellWord(g.http.network)} --entrypoint sh ${shellWord(g.http.image)} -c ` +
                shellWord('for u in "$@"; do curl -fsS -o /dev/null --max-time 5 "$u" 2>/dev/null || wget -q -O /dev/null -T 5 "$u" || { echo "no answer from $u"; exit 1; }; done') +
                ` sh ${urls.map(shellWord).join(" ")} >&2 || fail "healthPath does not answer from the proxy's network"`,
        );
    }
    lines.push(
        // The history a rollback reads: when, which release, which image (its repository digest when it
        // has one, so that a rollback never asks the registry).
        `mkdir -p "$(dirname ${log})"`,
        `id=$(docker inspect -f '{{.Image}}' ${shellWord(g.containers[0])})`,
        `ref=$(docker image inspect -f '{{if .RepoDigests}}{{index .RepoDigests 0}}{{end}}' "$id" 2>/dev/null)`,
        `printf '%s %s %s %s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$release" "$image" "$id" "\${ref:--}" >> ${log}`,
        // Bounded: the last 200 releases are plenty to roll back through.
        `tail -n 200 ${log} > ${log}.tmp && mv ${log}.tmp ${log}`,
        // Keep the images of this app's last N releases (newest first, each image once: a rollback to an
        // old image makes it recent again); older ones go unless a container still uses them.
        `keep=$(awk '{ print $4 }' ${log} | awk '{ l[NR] = $0 } END { for (i = NR; i >= 1; i--) if (!seen[l[i]]++) print l[i] }' | head -n ${g.keepImages})`,
        `for old in $(awk '{ print $4 }' ${log} | sort -u); do`,
        '    case " $(echo $keep) " in *" $old "*) continue ;; esac',
        '    docker rmi "$old" >/dev/null 2>&1 || true',
        "done",
        `echo "vps-stack: app $app: release $release is healthy"`,
    );
    return lines.join("\n");
}

/**
 * Run when a release is retired (the delete of its drain command): wait until the proxy has no worker
 * left from before its reload (those may still hold requests to this release), at most drainSeconds, then
 * stop the containers with SIGTERM and `stopSeconds` before SIGKILL. The provider removes them afterwards.
 */
export function drainScript(d: { proxy?: string; containers: string[]; drainSeconds: number; stopSeconds: number }): string {
    const lines = ["set -u", `deadline=$(( $(date +%s) + ${d.drainSeconds} ))`];
    if (d.proxy) {
        // An old worker's title is "nginx: worker process is shutting down"; the [n] keeps grep from
        // finding its own command line.
        const count = shellCommand(["docker", "exec", d.proxy, "sh", "-c", "grep -l 'shutting dow[n]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l"]);
        lines.push(
            `while [ "$(date +%s)" -lt "$deadline" ]; do`,
            `    n=$(${count} 2>/dev/null) || break`,
            '    [ "${n:-0}" -eq 0 ] && break',
            "    sleep 0.5",
            "done",
        );
    }
    lines.push(`docker stop -t ${d.stopSeconds} ${d.containers.map(shellWord).join(" ")} >/dev/null 2>&1 || true`);
    return lines.join("\n");
}

/** Commands an operator runs for releases: each app's history on the host (what a rollback reads). */
export function releaseCommands(stack: string, apps: string[], ssh?: SshTarget) {
    // ssh runs the command from the login's home; locally (dev) it is this machine's.
    return Object.fromEntries(
        apps.map((app) => [app, { history: onHost(ssh, `cat ${ssh ? releaseLogPath(stack, app).replace("$HOME/", "") : releaseLogPath(stack, app)}`) }]),
    );
}
