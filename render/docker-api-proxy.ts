// The Docker API as the alert watcher sees it: an nginx in front of the Docker socket that passes only the
// few reads the watcher makes and refuses everything else (docs/decisions/0004-alerts.md, option B). The
// socket itself is root-equivalent on the host even mounted read-only: with it, a compromised watcher could
// start a privileged container; through this, it can list containers, read their state and OOM events.
//
// Pure: the nginx.conf and the constants both containers share.

/** Where the proxy's own socket lives: a volume shared by the proxy (writable) and the watcher (read-only). */
export const DOCKER_API_DIR = "/run/vps-stack-docker-api";
export const DOCKER_API_SOCKET = `${DOCKER_API_DIR}/docker.sock`;
/** The host's Docker socket, mounted into the proxy only. */
export const HOST_DOCKER_SOCKET = "/var/run/docker.sock";
export const DOCKER_API_CONF_DIR = "/etc/vps-stack-docker-api";
export const DOCKER_API_CONF = `${DOCKER_API_CONF_DIR}/nginx.conf`;

/**
 * The only requests that reach Docker, each a GET (HEAD too, as nginx's limit_except counts it a GET) on
 * an unversioned path: the stack's containers (filtered by label in the query), one container's state and
 * health log, the OOM events of a time window, and the ping of the healthcheck. Matched on nginx's
 * normalised URI, and that URI, not the raw one, is what goes to Docker: `/containers/x/json/../archive`
 * cannot reach a path that was not matched.
 */
export const DOCKER_API_ALLOWED: { location: string; why: string }[] = [
    { location: "= /_ping", why: "the proxy's healthcheck" },
    { location: "= /containers/json", why: "the stack's containers, by label, status and health" },
    { location: '~ "^/containers/[A-Za-z0-9][A-Za-z0-9_.-]*/json$"', why: "one container's state and health log" },
    { location: "= /events", why: "OOM kills in a closed time window (since and until)" },
];

/** Where the proxy listens, what it passes to, where it writes: the container's paths unless a test moves them. */
export interface DockerApiProxyPaths {
    listen: string;
    docker: string;
    tmp: string;
}
const CONTAINER_PATHS: DockerApiProxyPaths = { listen: DOCKER_API_SOCKET, docker: HOST_DOCKER_SOCKET, tmp: "/tmp" };

/** The proxy's nginx.conf. Workers run as root: the host's socket is root:docker 0660, and the docker group's id differs between hosts. */
export function dockerApiProxyConf(paths: DockerApiProxyPaths = CONTAINER_PATHS): string {
    const { listen, docker, tmp } = paths;
    const pass = [
        "            limit_except GET { deny all; }",
        "            proxy_pass http://docker$uri$is_args$args;",
        "            proxy_http_version 1.1;",
        '            proxy_set_header Connection "";',
        "            proxy_buffering off;",
        "            proxy_read_timeout 30s;",
    ];
    return [
        "# Rendered by vps-stack (render/docker-api-proxy.ts): the alert watcher's only way to the Docker API.",
        "user root root;",
        "worker_processes 1;",
        `pid ${tmp}/nginx.pid;`,
        "error_log stderr warn;",
        "events { worker_connections 64; }",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
        "    client_max_body_size 1k;",
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${tmp}/${t};`),
        "    upstream docker {",
        `        server unix:${docker};`,
        "        keepalive 2;",
        "    }",
        "    server {",
        `        listen unix:${listen};`,
        ...DOCKER_API_ALLOWED.flatMap((a) => [`        # ${a.why}`, `        location ${a.location} {`, ...pass, "        }"]),
        "        location / {",
        '            return 403 "vps-stack: the alert watcher\'s Docker API proxy refuses this request\\n";',
        "        }",
        "    }",
        "}",
        "",
    ].join("\n");
}

/**
 * The proxy's command: a socket left by a proxy that did not stop cleanly (a reboot, a kill) would make
 * nginx's bind fail, so it is removed first. Fixed text: nothing from config.
 */
export const dockerApiProxyCommand = (): string[] => ["/bin/sh", "-c", `rm -f ${DOCKER_API_SOCKET} && exec nginx -c ${DOCKER_API_CONF} -g 'daemon off;'`];

/** The proxy's healthcheck: Docker answers through it. */
export const dockerApiProxyHealth = (): string[] => ["CMD", "curl", "-fsS", "--max-time", "5", "--unix-socket", DOCKER_API_SOCKET, "http://docker/_ping"];
