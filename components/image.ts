// Pulling images. The Docker provider never re-pulls a tag it already has, so a re-pushed tag would not
// deploy: when asked, we look the tag's digest up in the registry and make it a pull trigger; digests
// pinned in the reference need no lookup.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

export interface PullImageArgs {
    ref: string;
    /** Ask the registry for the tag's current digest on every run. */
    trackTag: boolean;
}

export function hasDigest(ref: string): boolean {
    return /@sha256:[a-f0-9]{64}$/.test(ref);
}

export function pullImage(name: string, args: PullImageArgs, opts: pulumi.CustomResourceOptions): docker.RemoteImage {
    const trigger =
        args.trackTag && !hasDigest(args.ref)
            ? [docker.getRegistryImageOutput({ name: args.ref }, { provider: opts.provider as docker.Provider, parent: opts.parent }).sha256Digest]
            : undefined;
    return new docker.RemoteImage(
        name,
        {
            name: args.ref,
            pullTriggers: trigger,
            // Another stack on the same host may use the same image, and a rollback wants the old one.
            keepLocally: true,
        },
        opts,
    );
}
