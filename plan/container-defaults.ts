// Settings every container of a stack shares (log rotation, restart policy, hardening), so the
// program-wide policy tests have one place to agree with.
import type * as docker from "@pulumi/docker";
import { sizeToMiB } from "../config";

export const RESTART_POLICY = "unless-stopped";
export const LOG_DRIVER = "json-file";
export const LOG_OPTS = { "max-size": "10m", "max-file": "5" };

/** Label on every container, network and volume: lets operators (and tests) find a stack's objects. */
export const STACK_LABEL = "vps-stack.stack";

/** Marks a container that runs to completion (a migration): no restart policy, no healthcheck. */
export const ONE_SHOT_LABEL = "vps-stack.one-shot";

export function labels(stack: string, service: string): docker.types.input.ContainerLabel[] {
    return [
        { label: STACK_LABEL, value: stack },
        { label: "vps-stack.service", value: service },
    ];
}

/**
 * CPUs as the Docker provider reads them back ("1.0", "1.5", "0.25"). Writing "1" would read back as
 * "1.0" and force a replacement on every `pulumi up`.
 */
export function dockerCpus(cpus: number): string {
    const fixed = cpus.toFixed(9).replace(/0+$/, "");
    return fixed.endsWith(".") ? `${fixed}0` : fixed;
}

/**
 * A duration as Go's time.Duration prints it ("1m0s", "1h30m0s"), which is how the provider reads a
 * healthcheck back; "1m" would differ from it on every run and replace the container.
 */
export function dockerDuration(d: string): string {
    const m = /^(\d+)(ms|s|m|h)$/.exec(d);
    if (!m) throw new Error(`dockerDuration: unsupported duration ${d}`);
    const n = Number(m[1]);
    if (m[2] === "ms") return n === 0 ? "0s" : n % 1000 === 0 ? dockerDuration(`${n / 1000}s`) : `${n}ms`;
    let secs = n * { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"];
    if (secs === 0) return "0s";
    const h = Math.floor(secs / 3600);
    secs -= h * 3600;
    const min = Math.floor(secs / 60);
    secs -= min * 60;
    if (h > 0) return `${h}h${min}m${secs}s`;
    if (min > 0) return `${min}m${secs}s`;
    return `${secs}s`;
}

/** Capabilities as Docker reports them (CAP_ prefix), so a refresh reads back exactly what we wrote. */
export function dockerCaps(caps: string[]): string[] {
    return caps.map((c) => (c === "ALL" || c.startsWith("CAP_") ? c : `CAP_${c}`));
}

/**
 * Resource options every container shares.
 * - healthcheck: the provider "updates" a changed healthcheck in place, which Docker cannot do: the old one
 *   stays and every run shows the same diff. Replacing is the only real fix.
 * - mustRun: a refresh that finds a container not running records mustRun false, and the provider's update
 *   would then just start it. That is wrong for a container whose creation was cut short (SSH lost between
 *   Docker's create and the provider's network connects, file uploads and start): it is in the state, with
 *   an error, and would start without its secret files. Recreating it from its declaration is right in
 *   every case, including a container stopped by hand.
 */
export const CONTAINER_REPLACE_ON_CHANGES = ["healthcheck", "mustRun"];

export interface HealthcheckArgs {
    tests: string[];
    interval: string;
    timeout: string;
    retries: number;
    startPeriod: string;
}

/** A healthcheck with its durations in the provider's canonical form. */
export function healthcheck(h: HealthcheckArgs): docker.types.input.ContainerHealthcheck {
    return {
        tests: h.tests,
        interval: dockerDuration(h.interval),
        timeout: dockerDuration(h.timeout),
        retries: h.retries,
        startPeriod: dockerDuration(h.startPeriod),
    };
}

export interface Limits {
    memory: string;
    cpus: number;
    /** Most processes and threads in the container (the PIDs cgroup): a fork bomb stops there. */
    pidsLimit?: number;
}

/** For a container whose config section has no pidsLimit of its own. */
export const DEFAULT_PIDS_LIMIT = 256;

/**
 * Label carrying the container's PIDs limit. The Docker provider has no pids_limit argument, so the limit is
 * applied by `docker update --pids-limit` right after the container is created (see pidsLimitCommand); the
 * label makes every container declare one, and shows in `docker inspect` what the update must have set.
 */
export const PIDS_LIMIT_LABEL = "vps-stack.pids-limit";

/** Restart policy, log rotation, limits and hardening: the parts no container may lack. */
export function baseContainerArgs(stack: string, service: string, limits: Limits) {
    const memoryMiB = Math.round(sizeToMiB(limits.memory));
    const pidsLimit = limits.pidsLimit ?? DEFAULT_PIDS_LIMIT;
    if (!Number.isInteger(pidsLimit) || pidsLimit < 1) throw new Error(`baseContainerArgs: ${service} needs a positive integer pidsLimit, not ${pidsLimit}`);
    return {
        restart: RESTART_POLICY,
        logDriver: LOG_DRIVER,
        logOpts: LOG_OPTS,
        memory: memoryMiB,
        // Equal to memory: no swap on top of the limit, so the limit means what it says.
        memorySwap: memoryMiB,
        cpus: dockerCpus(limits.cpus),
        securityOpts: ["no-new-privileges:true"],
        labels: [...labels(stack, service), { label: PIDS_LIMIT_LABEL, value: String(pidsLimit) }],
        // Fail `pulumi up` when the container never becomes healthy instead of reporting success.
        wait: true,
    };
}

/**
 * tmpfs options as Docker stores them and the provider reads them back (the map is kept as written, so
 * one spelling for every mount): writable, nothing executable, no setuid, bounded. Pages in a tmpfs count
 * against the container's memory limit.
 */
export function tmpfsOptions(size: string): string {
    if (!/^\d+[km]$/.test(size)) throw new Error(`tmpfsOptions: unsupported size ${size}`);
    return `rw,noexec,nosuid,size=${size}`;
}

/**
 * What an Nginx image writes at run time, beside its config: the pid file (/var/run/nginx.pid, or
 * /run/nginx.pid: /var/run links to /run in Alpine and Debian alike), and the temporary files of request and
 * response bodies (compiled in: /var/cache/nginx/*_temp in the official image, /var/lib/nginx/* in
 * Debian's, which the e2e's stand-in is). The temporary files go to volumes of the container's own, on disk:
 * a body may be as large as client_max_body_size, and a response buffered for a slow client larger still.
 */
export const NGINX_RUNTIME = {
    tmpfs: { "/var/run": tmpfsOptions("1m") },
    volumes: [{ containerPath: "/var/cache/nginx" }, { containerPath: "/var/lib/nginx" }],
};

/** Every read-only container gets a scratch /tmp (shells' here-documents, mktemp). */
export const TMP_TMPFS = { "/tmp": tmpfsOptions("64m") };

/**
 * Why no container takes the Docker provider's `uploads`: the provider copies them (between create and
 * start) with Docker's archive API into "/", and Docker refuses any copy whose destination is not in a
 * volume when the root is read-only ("container rootfs is marked read-only"), even when each file's own
 * directory is a volume. Files reach containers in a read-only volume of their own instead
 * (components/container-files.ts).
 */
export const READ_ONLY_ROOT = "a read-only root filesystem refuses the Docker provider's uploads";

/**
 * A read-only root filesystem: a tmpfs for /tmp and for what the image writes at run time (`tmpfs`), beside
 * its other mounts (`volumes`: its files volume, its data); anonymous volumes there go with the container.
 */
export function readOnlyRoot(a: { tmpfs?: Record<string, string>; volumes?: docker.types.input.ContainerVolume[] }) {
    return {
        readOnly: true,
        tmpfs: { ...TMP_TMPFS, ...(a.tmpfs ?? {}) },
        volumes: a.volumes ?? [],
        removeVolumes: true,
    };
}
