// The stack's watcher: a small container that looks at the stack every alerts.intervalSeconds and notifies
// webhooks (Slack, Discord, generic JSON) and e-mail once when a problem starts, once when it resolves, and
// every alerts.reminderHours while it lasts (render/scripts/vps-stack-alerts.sh).
//
// It runs from the proxy's image (nginx alpine: busybox and curl, whose smtp:// support sends the e-mail),
// so no new image is pulled. It never sees the Docker socket, which is root-equivalent on the host even
// mounted read-only: a second container from the same image, with no network at all, holds the socket and
// passes on only the few GETs the watcher makes (render/docker-api-proxy.ts, docs/decisions/0004-alerts.md).
// The watcher has no published port, no stack network (only one of its own with a way out), and drops
// every capability.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck, labels, readOnlyRoot } from "../plan/container-defaults";
import { containerFilesAt } from "./container-files";
import {
    ALERTS_BACKUP_MOUNT,
    ALERTS_SCRIPT,
    ALERTS_STATE_DIR,
    alertsEnv,
    alertsScript,
    AlertSettings,
    SMTP_AUTH_FILE,
    smtpCurlConfig,
    webhookCurlConfig,
    webhookFile,
} from "../render/alerts";
import {
    DOCKER_API_CONF,
    DOCKER_API_DIR,
    dockerApiProxyCommand,
    dockerApiProxyConf,
    dockerApiProxyHealth,
    HOST_DOCKER_SOCKET,
} from "../render/docker-api-proxy";
import { dockerEnv } from "../sinks/docker";
import { pullImage } from "./image";
import { limitPids } from "./pids-limit";
import { StackScope } from "./scope";

export const ALERT_WATCHER_TYPE = "vps-stack:index:AlertWatcher";
/** Most processes in the watcher: its loop, a round's pipelines (sh, curl, grep, sed, awk), a healthcheck, a docker exec. */
export const ALERTS_PIDS_LIMIT = 64;
/** The proxy: nginx's master and its one worker, and a healthcheck's curl. */
export const DOCKER_API_PIDS_LIMIT = 16;

export interface AlertWatcherArgs extends StackScope, Omit<AlertSettings, "stack" | "backupDirectory" | "webhooks"> {
    /**
     * The watcher's image: needs sh, curl (with smtp) and df.
     * @default the stack's nginx.image
     * @example "nginx:1.27-alpine"
     */
    image: string;
    memory: string;
    cpus: number;
    /** Each webhook with its URL (a secret: it carries the token). */
    webhooks: { kind: AlertSettings["webhooks"][number]["kind"]; url: pulumi.Input<string> }[];
    /** The SMTP login's password (alerts.email.user set). */
    smtpPassword?: pulumi.Input<string>;
    /** The host's backup directory, whose disk is watched; undefined without backups. */
    backupDirectory?: string;
}

export class AlertWatcher extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly container: docker.Container;
    readonly proxyContainerName: string;
    readonly proxy: docker.Container;

    constructor(name: string, args: AlertWatcherArgs, opts?: pulumi.ComponentResourceOptions) {
        super(ALERT_WATCHER_TYPE, name, {}, opts);
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-alerts`;
        this.proxyContainerName = `${args.prefix}-alerts-docker`;
        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: false }, { parent: this, provider });
        // Its own network: a way out to the destinations and to the host's published ports, no neighbour.
        const network = new docker.Network(
            `${name}-network`,
            { name: `${args.prefix}-alerts`, driver: "bridge", labels: labels(args.stack, "alerts") },
            { parent: this, provider, deleteBeforeReplace: true },
        );
        // Where it remembers what it already notified: a replaced watcher does not notify it again.
        const state = new docker.Volume(`${name}-state`, { name: `${args.prefix}-alerts`, labels: labels(args.stack, "alerts") }, { parent: this, provider });
        // The proxy's socket: written by the proxy, connected to by the watcher (a read-only mount allows that).
        const apiVolume = new docker.Volume(`${name}-docker-api`, { name: `${args.prefix}-alerts-docker-api`, labels: labels(args.stack, "alerts") }, { parent: this, provider });
        const proxyFiles = containerFilesAt(
            args.host,
            `${name}-docker-files`,
            { container: this.proxyContainerName, stack: args.stack, service: "alerts", image: image.imageId },
            [{ path: DOCKER_API_CONF, content: dockerApiProxyConf(), mode: 0o444 }],
            { parent: this },
        );
        this.proxy = new docker.Container(
            `${name}-docker`,
            {
                name: this.proxyContainerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "alerts", { memory: "32m", cpus: 0.1, pidsLimit: DOCKER_API_PIDS_LIMIT }),
                entrypoints: dockerApiProxyCommand(),
                ...readOnlyRoot({
                    volumes: [
                        ...proxyFiles.mounts,
                        // The only container of the stack that holds the socket; it passes on only GETs it knows.
                        { hostPath: HOST_DOCKER_SOCKET, containerPath: HOST_DOCKER_SOCKET, readOnly: true },
                        { volumeName: apiVolume.name, containerPath: DOCKER_API_DIR },
                    ],
                }),
                // Unix sockets only: no network at all.
                networkMode: "none",
                // nginx's workers switch user (to root again: the socket is root:docker), which needs these two.
                capabilities: { drops: ["ALL"], adds: dockerCaps(["SETGID", "SETUID"]) },
                // Every 10 s: the watcher waits for it to be healthy before it is created.
                healthcheck: healthcheck({ tests: dockerApiProxyHealth(), interval: "10s", timeout: "5s", retries: 3, startPeriod: "10s" }),
                waitTimeout: 60,
            },
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: proxyFiles.ready },
        );
        limitPids(args.host, `${name}-docker`, this.proxy, this.proxyContainerName, DOCKER_API_PIDS_LIMIT);
        const files = containerFilesAt(
            args.host,
            `${name}-files`,
            { container: this.containerName, stack: args.stack, service: "alerts", image: image.imageId },
            [
                { path: ALERTS_SCRIPT, content: alertsScript(), mode: 0o555 },
                // Files read by `curl -K`, never arguments or environment: `docker inspect` and `ps` show those.
                ...args.webhooks.map((w, i) => ({ path: webhookFile(i), content: pulumi.secret(pulumi.output(w.url).apply(webhookCurlConfig)), mode: 0o400 })),
                ...(args.email?.user && args.smtpPassword !== undefined
                    ? [{ path: SMTP_AUTH_FILE, content: pulumi.secret(pulumi.output(args.smtpPassword).apply((p) => smtpCurlConfig(args.email!.user!, p))), mode: 0o400 }]
                    : []),
            ],
            { parent: this },
        );
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "alerts", { memory: args.memory, cpus: args.cpus, pidsLimit: ALERTS_PIDS_LIMIT }),
                entrypoints: [ALERTS_SCRIPT],
                command: ["watch"],
                envs: [
                    ...alertsEnv({ ...args, stack: args.stack, backupDirectory: args.backupDirectory !== undefined, webhooks: args.webhooks.map((w) => ({ kind: w.kind })) }),
                    dockerEnv("DOCKER_API_PROXY", this.proxyContainerName),
                ],
                // A read-only root: it writes only its state volume (and /tmp).
                ...readOnlyRoot({
                    volumes: [
                        ...files.mounts,
                        // The proxy's socket, not Docker's.
                        { volumeName: apiVolume.name, containerPath: DOCKER_API_DIR, readOnly: true },
                        { volumeName: state.name, containerPath: ALERTS_STATE_DIR },
                        ...(args.backupDirectory ? [{ hostPath: args.backupDirectory, containerPath: ALERTS_BACKUP_MOUNT, readOnly: true }] : []),
                    ],
                }),
                networksAdvanced: [{ name: network.name }],
                capabilities: { drops: ["ALL"] },
                healthcheck: healthcheck({ tests: ["CMD", ALERTS_SCRIPT, "check"], interval: "30s", timeout: "10s", retries: 2, startPeriod: "30s" }),
                waitTimeout: 90,
            },
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [...files.ready, this.proxy] },
        );
        limitPids(args.host, name, this.container, this.containerName, ALERTS_PIDS_LIMIT);
        this.registerOutputs({ containerName: this.containerName });
    }
}
