// Routing, decided once: which app serves each host and path prefix, which app answers /health on a
// host, and the public URLs that follow. The proxy's config (render/nginx.ts) and the stack's outputs
// both read these. Pure.
import { StackConfig } from "../config";

/** What routing needs of an app. */
export interface RoutedApp {
    name: string;
    hosts: string[];
    /** Path prefixes, "/" or "/api" style. */
    paths: string[];
}

/** One `server` block per host name: which app serves each path, and which one answers /health. */
export interface HostRoutes<A extends RoutedApp = RoutedApp> {
    host: string;
    /** Longest prefix first, so nginx's choice and ours agree when reading the file. */
    locations: { path: string; app: string }[];
    /** The app whose health endpoint is published at /health on this host. */
    healthApp: A;
}

export function hostRoutes<A extends RoutedApp>(apps: A[]): HostRoutes<A>[] {
    const hosts = [...new Set(apps.flatMap((a) => a.hosts))];
    return hosts.map((host) => {
        const onHost = apps.filter((a) => a.hosts.includes(host));
        const locations = onHost
            .flatMap((a) => a.paths.map((path) => ({ path: normalizePrefix(path), app: a.name })))
            .sort((x, y) => y.path.length - x.path.length || x.path.localeCompare(y.path));
        const healthApp = onHost.find((a) => a.paths.some((p) => normalizePrefix(p) === "/")) ?? onHost[0];
        return { host, locations, healthApp };
    });
}

function normalizePrefix(path: string): string {
    return path === "/" ? "/" : path.replace(/\/+$/, "");
}

/** Public URL and health URL of each app. */
export function appUrls(cfg: Pick<StackConfig, "apps" | "nginx">): Record<string, { url: string; healthUrl: string }> {
    const port = cfg.nginx.httpsPort === 443 ? "" : `:${cfg.nginx.httpsPort}`;
    const routes = hostRoutes(cfg.apps);
    return Object.fromEntries(
        cfg.apps.map((a) => {
            const host = a.hosts[0];
            const base = `https://${host}${port}`;
            const ownsHealth = routes.find((r) => r.host === host)?.healthApp.name === a.name;
            return [a.name, { url: `${base}${a.paths[0]}`, healthUrl: ownsHealth ? `${base}/health` : `${base}${a.healthPath}` }];
        }),
    );
}
