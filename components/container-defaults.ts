// Settings every container of a stack shares (seed 004's log rotation, restart policy, hardening), so the
// program-wide policy tests have one place to agree with.
import * as docker from "@pulumi/docker";
import { sizeToMiB } from "./config";

export const RESTART_POLICY = "unless-stopped";
export const LOG_DRIVER = "json-file";
export const LOG_OPTS = { "max-size": "10m", "max-file": "5" };

/** Label on every container, network and volume: lets operators (and tests) find a stack's objects. */
export const STACK_LABEL = "vps-stack.stack";

export function labels(stack: string, service: string): docker.types.input.ContainerLabel[] {
    return [
        { label: STACK_LABEL, value: stack },
        { label: "vps-stack.service", value: service },
    ];
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
        cpus: String(limits.cpus),
        securityOpts: ["no-new-privileges:true"],
        labels: labels(stack, service),
        // Fail `pulumi up` when the container never becomes healthy instead of reporting success.
        wait: true,
    };
}
