// The stack's watcher: a small container that looks at the stack every alerts.intervalSeconds and notifies
// webhooks (Slack, Discord, generic JSON) and e-mail once when a problem starts, once when it resolves, and
// every alerts.reminderHours while it lasts (render/scripts/vps-stack-alerts.sh).
//
// It runs from the proxy's image (nginx alpine: busybox and curl, whose smtp:// support sends the e-mail),
// so no new image is pulled. It reads the Docker API through the socket, mounted read-only, which is still
// root-equivalent on the host: the watcher has no published port, no stack network (only one of its own
// with a way out), drops every capability, and only ever GETs from the API (docs/decisions/0004-alerts.md).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck, labels, readOnlyRoot } from "../plan/container-defaults";
import { containerFilesAt } from "./container-files";
import {
    ALERTS_BACKUP_MOUNT,
    ALERTS_SCRIPT,
    ALERTS_STATE_DIR,
    alertsEnv,
    alertsScript,
    AlertSettings,
    DOCKER_SOCKET,
    SMTP_AUTH_FILE,
    smtpCurlConfig,
    webhookCurlConfig,
    webhookFile,
} from "../render/alerts";
import { pullImage } from "./image";
import { limitPids } from "./pids-limit";
import { StackScope } from "./scope";

export const ALERT_WATCHER_TYPE = "vps-stack:index:AlertWatcher";
/** Most processes in the watcher: its loop, a round's pipelines (sh, curl, grep, sed, awk), a healthcheck, a docker exec. */
export const ALERTS_PIDS_LIMIT = 64;

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

    constructor(name: string, args: AlertWatcherArgs, opts?: pulumi.ComponentResourceOptions) {
        super(ALERT_WATCHER_TYPE, name, {}, opts);
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-alerts`;
        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: false }, { parent: this, provider });
        // Its own network: a way out to the destinations and to the host's published ports, no neighbour.
        const network = new docker.Network(
            `${name}-network`,
            { name: `${args.prefix}-alerts`, driver: "bridge", labels: labels(args.stack, "alerts") },
            { parent: this, provider, deleteBeforeReplace: true },
        );
        // Where it remembers what it already notified: a replaced watcher does not notify it again.
        const state = new docker.Volume(`${name}-state`, { name: `${args.prefix}-alerts`, labels: labels(args.stack, "alerts") }, { parent: this, provider });
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
                envs: alertsEnv({ ...args, stack: args.stack, backupDirectory: args.backupDirectory !== undefined, webhooks: args.webhooks.map((w) => ({ kind: w.kind })) }),
                // A read-only root: it writes only its state volume (and /tmp).
                ...readOnlyRoot({
                    volumes: [
                        ...files.mounts,
                        // Read-only: the watcher only GETs. Still root-equivalent (decision 0004).
                        { hostPath: DOCKER_SOCKET, containerPath: DOCKER_SOCKET, readOnly: true },
                        { volumeName: state.name, containerPath: ALERTS_STATE_DIR },
                        ...(args.backupDirectory ? [{ hostPath: args.backupDirectory, containerPath: ALERTS_BACKUP_MOUNT, readOnly: true }] : []),
                    ],
                }),
                networksAdvanced: [{ name: network.name }],
                capabilities: { drops: ["ALL"] },
                healthcheck: healthcheck({ tests: ["CMD", ALERTS_SCRIPT, "check"], interval: "30s", timeout: "10s", retries: 2, startPeriod: "30s" }),
                waitTimeout: 90,
            },
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: files.ready },
        );
        limitPids(args.host, name, this.container, this.containerName, ALERTS_PIDS_LIMIT);
        this.registerOutputs({ containerName: this.containerName });
    }
}
