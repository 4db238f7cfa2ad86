// Renders the proxy's nginx.conf from plain values. Pure and synchronous: tested with snapshots, targeted
// assertions and a real `nginx -t`; no Pulumi types here. Every value from config reaches the text through
// the nginx sink (nginxToken / nginxString), never by plain interpolation.
import { hostRoutes } from "../plan/routes";
import { NginxApp, NginxSite, RateLimit, Timeouts } from "../plan/proxy";
import { nginxString, nginxToken } from "../sinks/nginx";

export type { NginxApp, NginxSite, RateLimit, Timeouts } from "../plan/proxy";


/** The HTTP-01 location: exact files only (no listing, no fallback), never redirected to HTTPS. */
function acmeChallengeLocation(site: NginxSite): string[] {
    if (!site.acmeWebroot) return [];
    return [
        "location ^~ /.well-known/acme-challenge/ {",
        `    root ${nginxToken(site.acmeWebroot)};`,
        "    default_type text/plain;",
        "    try_files $uri =404;",
        "    access_log off;",
        "}",
        "",
    ];
}

/** Path of the proxy's own liveness endpoint, served on port 80 to 127.0.0.1 only. */
export const NGINX_HEALTH_PATH = "/__vps-stack/nginx-health";

function indent(lines: string[], depth: number): string[] {
    const pad = "    ".repeat(depth);
    return lines.map((l) => (l === "" ? "" : pad + l));
}

function upstreamName(site: NginxSite, app: string): string {
    return `${site.namespace ?? ""}app_${app}`;
}

function upgradeVariable(site: NginxSite): string {
    return `$${site.namespace ?? ""}connection_upgrade`;
}

function proxyHeaders(site: NginxSite): string[] {
    return [
        "proxy_http_version 1.1;",
        "proxy_set_header Host              $host;",
        "proxy_set_header X-Real-IP         $remote_addr;",
        "proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host  $host;",
        // Empty Connection keeps upstream keepalive; websocket upgrades still pass.
        "proxy_set_header Upgrade           $http_upgrade;",
        `proxy_set_header Connection        ${upgradeVariable(site)};`,
    ];
}

/** An app's settings with the site-wide defaults filled in. */
interface Effective {
    clientMaxBodySize: string;
    rateLimit: RateLimit;
    timeouts: Timeouts;
    headers: [string, string][];
}

function securityHeaders(site: NginxSite): [string, string][] {
    return [
        ["Strict-Transport-Security", hstsValue(site.hsts)],
        ["X-Content-Type-Options", "nosniff"],
        ["X-Frame-Options", "SAMEORIGIN"],
        ["Referrer-Policy", "strict-origin-when-cross-origin"],
        ["Permissions-Policy", "camera=(), microphone=(), geolocation=()"],
    ];
}

export function effectiveSettings(site: NginxSite, app: NginxApp): Effective {
    const headers = new Map(securityHeaders(site).map(([k, v]) => [k.toLowerCase(), [k, v] as [string, string]]));
    for (const [k, v] of Object.entries(app.headers ?? {})) {
        if (v === "") headers.delete(k.toLowerCase());
        else headers.set(k.toLowerCase(), [k, v]);
    }
    return {
        clientMaxBodySize: app.clientMaxBodySize ?? site.clientMaxBodySize,
        rateLimit: { ...site.rateLimit, ...app.rateLimit },
        timeouts: { ...site.timeouts, ...app.timeouts },
        headers: [...headers.values()],
    };
}

function rateLimitZones(site: NginxSite): string[] {
    const zones = site.apps.flatMap((a) => {
        const rl = effectiveSettings(site, a).rateLimit;
        return rl.enabled ? [`limit_req_zone $binary_remote_addr zone=${zoneName(site, a.name)}:10m rate=${nginxToken(rl.rate)};`] : [];
    });
    return zones.length > 0 ? [...zones, ""] : [];
}

/** Each app gets its own zone, so one app's traffic never eats another's allowance. */
function zoneName(site: NginxSite, app: string): string {
    return `${site.namespace ?? ""}perip_${app}`;
}

// Everything per location: nginx drops inherited add_header lines as soon as a location has its own.
function locationSettings(e: Effective): string[] {
    return [
        `client_max_body_size ${nginxToken(e.clientMaxBodySize)};`,
        `proxy_connect_timeout ${nginxToken(e.timeouts.connect)};`,
        `proxy_send_timeout ${nginxToken(e.timeouts.send)};`,
        `proxy_read_timeout ${nginxToken(e.timeouts.read)};`,
        ...e.headers.map(([k, v]) => `add_header ${nginxToken(k)} ${nginxString(v)} always;`),
    ];
}

function appLocation(site: NginxSite, path: string, app: NginxApp): string[] {
    const e = effectiveSettings(site, app);
    const body = [
        // The status is set here, not in http{}, where a second stack on a shared nginx would repeat it.
        ...(e.rateLimit.enabled ? [`limit_req zone=${zoneName(site, app.name)} burst=${e.rateLimit.burst} nodelay;`, "limit_req_status 429;"] : []),
        `proxy_pass http://${upstreamName(site, app.name)};`,
        ...proxyHeaders(site),
        ...locationSettings(e),
    ];
    const block = (match: string) => [`location ${match} {`, ...indent(body, 1), "}"];
    // "/api" must match /api and /api/..., never /apix.
    return path === "/" ? block("/") : [...block(`= ${nginxToken(path)}`), ...block(nginxToken(`${path}/`))];
}

function hstsValue(h: NginxSite["hsts"]): string {
    return [`max-age=${h.maxAge}`, ...(h.includeSubDomains ? ["includeSubDomains"] : []), ...(h.preload ? ["preload"] : [])].join("; ");
}

/** The parts both modes share: zones, the upgrade map, upstreams and the HTTPS servers. */
function siteBlocks(site: NginxSite): { zones: string[]; map: string[]; upstreams: string[]; servers: string[] } {
    if (site.apps.length === 0) throw new Error("renderNginxConf: at least one app is required");
    const upstreams = site.apps.flatMap((a) => [
        `upstream ${upstreamName(site, a.name)} {`,
        ...indent(a.servers.map((s) => `server ${nginxToken(s)} max_fails=3 fail_timeout=10s;`), 1),
        ...indent(site.keepalive > 0 ? [`keepalive ${site.keepalive};`, "keepalive_timeout 60s;"] : [], 1),
        "}",
        "",
    ]);

    const tls = [
        `ssl_certificate     ${nginxToken(site.certificatePath)};`,
        `ssl_certificate_key ${nginxToken(site.keyPath)};`,
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_cache shared:TLS:10m;",
        "ssl_session_timeout 1d;",
        "ssl_session_tickets off;",
    ];

    const byName = new Map(site.apps.map((a) => [a.name, a]));
    const listen = site.listen ?? { http: 80, https: 443 };

    const servers = hostRoutes(site.apps).flatMap((r) => [
        "server {",
        ...indent(
            [
                `listen ${listen.https} ssl http2;`,
                `server_name ${nginxToken(r.host)};`,
                "",
                ...tls,
                "",
                "location = /health {",
                ...indent(
                    [
                        `proxy_pass ${nginxToken(`http://${upstreamName(site, r.healthApp.name)}${r.healthApp.healthPath}`)};`,
                        ...proxyHeaders(site),
                        ...locationSettings(effectiveSettings(site, r.healthApp)),
                        "access_log off;",
                    ],
                    1,
                ),
                "}",
                "",
                ...r.locations.flatMap((l) => appLocation(site, l.path, byName.get(l.app)!)),
            ],
            1,
        ),
        "}",
        "",
    ]);
    const map = [`map $http_upgrade ${upgradeVariable(site)} {`, "    default upgrade;", "    ''      '';", "}", ""];
    return { zones: rateLimitZones(site), map, upstreams, servers };
}

/** The plain-HTTP server's body: the ACME challenge (when on), everything else to HTTPS. */
function redirectLocations(site: NginxSite): string[] {
    return [...indent(acmeChallengeLocation(site), 1), "    location / {", `        return 301 ${redirectTarget(site)};`, "    }"];
}

function redirectTarget(site: NginxSite): string {
    return site.httpsPort === 443 ? "https://$host$request_uri" : `https://$host:${site.httpsPort}$request_uri`;
}

function tidy(lines: string[]): string {
    // Collapse the blank lines left by empty optional sections, and the one before a closing brace.
    return lines.join("\n").replace(/\n{3,}/g, "\n\n").replace(/\n\n(\s*\})/g, "\n$1");
}

/**
 * A site file for the host's own nginx (nginx.mode "host"), included in its http{} beside other sites:
 * only namespaced global names, no default_server, no http-wide settings.
 */
export function renderNginxSiteFile(site: NginxSite): string {
    if (!site.namespace) throw new Error("renderNginxSiteFile: a namespace is required on a shared nginx");
    const b = siteBlocks(site);
    const listen = site.listen ?? { http: 80, https: 443 };
    const hosts = hostRoutes(site.apps).map((r) => r.host);
    return tidy([
        `# Rendered by vps-stack (${site.namespace.replace(/_$/, "")}); changes here are overwritten on the next \`pulumi up\`.`,
        "",
        ...b.zones,
        ...b.map,
        ...b.upstreams,
        "server {",
        `    listen ${listen.http};`,
        `    server_name ${hosts.map(nginxToken).join(" ")};`,
        ...redirectLocations(site),
        "}",
        "",
        ...b.servers,
    ]);
}

export function renderNginxConf(site: NginxSite): string {
    const b = siteBlocks(site);
    const listen = site.listen ?? { http: 80, https: 443 };
    const rt = {
        pid: "/var/run/nginx.pid",
        errorLog: "/var/log/nginx/error.log",
        accessLog: "/var/log/nginx/access.log",
        mimeTypes: "/etc/nginx/mime.types",
        ...site.runtime,
    };
    const lines = [
        "# Rendered by vps-stack; changes here are overwritten on the next `pulumi up`.",
        "worker_processes auto;",
        ...(site.drainTimeoutSeconds !== undefined ? [`worker_shutdown_timeout ${site.drainTimeoutSeconds}s;`] : []),
        `pid ${nginxToken(rt.pid)};`,
        `error_log ${nginxToken(rt.errorLog)} warn;`,
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
        ...indent(
            [
                `include ${nginxToken(rt.mimeTypes)};`,
                "default_type application/octet-stream;",
                "server_tokens off;",
                "sendfile on;",
                "tcp_nopush on;",
                "keepalive_timeout 65s;",
                "",
                `log_format main '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time uct=$upstream_connect_time urt=$upstream_response_time';`,
                `access_log ${nginxToken(rt.accessLog)} main;`,
                "",
                // Defaults; each app location repeats its own values.
                `client_max_body_size ${nginxToken(site.clientMaxBodySize)};`,
                `proxy_connect_timeout ${nginxToken(site.timeouts.connect)};`,
                `proxy_send_timeout ${nginxToken(site.timeouts.send)};`,
                `proxy_read_timeout ${nginxToken(site.timeouts.read)};`,
                "",
                "gzip on;",
                "gzip_vary on;",
                "gzip_proxied any;",
                "gzip_min_length 1024;",
                "gzip_types text/plain text/css application/json application/javascript text/xml application/xml image/svg+xml;",
                "",
                ...b.zones,
                ...b.map,
                ...b.upstreams,
                "server {",
                `    listen ${listen.http} default_server;`,
                "    server_name _;",
                "",
                `    location = ${NGINX_HEALTH_PATH} {`,
                "        access_log off;",
                "        allow 127.0.0.1;",
                "        deny all;",
                '        return 200 "ok\\n";',
                "    }",
                "",
                ...redirectLocations(site),
                "}",
                "",
                "# Unknown host names get no certificate at all rather than the wrong one.",
                "server {",
                `    listen ${listen.https} ssl http2 default_server;`,
                "    server_name _;",
                "    ssl_reject_handshake on;",
                "}",
                "",
                ...b.servers,
            ],
            1,
        ),
        "}",
        "",
    ];
    return tidy(lines);
}
