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
}

/** Restart policy, log rotation, limits and hardening: the parts no container may lack. */
export function baseContainerArgs(stack: string, service: string, limits: Limits) {
    const memoryMiB = Math.round(sizeToMiB(limits.memory));
    return {
        restart: RESTART_POLICY,
        logDriver: LOG_DRIVER,
        logOpts: LOG_OPTS,
        memory: memoryMiB,
        // Equal to memory: no swap on top of the limit, so the limit means what it says.
        memorySwap: memoryMiB,
        cpus: dockerCpus(limits.cpus),
        securityOpts: ["no-new-privileges:true"],
        labels: labels(stack, service),
        // Fail `pulumi up` when the container never becomes healthy instead of reporting success.
        wait: true,
    };
}
