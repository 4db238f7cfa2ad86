// What the proxy serves: the site the nginx renderer turns into nginx.conf (render/nginx.ts), decided
// from the stack's config. Pure.
import { durationSeconds, StackConfig } from "../config";

export interface NginxApp {
    /** App name; the upstream is called `app_<name>`. */
    name: string;
    /** `host:port` of every replica, resolved by Docker's DNS on the edge network. */
    servers: string[];
    hosts: string[];
    /** Path prefixes, "/" or "/api" style. */
    paths: string[];
    /** Where the app answers its health check, e.g. /health or /api/health. */
    healthPath: string;
    /** Overrides of the site-wide settings for this app's locations. */
    clientMaxBodySize?: string;
    rateLimit?: Partial<RateLimit>;
    timeouts?: Partial<Timeouts>;
    /** Response headers added to, or replacing by name, the security headers; "" removes one. */
    headers?: Record<string, string>;
}

export interface RateLimit {
    enabled: boolean;
    rate: string;
    burst: number;
}

export interface Timeouts {
    connect: string;
    send: string;
    read: string;
}

export interface NginxSite {
    apps: NginxApp[];
    /** Public HTTPS port, used in the HTTP→HTTPS redirect when it is not 443. */
    httpsPort: number;
    clientMaxBodySize: string;
    rateLimit: RateLimit;
    timeouts: Timeouts;
    hsts: { maxAge: number; includeSubDomains: boolean; preload: boolean };
    /** Idle keepalive connections per upstream (0 disables). */
    keepalive: number;
    certificatePath: string;
    keyPath: string;
    /** Where nginx writes its pid and logs; the defaults are the official image's. */
    runtime?: { pid?: string; errorLog?: string; accessLog?: string; mimeTypes?: string };
    /** Ports nginx listens on; the container's are 80/443 (tests use free high ports). */
    listen?: { http: number; https: number };
    /**
     * Prefix of the names that live in nginx's global scope (upstreams, rate-limit zones, the upgrade
     * variable), so that several stacks can share the host's nginx. Empty in a stack's own container.
     */
    namespace?: string;
    /**
     * tls.mode "acme": the directory the ACME client writes HTTP-01 answers into; port 80 serves
     * /.well-known/acme-challenge/ from it for every host name instead of redirecting.
     */
    acmeWebroot?: string;
    /**
     * Seconds that workers of the previous configuration may keep serving the requests they hold after a
     * reload (worker_shutdown_timeout): the drain of a release. Unset: until those requests end.
     */
    drainTimeoutSeconds?: number;
}

/** What the proxy serves, from the stack's config (certificate paths are the proxy's business). */
export function nginxSite(
    cfg: Pick<StackConfig, "apps" | "nginx"> & Partial<Pick<StackConfig, "releases">>,
    /** Container mode: each app's upstream host (its release's alias); default the app's name. */
    upstreamHosts: Record<string, string> = {},
): Omit<NginxSite, "certificatePath" | "keyPath"> {
    const host = cfg.nginx.mode === "host";
    return {
        apps: cfg.apps.map((a) => ({
            name: a.name,
            // Container mode: the release's alias on the edge network. Host mode: its 127.0.0.1 ports.
            // (The config requires hostPort in host mode.)
            servers: host ? Array.from({ length: a.replicas }, (_, i) => `127.0.0.1:${a.hostPort! + i}`) : [`${upstreamHosts[a.name] ?? a.name}:${a.port}`],
            hosts: a.hosts,
            paths: a.paths,
            healthPath: a.healthPath,
            clientMaxBodySize: a.proxy?.clientMaxBodySize,
            rateLimit: a.proxy?.rateLimit,
            timeouts: a.proxy?.timeouts,
            headers: a.proxy?.headers,
        })),
        httpsPort: cfg.nginx.httpsPort,
        clientMaxBodySize: cfg.nginx.clientMaxBodySize,
        rateLimit: cfg.nginx.rateLimit,
        timeouts: cfg.nginx.timeouts,
        hsts: cfg.nginx.hsts,
        keepalive: cfg.nginx.keepalive,
        // The host's nginx listens on the public ports itself; the container maps them onto 80/443.
        ...(host ? { listen: { http: cfg.nginx.httpPort, https: cfg.nginx.httpsPort } } : {}),
        // The proxy container's old workers give up on requests still held after a release's drain.
        ...(!host && cfg.releases ? { drainTimeoutSeconds: durationSeconds(cfg.releases.drainTimeout) } : {}),
    };
}
