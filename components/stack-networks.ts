// The two networks of a stack: "edge" (proxy ↔ apps) and "data" (apps ↔ PostgreSQL/Redis, internal, so
// nothing on it can reach or be reached from outside the host).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { labels } from "../plan/container-defaults";
import { StackScope } from "./scope";

export const STACK_NETWORKS_TYPE = "vps-stack:index:StackNetworks";

export type StackNetworksArgs = StackScope;

export class StackNetworks extends pulumi.ComponentResource {
    readonly edge: docker.Network;
    readonly data: docker.Network;

    constructor(name: string, args: StackNetworksArgs, opts?: pulumi.ComponentResourceOptions) {
        super(STACK_NETWORKS_TYPE, name, {}, opts);
        // Fixed names collide with create-before-delete; deleting first makes Pulumi replace the attached
        // containers too, which is what a network change needs anyway.
        const netOpts = { parent: this, provider: args.host.provider, deleteBeforeReplace: true };
        this.edge = new docker.Network(
            `${name}-edge`,
            { name: `${args.prefix}-edge`, driver: "bridge", labels: labels(args.stack, "edge") },
            netOpts,
        );
        this.data = new docker.Network(
            `${name}-data`,
            { name: `${args.prefix}-data`, driver: "bridge", internal: true, labels: labels(args.stack, "data") },
            netOpts,
        );
        this.registerOutputs({ edge: this.edge.name, data: this.data.name });
    }
}
