// AlertWatcher under Pulumi mocks: the watcher container (the proxy's image, the script, its own network),
// the Docker API proxy that alone holds the socket, the destinations' secrets as 0400 files and never in its environment,
// the config's refusals with their fixes, and the warning on prod without a destination.
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "../../config";
import {
    ALERTS_BACKUP_MOUNT,
    ALERTS_SCRIPT,
    ALERTS_STATE_DIR,
    alertsCommands,
    alertsScript,
    curlConfigValue,
    SMTP_AUTH_FILE,
    smtpCurlConfig,
    webhookCurlConfig,
    webhookFile,
} from "../../render/alerts";
import { DOCKER_API_CONF, DOCKER_API_DIR, DOCKER_API_SOCKET, dockerApiProxyConf, HOST_DOCKER_SOCKET } from "../../render/docker-api-proxy";
import { byName, NETWORK, ofType, REMOTE_COMMAND } from "../mocks";
import { build, byTypeName, container, KEY, preprodConfig, resetCaptured, upload, uploadIsSecret } from "./helpers";

beforeEach(resetCaptured);

const SLACK = "https://hooks.slack.com/services/T000/B000/secret-token-123";
const DISCORD = "https://discord.com/api/webhooks/42/discord-token-456";
const SMTP_PASSWORD = "smtp-password-789";
const withAlerts = (alerts: any = {}, secrets: Record<string, string> = {}) => (c: any) => {
    c.alerts = {
        webhooks: [{ kind: "slack" }, { kind: "discord" }],
        email: { host: "smtp.example.com", from: "alerts@example.com", to: ["ops@example.com", "cto@example.com"], user: "apikey" },
        ...alerts,
    };
    c.secrets = { ...c.secrets, ALERTS_SLACK_WEBHOOK_URL: SLACK, ALERTS_DISCORD_WEBHOOK_URL: DISCORD, ALERTS_SMTP_PASSWORD: SMTP_PASSWORD, ...secrets };
};

describe("AlertWatcher", () => {
    it("runs the script from the proxy's pinned image, watching the stack's containers, URLs and disks", async () => {
        await build(preprodConfig(withAlerts()));
        const c = container("vps-stack-preprod-alerts");
        expect(byName("vps-stack-alerts-image").inputs.name).toBe("nginx:1.27-alpine");
        expect(c.entrypoints).toEqual([ALERTS_SCRIPT]);
        expect(c.command).toEqual(["watch"]);
        expect(upload(c, ALERTS_SCRIPT)).toMatchObject({ content: alertsScript(), permissions: "0555" });
        expect(c.envs).toEqual(
            expect.arrayContaining([
                "STACK=preprod",
                "INTERVAL=60",
                "REMINDER=86400",
                "CONFIRM=2",
                "CERT_DAYS=14",
                "DISK_PERCENT=90",
                `DISKS=docker=/ backups=${ALERTS_BACKUP_MOUNT}`,
                "EXPECTED=vps-stack-preprod-postgres vps-stack-preprod-redis vps-stack-preprod-nginx vps-stack-preprod-backup vps-stack-preprod-wal",
                "HEALTH_URLS=https://app.example.com/api/health https://app.example.com/health",
                "HEALTH_CONNECT=gateway",
                `WEBHOOKS=slack=${webhookFile(0)} discord=${webhookFile(1)}`,
                "SMTP_URL=smtp://smtp.example.com:587",
                "SMTP_STARTTLS=1",
                `SMTP_AUTH=${SMTP_AUTH_FILE}`,
                "MAIL_FROM=alerts@example.com",
                "MAIL_TO=ops@example.com cto@example.com",
            ]),
        );
        expect(c.healthcheck.tests).toEqual(["CMD", ALERTS_SCRIPT, "check"]);
        expect(c.restart).toBe("unless-stopped");
        expect(c.capabilities).toEqual({ drops: ["ALL"] });
    });

    it("reads the Docker API through the proxy's socket and the backup directory read-only, and keeps its state in a volume", async () => {
        await build(preprodConfig(withAlerts()));
        const c = container("vps-stack-preprod-alerts");
        expect(c.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-alerts-sbin-files-[0-9a-f]{12}$/), containerPath: "/usr/local/sbin", readOnly: true },
            { volumeName: expect.stringMatching(/^vps-stack-preprod-alerts-secrets-files-[0-9a-f]{12}$/), containerPath: "/run/secrets", readOnly: true },
            { volumeName: "vps-stack-preprod-alerts-docker-api", containerPath: DOCKER_API_DIR, readOnly: true },
            { volumeName: "vps-stack-preprod-alerts", containerPath: ALERTS_STATE_DIR },
            { hostPath: "/var/backups/vps-stack/preprod", containerPath: ALERTS_BACKUP_MOUNT, readOnly: true },
        ]);
        expect(c.envs).toEqual(expect.arrayContaining([`DOCKER_SOCKET=${DOCKER_API_SOCKET}`, "DOCKER_API_PROXY=vps-stack-preprod-alerts-docker"]));
        expect(c.ports ?? []).toEqual([]);
        expect(c.networksAdvanced).toEqual([{ name: "vps-stack-preprod-alerts" }]);
        expect(ofType(NETWORK).find((n) => n.inputs.name === "vps-stack-preprod-alerts")!.inputs.internal ?? false).toBe(false);
        // The host is reached through the watcher's default gateway, not Docker's host-gateway (docker0's address).
        expect(c.hosts ?? []).toEqual([]);
    });

    it("leaves the Docker socket to a proxy with no network, no capability but its user switch, and a read-only root", async () => {
        await build(preprodConfig(withAlerts()));
        // No other container of the stack holds the socket.
        const holders = ofType("docker:index/container:Container")
            .filter((r) => (r.inputs.volumes ?? []).some((v: any) => v.hostPath === HOST_DOCKER_SOCKET))
            .map((r) => r.inputs.name);
        expect(holders).toEqual(["vps-stack-preprod-alerts-docker"]);
        const p = container("vps-stack-preprod-alerts-docker");
        expect(p.image).toBe(container("vps-stack-preprod-alerts").image);
        expect(p.networkMode).toBe("none");
        expect(p.networksAdvanced ?? []).toEqual([]);
        expect(p.ports ?? []).toEqual([]);
        // As Docker reads them back ("CAP_…"): written otherwise, every preview would replace the proxy.
        expect(p.capabilities).toEqual({ drops: ["ALL"], adds: ["CAP_SETGID", "CAP_SETUID"] });
        expect(p.readOnly).toBe(true);
        expect(p.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-alerts-docker-vps-stack-docker-api-files-[0-9a-f]{12}$/), containerPath: "/etc/vps-stack-docker-api", readOnly: true },
            { hostPath: HOST_DOCKER_SOCKET, containerPath: HOST_DOCKER_SOCKET, readOnly: true },
            { volumeName: "vps-stack-preprod-alerts-docker-api", containerPath: DOCKER_API_DIR },
        ]);
        expect(upload(p, DOCKER_API_CONF)).toMatchObject({ content: dockerApiProxyConf(), permissions: "0444" });
        expect(p.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "16" });
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-alerts-docker-pids").inputs.create).toBe("docker update --pids-limit 16 vps-stack-preprod-alerts-docker >/dev/null");
        expect(p.healthcheck.tests).toEqual(["CMD", "curl", "-fsS", "--max-time", "5", "--unix-socket", DOCKER_API_SOCKET, "http://docker/_ping"]);
    });

    it("has a PIDs limit, applied on the host once it exists, and a read-only root", async () => {
        await build(preprodConfig(withAlerts()));
        const c = container("vps-stack-preprod-alerts");
        expect(c.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "64" });
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-alerts-pids").inputs.create).toBe("docker update --pids-limit 64 vps-stack-preprod-alerts >/dev/null");
        expect(c.uploads).toBeUndefined();
        expect(c.readOnly).toBe(true);
        expect(c.tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,size=64m" });
    });

    it("keeps the webhook URLs and the SMTP login in 0400 secret files, never in its environment", async () => {
        await build(preprodConfig(withAlerts()));
        const c = container("vps-stack-preprod-alerts");
        expect(upload(c, webhookFile(0))).toMatchObject({ content: webhookCurlConfig(SLACK), permissions: "0400" });
        expect(upload(c, webhookFile(1))).toMatchObject({ content: webhookCurlConfig(DISCORD), permissions: "0400" });
        expect(upload(c, SMTP_AUTH_FILE)).toMatchObject({ content: smtpCurlConfig("apikey", SMTP_PASSWORD), permissions: "0400" });
        const env = c.envs.join("\n");
        for (const s of ["secret-token-123", "discord-token-456", SMTP_PASSWORD]) expect(env).not.toContain(s);
        const secretness = await Promise.all([webhookFile(0), webhookFile(1), SMTP_AUTH_FILE].map((f) => uploadIsSecret("vps-stack-alerts", f)));
        expect(secretness).toEqual([true, true, true]);
    });

    it("does not exist without a destination", async () => {
        await build(preprodConfig(withAlerts({ webhooks: [], email: undefined })));
        expect(ofType("docker:index/container:Container").find((c) => c.inputs.name === "vps-stack-preprod-alerts")).toBeUndefined();
        await build(preprodConfig());
        expect(ofType("docker:index/container:Container").find((c) => c.inputs.name === "vps-stack-preprod-alerts")).toBeUndefined();
    });

    it("warns on prod when no destination is configured, and only there", async () => {
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const prod = (extra: (c: any) => void = () => {}) => {
                const raw: any = { host: { address: "203.0.113.10", hostKey: KEY }, domain: "app.example.com", apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0" }] };
                extra(raw);
                return loadConfig(raw, "prod");
            };
            await build(prod());
            expect(warn.mock.calls.map((c) => c[0])).toContainEqual(expect.stringContaining("no alert destination"));
            warn.mockClear();
            resetCaptured();
            await build(prod(withAlerts()));
            await build(preprodConfig());
            expect(warn.mock.calls.map((c) => c[0]).filter((m) => m.includes("alert destination"))).toEqual([]);
        } finally {
            warn.mockRestore();
        }
    });

    it("gives the operator's commands, test first", () => {
        expect(alertsCommands("vps-stack-prod-alerts", { address: "203.0.113.10", port: 22, user: "deploy" }).test).toBe(
            "ssh -p 22 deploy@203.0.113.10 docker exec vps-stack-prod-alerts vps-stack-alerts test",
        );
        expect(alertsCommands("vps-stack-dev-alerts").status).toBe("docker exec vps-stack-dev-alerts vps-stack-alerts status");
    });

    it("writes curl config values with curl's escapes", () => {
        expect(curlConfigValue('a"b\\c')).toBe('"a\\"b\\\\c"');
        expect(() => curlConfigValue("a\nb")).toThrow(/one line/);
    });
});

describe("alerts config", () => {
    const load = (extra: (c: any) => void) => () => preprodConfig(extra);

    it("needs each destination's secret, naming every missing one with its fix at once", () => {
        const none = (c: any) => {
            withAlerts()(c);
            delete c.secrets.ALERTS_SLACK_WEBHOOK_URL;
            delete c.secrets.ALERTS_DISCORD_WEBHOOK_URL;
            delete c.secrets.ALERTS_SMTP_PASSWORD;
        };
        expect(load(none)).toThrow(
            /secrets\.ALERTS_SLACK_WEBHOOK_URL .*fix: pulumi config set --secret --path 'secrets\.ALERTS_SLACK_WEBHOOK_URL'.*secrets\.ALERTS_DISCORD_WEBHOOK_URL .*secrets\.ALERTS_SMTP_PASSWORD .*alerts\.email\.user/s,
        );
    });

    it("takes a webhook's URL from the secret it names", async () => {
        await build(preprodConfig(withAlerts({ webhooks: [{ kind: "json", secret: "OPS_HOOK" }], email: undefined }, { OPS_HOOK: "https://ops.example.com/hook?t=1" })));
        expect(upload(container("vps-stack-preprod-alerts"), webhookFile(0)).content).toBe(webhookCurlConfig("https://ops.example.com/hook?t=1"));
    });

    it("refuses a token or a password in clear unless told the network is private", () => {
        expect(load(withAlerts({}, { ALERTS_SLACK_WEBHOOK_URL: "http://10.0.0.5/hook" }))).toThrow(/secrets\.ALERTS_SLACK_WEBHOOK_URL .*plain http/);
        expect(load(withAlerts({ insecure: true }, { ALERTS_SLACK_WEBHOOK_URL: "http://10.0.0.5/hook" }))).not.toThrow();
        expect(load(withAlerts({ email: { host: "relay", from: "a@example.com", to: ["b@example.com"], user: "u", tls: "none" } }))).toThrow(
            /alerts\.email\.tls .*in clear.*pulumi config set --path 'alerts\.email\.tls' starttls/s,
        );
    });

    it.each([
        [{ ALERTS_SLACK_WEBHOOK_URL: "https://hooks.slack.com/a b" }, "secrets.ALERTS_SLACK_WEBHOOK_URL"],
        [{ ALERTS_SLACK_WEBHOOK_URL: 'https://x.example.com/"' }, "secrets.ALERTS_SLACK_WEBHOOK_URL"],
        [{ ALERTS_SMTP_PASSWORD: "two\nlines" }, "secrets.ALERTS_SMTP_PASSWORD"],
    ])("refuses a malformed secret %j", (secrets, key) => {
        expect(load(withAlerts({}, secrets))).toThrow(new RegExp(`vps-stack:${key.replace(/\./g, "\\.")} `));
    });

    it.each([
        [{ email: { host: "smtp.example.com", from: "not an address", to: ["ops@example.com"] } }, "alerts.email.from"],
        [{ email: { host: "smtp.example.com", from: "a@example.com", to: [] } }, "alerts.email.to"],
        [{ webhooks: [{ kind: "teams" }] }, "alerts.webhooks[0].kind"],
        [{ diskPercent: 100 }, "alerts.diskPercent"],
        [{ intervalSeconds: 1 }, "alerts.intervalSeconds"],
    ])("refuses %j", (alerts, key) => {
        expect(load(withAlerts(alerts))).toThrow(new RegExp(`vps-stack:${key.replace(/[.[\]]/g, "\\$&")} `));
    });
});
