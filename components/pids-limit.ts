// The PIDs limit of a container, applied on its host: the Docker provider has no pids_limit argument.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { pidsLimitCommand } from "../render/container";
import type { VpsHost } from "./vps-host";

/**
 * `docker update --pids-limit` on the container once it exists (the provider waited for it to be healthy
 * by then), re-run when the container is replaced (its id) or the limit changes (the command). Docker keeps
 * the limit in the container's own config, so restarts and daemon restarts keep it; `pulumi up` never
 * reads it back, so it causes no diff.
 */
export function limitPids(host: VpsHost, name: string, container: docker.Container, containerName: pulumi.Input<string>, limit: number): pulumi.Resource {
    return host.run(
        `${name}-pids`,
        { create: pulumi.output(containerName).apply((c) => pidsLimitCommand(c, limit)), triggers: [container.id] },
        { dependsOn: [container] },
    );
}
