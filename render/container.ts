// Commands about a container itself, run on its host once the provider created it.
import { shellCommand } from "../sinks/shell";

/**
 * Sets a container's PIDs limit (HostConfig.PidsLimit, kept across restarts and daemon restarts). The Docker
 * provider has no argument for it, so this runs on the host right after the container is created, and
 * again when the container or the limit changes.
 */
export function pidsLimitCommand(container: string, limit: number): string {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`pidsLimitCommand: not a PIDs limit: ${limit}`);
    return `${shellCommand(["docker", "update", "--pids-limit", String(limit), container])} >/dev/null`;
}
