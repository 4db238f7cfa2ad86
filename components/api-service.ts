// One app of the stack (e.g. api, web): its replicas on the edge network (and the data network when it
// uses PostgreSQL or Redis), never published. Secrets reach it as files by default.
import * as docker from "@pulumi/docker";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck, NGINX_RUNTIME, ONE_SHOT_LABEL, labels, readOnlyRoot } from "../plan/container-defaults";
import { containerFiles } from "./container-files";
import { limitPids } from "./pids-limit";
import { pullImage } from "./image";
import { AppRelease, releaseNames } from "../plan/release";
import { healthTest, SECRETS_DIR, secretFileEnv, STATIC_SITE_CONF } from "../render/app";
import { drainScript, gateScript } from "../render/release";
import { renderStaticSiteConf } from "../render/static-site";
import { dockerEnv } from "../sinks/docker";
import { AppConfig } from "../config";
import { StackScope } from "./scope";

export const API_SERVICE_TYPE = "vps-stack:index:ApiService";

/**
 * The app's own settings are its config entry (apps[]) with the schema's defaults; the rest is what the
 * stack wires in. `name` is also the app's alias on the edge network, which the proxy's upstream uses.
 */
export interface ApiServiceArgs extends StackScope, Omit<AppConfig, "secrets" | "static"> {
    /** For a static site: where the files live in the container, and the files to upload (if any). */
    staticSite?: {
        root: string;
        /** The site's directory on the host (copied there by VpsHost.copyDirectory), mounted read-only. */
        hostDir?: pulumi.Input<string>;
        /** What the containers wait for before mounting it (the copy). */
        ready?: pulumi.Resource[];
    };
    /** Secret variables by name: DATABASE_URL, REDIS_URL, generated and required ones. */
    secrets: Record<string, pulumi.Input<string>>;
    edgeNetwork: pulumi.Input<string>;
    /** Set when the app uses PostgreSQL or Redis. */
    dataNetwork?: pulumi.Input<string>;
    /**
     * Release mode (the proxy container): the app's containers belong to this release (see
     * render/release.ts) and start beside the previous release's, are gated, and the previous ones drain.
     * Without it (the host's nginx, whose site names fixed 127.0.0.1 ports), containers have fixed names
     * and are replaced delete-first.
     */
    release?: AppRelease & {
        /** The proxy's image: the gate's HTTP check runs in it, on the proxy's network. */
        proxy: { image: pulumi.Input<string> };
    };
}

/** A file of the app's files volume: its name in the volume's directory. */
type AppFile = { name: string; content: pulumi.Input<string>; mode: number };

/** Environment and files for an app's secrets; pure, exported for tests. */
export function secretDelivery(
    mode: "file" | "env",
    secrets: Record<string, pulumi.Input<string>>,
): { envs: pulumi.Input<string>[]; files: AppFile[] } {
    const names = Object.keys(secrets).sort();
    if (mode === "env") {
        return { envs: names.map((n) => pulumi.secret(pulumi.interpolate`${n}=${secrets[n]}`)), files: [] };
    }
    return {
        envs: names.map(secretFileEnv),
        // 0444 like Docker's own secrets: the image's runtime user is unknown to us and the files must be
        // readable by it; the boundary is the container, and nothing shows in `docker inspect`.
        files: names.map((n) => ({ name: n, content: pulumi.secret(pulumi.output(secrets[n])), mode: 0o444 })),
    };
}

/** Names the app volume a Docker volume is (the backup job and the restore script find them by it). */
export const APP_VOLUME_LABEL = "vps-stack.volume";

export class ApiService extends pulumi.ComponentResource {
    readonly appName: string;
    /** Release mode: the release these containers belong to. */
    readonly release?: string;
    readonly containerNames: string[];
    readonly containers: docker.Container[];
    /** What the proxy's upstream names: the release's alias (release mode) or the app's name. */
    readonly upstreamHost: string;
    /** Release mode: the command that passes once the release is healthy; the proxy switches after it. */
    readonly gate?: pulumi.Resource;
    /** The migration's container, when the app has one. */
    readonly migration?: docker.Container;
    /** The app's named volumes (apps[].volumes). */
    readonly volumes: { name: string; path: string; backup: boolean; volume: docker.Volume }[];

    constructor(name: string, args: ApiServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super(API_SERVICE_TYPE, name, {}, opts);
        this.appName = args.name;
        this.release = args.release?.id;
        const provider = args.host.provider;
        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: args.trackTag }, { parent: this, provider });
        const delivery = secretDelivery(args.secretDelivery, args.secrets);
        const envs = [...Object.entries(args.env).map(([k, v]) => dockerEnv(k, v)), ...delivery.envs];
        const isStatic = args.kind === "static";
        const site = args.staticSite ?? { root: "/usr/share/nginx/html" };
        // A static site's server config, or the secret files: in a read-only volume of their own.
        const filesDir = isStatic ? path.posix.dirname(STATIC_SITE_CONF) : SECRETS_DIR;
        const files: AppFile[] = isStatic
            ? [{ name: path.posix.basename(STATIC_SITE_CONF), content: renderStaticSiteConf({ port: args.port, root: site.root }), mode: 0o444 }]
            : delivery.files;
        // The app's own named volumes: children of the app, not of a release, so a new release mounts the
        // same data; protected on prod like PostgreSQL's.
        this.volumes = args.volumes.map((v) => {
            const volume = new docker.Volume(
                `${name}-volume-${v.name}`,
                { name: `${args.prefix}-${args.name}-${v.name}`, labels: [...labels(args.stack, args.name), { label: APP_VOLUME_LABEL, value: v.name }] },
                { parent: this, provider, protect: v.protect ?? args.stack === "prod", retainOnDelete: v.protect ?? args.stack === "prod" },
            );
            return { name: v.name, path: v.path, backup: v.backup, volume };
        });
        const mounts: docker.types.input.ContainerVolume[] = [
            ...this.volumes.map((v) => ({ volumeName: v.volume.name, containerPath: v.path })),
            ...(isStatic && site.hostDir ? [{ hostPath: site.hostDir, containerPath: site.root, readOnly: true }] : []),
        ];
        // apps[].readOnly (the default): a read-only root; a static site's Nginx also writes its pid and
        // temporary files. Without it, the image writes where it likes.
        const root = (fileMounts: docker.types.input.ContainerVolume[]) => {
            const volumes = [...fileMounts, ...mounts];
            return args.readOnly
                ? readOnlyRoot({ tmpfs: isStatic ? NGINX_RUNTIME.tmpfs : undefined, volumes: [...(isStatic ? NGINX_RUNTIME.volumes : []), ...volumes] })
                : { volumes: volumes.length > 0 ? volumes : undefined, removeVolumes: true };
        };
        // A static site's Nginx master needs to switch users and own its cache directories.
        const capAdd = isStatic ? ["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID", ...args.capAdd] : args.capAdd;

        const release = args.release;
        const names = release ? releaseNames(args.prefix, args.name, release.id, args.replicas) : undefined;
        // In release mode the alias is the release's own: old and new releases never share a name the proxy
        // resolves, so it switches by a reload and not by chance.
        this.upstreamHost = names?.alias ?? args.name;
        // Resource names carry the release too: a new release is new resources, created before the old
        // release's are deleted (at the end of `pulumi up`, after the proxy switched). A failed gate stops
        // `pulumi up` before that, so the old release is never touched.
        const rel = release ? `-${release.id}` : "";
        // One volume for the release's containers (and its migration): named after the release, so a
        // release never shares one with another and takes it away with it.
        const appFiles =
            files.length > 0
                ? containerFiles(
                      args.host,
                      `${name}${rel}-files`,
                      { container: `${args.prefix}-${args.name}${rel}`, stack: args.stack, service: args.name, image: image.imageId, dir: filesDir, files },
                      { parent: this },
                  )
                : undefined;
        const fileMounts = appFiles ? [appFiles.mount] : [];
        const filesReady = appFiles ? [appFiles.ready] : [];
        const networks = [{ name: args.edgeNetwork, aliases: [this.upstreamHost] }, ...(args.dataNetwork ? [{ name: args.dataNetwork }] : [])];

        // The migration runs in the new image, with the app's environment and secrets, to completion
        // (attach), before the replicas are replaced. The replicas only get their image once it exited
        // 0: a failed migration fails `pulumi up` and the running version keeps serving.
        let image_ = image.imageId;
        if (args.migrate) {
            // Every container replacement is delete-first (the Docker provider insists), and Pulumi then
            // also deletes first whatever takes a property from the replaced resource. So the replicas must
            // not take their image from the migration's outputs, or a new migration would take the running
            // replicas down before it even ran. They wait for it through dependsOn, and read its exit code
            // through a plain promise, which carries no dependency.
            this.migration = new docker.Container(
                `${args.prefix}-${args.name}${rel}-migrate`,
                {
                    image: image.imageId,
                    // Limits, log rotation and hardening like every container; but it runs to completion:
                    // never restarted, no healthcheck to wait for.
                    ...baseContainerArgs(args.stack, args.name, args),
                    restart: "no",
                    wait: false,
                    // Its PIDs limit is declared but not applied: it has exited by the time a command could.
                    labels: [...baseContainerArgs(args.stack, args.name, args).labels, { label: ONE_SHOT_LABEL, value: "true" }],
                    command: args.migrate.command,
                    user: args.user,
                    envs,
                    ...root(isStatic ? [] : fileMounts),
                    networksAdvanced: networks,
                    capabilities: { drops: ["ALL"], adds: dockerCaps(args.capAdd) },
                    mustRun: false,
                    attach: true,
                    logs: false,
                },
                // Kept after it exits, so its exit code stays readable and it re-runs only when it changes.
                { parent: this, provider, dependsOn: filesReady },
            );
            const migration = this.migration;
            image_ = pulumi.runtime.isDryRun()
                ? image.imageId
                : pulumi.output(
                      new Promise<string>((resolve, reject) =>
                          pulumi.all([migration.exitCode, migration.name, image.imageId]).apply(([code, migrationName, id]) => {
                              if (code !== undefined && code !== null && code !== 0) {
                                  reject(new pulumi.ResourceError(`the migration of app "${args.name}" exited with ${code}; the running version was left in place (docker logs ${migrationName})`, this));
                              } else resolve(id);
                          }),
                      ),
                  );
        }

        this.containerNames = names?.containers ?? Array.from({ length: args.replicas }, (_, i) => `${args.prefix}-${args.name}-${i + 1}`);
        this.containers = this.containerNames.map(
            (containerName, i) =>
                new docker.Container(
                    `${name}${rel}-${i + 1}`,
                    {
                        name: containerName,
                        image: image_,
                        ...baseContainerArgs(args.stack, args.name, args),
                        command: args.command,
                        user: args.user,
                        envs,
                        capabilities: { drops: ["ALL"], adds: dockerCaps(capAdd) },
                        ...root(fileMounts),
                        ports: args.hostPort !== undefined ? [{ internal: args.port, external: args.hostPort + i, ip: "127.0.0.1", protocol: "tcp" }] : undefined,
                        networksAdvanced: networks,
                        healthcheck: healthcheck({ tests: healthTest(args), interval: "15s", timeout: "5s", retries: 3, startPeriod: "20s" }),
                        // Release mode: the gate waits, and removes a release that never gets healthy (the
                        // provider's own wait would leave it running, and in the state).
                        wait: !release,
                        waitTimeout: 120,
                    },
                    // Names are fixed within a release (and without releases), so a replacement of the same
                    // resource must delete first. A release never replaces: it adds resources.
                    {
                        parent: this,
                        provider,
                        deleteBeforeReplace: true,
                        replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES,
                        dependsOn: [...(this.migration ? [image, this.migration] : []), ...(site.ready ?? []), ...filesReady],
                    },
                ),
        );
        const pids = this.containers.map((c, i) => limitPids(args.host, `${name}${rel}-${i + 1}`, c, this.containerNames[i], args.pidsLimit));
        if (release) {
            const containers = this.containerNames;
            this.gate = args.host.run(
                `${name}${rel}-gate`,
                {
                    create: "sh -s",
                    stdin: pulumi.all([release.proxy.image, args.edgeNetwork, args.dataNetwork]).apply(([proxyImage, network, dataNetwork]) =>
                        gateScript({
                            app: args.name,
                            stack: args.stack,
                            release: release.id,
                            image: args.image,
                            containers,
                            timeoutSeconds: release.healthTimeoutSeconds,
                            http: args.healthCommand ? undefined : { image: proxyImage, network, port: args.port, path: args.healthPath },
                            keepImages: release.keepImages,
                            networks: [{ name: network, aliases: [this.upstreamHost] }, ...(dataNetwork ? [{ name: dataNetwork, aliases: [] }] : [])],
                        }),
                    ),
                },
                // The gate judges a release once, when it is created. Re-running it on a live release
                // (stdin changes with the proxy's image, the timeouts or vps-stack's own script) could remove
                // containers that serve.
                // After the PIDs limits: a release is judged as it will run.
                { dependsOn: [...this.containers, ...pids], ignoreChanges: ["stdin"] },
            );
            // Nothing to do while the release lives; its delete (when a newer release replaced it and the
            // proxy switched) drains, then stops the containers before the provider removes them.
            args.host.run(
                `${name}${rel}-drain`,
                {
                    create: "true",
                    delete: drainScript({
                        proxy: release.proxy.container,
                        containers,
                        drainSeconds: release.drainTimeoutSeconds,
                        stopSeconds: release.stopTimeoutSeconds,
                    }),
                },
                { dependsOn: this.containers },
            );
        }
        this.registerOutputs({ containerNames: this.containerNames, upstreamHost: this.upstreamHost });
    }
}
