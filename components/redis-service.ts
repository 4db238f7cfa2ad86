// Redis on the stack's data network only, as the image's redis user. Password,
// persistence and memory policy live in a config file, never on the command line; the healthcheck reads
// the password into REDISCLI_AUTH, not argv.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck, labels, readOnlyRoot } from "../plan/container-defaults";
import { containerFiles } from "./container-files";
import { limitPids } from "./pids-limit";
import { pullImage } from "./image";
import { StackConfig } from "../config";
import { redisHealthCommand, redisUrl, renderRedisConf } from "../render/services";
import { StackScope } from "./scope";

export const REDIS_SERVICE_TYPE = "vps-stack:index:RedisService";

export const REDIS_ALIAS = "redis";
export const REDIS_PORT = 6379;
/** The directory of its config file: the files volume, read-only. */
export const REDIS_CONF_DIR = "/usr/local/etc/redis";
export const REDIS_CONF_FILE = `${REDIS_CONF_DIR}/redis.conf`;
/** The image's own user (uid 999 in the official images, Alpine and Debian alike), which owns /data. */
export const REDIS_USER = "redis";

/** Image, limits and persistence are the config's redis section, with its defaults. */
export interface RedisServiceArgs extends StackScope, Omit<StackConfig["redis"], "passwordLength"> {
    /** Name of the data network. */
    network: pulumi.Input<string>;
    password: pulumi.Input<string>;
}

export class RedisService extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly volumeName: string;
    readonly hostAlias = REDIS_ALIAS;
    readonly port = REDIS_PORT;
    readonly url: pulumi.Output<string>;
    readonly container: docker.Container;

    constructor(name: string, args: RedisServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super(REDIS_SERVICE_TYPE, name, {}, opts);
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-redis`;
        this.volumeName = `${args.prefix}-redis-data`;
        const password = pulumi.secret(pulumi.output(args.password));

        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: false }, { parent: this, provider });
        // Like PostgreSQL's: `pulumi destroy` stops before the data goes (docs/operations.md, "Destroying a stack").
        const volume = new docker.Volume(
            `${name}-data`,
            { name: this.volumeName, labels: labels(args.stack, "redis") },
            { parent: this, provider, protect: args.protectVolume, retainOnDelete: args.protectVolume },
        );

        const conf = pulumi.secret(password.apply((p) => renderRedisConf({ ...args, password: p })));
        // 0444: the server and its healthcheck run as the redis user and must read it; no other user runs in
        // the container.
        const files = containerFiles(
            args.host,
            `${name}-files`,
            { container: this.containerName, stack: args.stack, service: "redis", image: image.imageId, dir: REDIS_CONF_DIR, files: [{ name: "redis.conf", content: conf, mode: 0o444 }] },
            { parent: this },
        );
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "redis", args),
                // Never root: the image's entrypoint only chowns /data and drops to redis when started as
                // root; /data already is redis's (a new volume takes the image's ownership, and earlier
                // deploys' entrypoint chowned it). Only a path is on the command line.
                user: REDIS_USER,
                command: ["redis-server", REDIS_CONF_FILE],
                // Redis writes only its data directory (the AOF and the RDB snapshots).
                ...readOnlyRoot({ volumes: [files.mount, { volumeName: volume.name, containerPath: "/data" }] }),
                networksAdvanced: [{ name: args.network, aliases: [REDIS_ALIAS] }],
                healthcheck: healthcheck({
                    tests: ["CMD-SHELL", redisHealthCommand(REDIS_CONF_FILE, REDIS_PORT)],
                    interval: "10s",
                    timeout: "5s",
                    retries: 5,
                    startPeriod: "10s",
                }),
                waitTimeout: 120,
            },
            // One server per AOF directory.
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [files.ready] },
        );
        limitPids(args.host, name, this.container, this.containerName, args.pidsLimit);

        this.url = pulumi.secret(password.apply((p) => redisUrl({ password: p, host: REDIS_ALIAS, port: REDIS_PORT })));
        this.registerOutputs({ containerName: this.containerName, url: this.url });
    }
}
