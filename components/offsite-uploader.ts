// The off-site copy of the backup directory: a restic container that encrypts on the VPS and uploads
// everything the backup job and the WAL receiver write (dumps, base backups, the WAL including the segment
// being written) to an S3-compatible store every rpoSeconds/2, and keeps GFS history there.
//
// Why restic in its own container: the pinned postgres image has no uploader, and the official restic
// image is one static binary; encryption (AES-256 + Poly1305), deduplication and retention are restic's,
// not ours (docs/decisions/0003-backups.md). The container reaches nothing of the stack: no data network,
// only a network of its own with a way out, and the backup directory.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck, labels, readOnlyRoot } from "../plan/container-defaults";
import { containerFilesAt } from "./container-files";
import { limitPids } from "./pids-limit";
import { OffsitePlan } from "../plan/stack";
import { AWS_CREDENTIALS_FILE, awsCredentials, OFFSITE_SCRIPT, OFFSITE_TMPDIR, offsiteEnv, offsiteScript, RESTIC_CACHE_DIR, RESTIC_PASSWORD_FILE } from "../render/offsite";
import { pullImage } from "./image";
import { StackScope } from "./scope";

export const OFFSITE_UPLOADER_TYPE = "vps-stack:index:OffsiteUploader";

export interface OffsiteUploaderArgs extends StackScope {
    offsite: OffsitePlan;
    /** The host's backup directory and where the containers mount it. */
    directory: string;
    backupMount: string;
    retention: { daily: number; weekly: number; monthly: number };
    timezone: string;
}

export class OffsiteUploader extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly container: docker.Container;

    constructor(name: string, args: OffsiteUploaderArgs, opts?: pulumi.ComponentResourceOptions) {
        super(OFFSITE_UPLOADER_TYPE, name, {}, opts);
        const provider = args.host.provider;
        const o = args.offsite;
        this.containerName = `${args.prefix}-offsite`;
        const image = pullImage(`${name}-image`, { ref: o.image, trackTag: false }, { parent: this, provider });
        // Its own network: a way out to the store, and no neighbour (the edge network has the apps).
        const network = new docker.Network(
            `${name}-network`,
            { name: `${args.prefix}-offsite`, driver: "bridge", labels: labels(args.stack, "offsite") },
            { parent: this, provider, deleteBeforeReplace: true },
        );
        const files = containerFilesAt(
            args.host,
            `${name}-files`,
            { container: this.containerName, stack: args.stack, service: "offsite", image: image.imageId },
            [
                { path: OFFSITE_SCRIPT, content: offsiteScript(), mode: 0o555 },
                // Files, never environment variables: `docker inspect` shows the environment.
                { path: RESTIC_PASSWORD_FILE, content: pulumi.secret(o.passphrase), mode: 0o400 },
                { path: AWS_CREDENTIALS_FILE, content: pulumi.secret(awsCredentials(o.accessKeyId, o.secretAccessKey)), mode: 0o400 },
            ],
            { parent: this },
        );
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "offsite", { memory: o.memory, cpus: o.cpus, pidsLimit: o.pidsLimit }),
                entrypoints: [OFFSITE_SCRIPT],
                command: ["schedule"],
                envs: offsiteEnv({ offsite: o, stack: args.stack, backupMount: args.backupMount, uploadIntervalSeconds: o.uploadIntervalSeconds, retention: args.retention, timezone: args.timezone }),
                // A read-only root: restic's cache and temporary packs go to volumes of the container's own,
                // on disk (a pack is up to 128 MiB), gone with it.
                ...readOnlyRoot({
                    volumes: [
                        ...files.mounts,
                        { hostPath: args.directory, containerPath: args.backupMount },
                        { containerPath: RESTIC_CACHE_DIR },
                        { containerPath: OFFSITE_TMPDIR },
                    ],
                }),
                networksAdvanced: [{ name: network.name }],
                capabilities: { drops: ["ALL"] },
                // Cheap (it reads marker files); the provider waits for the first healthy report.
                healthcheck: healthcheck({ tests: ["CMD", OFFSITE_SCRIPT, "check"], interval: "15s", timeout: "10s", retries: 1, startPeriod: "60s" }),
                waitTimeout: 120,
            },
            // Fixed name; its state is the store's and the backup directory's markers.
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: files.ready },
        );
        limitPids(args.host, name, this.container, this.containerName, o.pidsLimit);
        this.registerOutputs({ containerName: this.containerName });
    }
}
