// Releases of an app, the decisions: a release id is a pure function of everything the app's containers
// are made of, and names its containers and its alias. How a release goes is told in render/release.ts.
import * as crypto from "crypto";
import { AppConfig, StackConfig } from "../config";
import { SiteFile } from "../config/static-files";

/** Canonical JSON (sorted keys) so that the same spec always gives the same id. */
function canonical(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
        return `{${Object.keys(value as object)
            .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
            .sort()
            .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
            .join(",")}}`;
    }
    return JSON.stringify(value);
}

/**
 * The release id of an app: 10 hex characters of the SHA-256 of everything its containers are made from
 * (image reference and digest, environment, secret names and a hash of provided secret values, rotation
 * tokens, limits, command, health settings, site files). Equal specs give equal ids, so an unchanged app
 * is left alone and going back to a previous spec is a rollback to that release.
 */
export function releaseId(spec: unknown): string {
    return crypto.createHash("sha256").update(canonical(spec)).digest("hex").slice(0, 10);
}

/** A value that must change the release without appearing in it (a secret). */
export function fingerprint(value: string): string {
    return crypto.createHash("sha256").update(`vps-stack release fingerprint\0${value}`).digest("hex").slice(0, 16);
}

export interface ReleaseNames {
    /** The release's alias on the edge network: what the proxy's upstream names. */
    alias: string;
    /** Container names, one per replica. */
    containers: string[];
}

export function releaseNames(prefix: string, app: string, release: string, replicas: number): ReleaseNames {
    return {
        alias: `${app}-${release}`,
        containers: Array.from({ length: replicas }, (_, i) => `${prefix}-${app}-${release}-${i + 1}`),
    };
}

/** See appRelease: a change here releases every app once. */
export const RELEASE_FORMAT = 2;

/**
 * The release id of an app: everything its containers are made of, and nothing that only the proxy uses
 * (routes, per-app proxy settings), so a header change is a reload, not a release. Secret values appear
 * only as fingerprints.
 */
export function appRelease(cfg: Pick<StackConfig, "apps" | "secrets" | "rotate" | "postgres" | "redis" | "nginx">, app: AppConfig, site?: SiteFile[]): string {
    const { proxy: _proxy, hosts: _hosts, paths: _paths, ...spec } = app;
    const provided = Object.entries(app.secrets)
        .filter(([, s]) => s === "required")
        .map(([n]) => [n, fingerprint(cfg.secrets[n] ?? "")]);
    const generated = Object.entries(app.secrets).filter(([, s]) => s === "generate").map(([n]) => n);
    return releaseId({
        // Bumped when vps-stack changes what an app's containers are made of (defaults, rendered files),
        // so that such a change is a release too, not a replacement in place.
        format: RELEASE_FORMAT,
        spec,
        provided: Object.fromEntries(provided),
        // Only the rotation tokens of this app's own secrets: rotating another one is not its release.
        rotate: Object.fromEntries(generated.filter((n) => cfg.rotate[n] !== undefined).map((n) => [n, cfg.rotate[n]])),
        // DATABASE_URL and REDIS_URL are made of these.
        database: app.database ? { user: cfg.postgres.user, database: cfg.postgres.database, passwordLength: cfg.postgres.passwordLength, rotate: cfg.rotate.postgres } : undefined,
        redis: app.redis ? { passwordLength: cfg.redis.passwordLength, rotate: cfg.rotate.redis } : undefined,
        // A static site's files, and the stack's Nginx image that serves them by default.
        site: site ? fingerprint(site.map((f) => `${f.path}\0${f.contentBase64}`).join("\0")) : undefined,
        staticImage: app.kind === "static" ? app.image : undefined,
    });
}

/** Container mode: how an app's new release is judged and the old one retired. */
export interface AppRelease {
    id: string;
    /** Seconds for every replica to become healthy before the release is refused. */
    healthTimeoutSeconds: number;
    /** The proxy's container, drained before the old release stops. */
    proxy: { container: string };
    drainTimeoutSeconds: number;
    /** Seconds between SIGTERM and SIGKILL when a drained release stops. */
    stopTimeoutSeconds: number;
    keepImages: number;
}
