// The alert watcher's script (render/scripts/vps-stack-alerts.sh) run for real, under busybox sh with
// busybox's tools first on PATH as in the Alpine nginx image, against: a real SMTP server (aiosmtpd, with
// STARTTLS and a login required), HTTP receivers standing in for Slack, Discord and a generic webhook, an
// HTTPS health endpoint whose certificate expires within a day, a directory as the watched disk, and the
// Docker API's answers served on a unix socket as dockerd would (containers by filter, inspect, OOM events).
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import { smtpCurlConfig, webhookCurlConfig } from "../../render/alerts";
import { freePort, makeCa, shAsync, tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-alerts.sh");
const STACK = "it";
const SMTP_USER = "alerts-user";
const SMTP_PASSWORD = 'p4ss "word" \\ with quotes';
const TOKEN = "secret-token-xyz";

interface FakeContainer {
    name: string;
    state: "running" | "exited" | "restarting";
    health?: "healthy" | "unhealthy";
    output?: string;
    oneShot?: boolean;
}

let root: string;
let busyboxDir: string;
let docker: http.Server;
let containers: FakeContainer[] = [];
let ooms: { time: number; name: string }[] = [];
let hooks: http.Server;
let hookPort: number;
let received: { path: string; body: any }[] = [];
let hookStatus = 200;
let health: https.Server;
let healthPort: number;
let healthStatus = 200;
let smtp: ChildProcess;
let smtpPort: number;
let mailDir: string;
let ca: { caCert: string; cert: string; key: string };

/** What dockerd answers to GET /containers/json?all=1&filters=…: label, status and health filters. */
function listContainers(filters: Record<string, string[]>): object[] {
    return containers
        .filter((c) => (filters.label ?? []).every((l) => l === `vps-stack.stack=${STACK}` || (l === "vps-stack.one-shot" && c.oneShot)))
        .filter((c) => !filters.status || filters.status.includes(c.state))
        .filter((c) => !filters.health || (c.health !== undefined && filters.health.includes(c.health)))
        .map((c) => ({
            Id: c.name.replace(/[^a-f0-9]/g, "a"),
            Names: [`/${c.name}`],
            Command: 'sh -c "echo \\"Names\\":[\\"/decoy\\"]"',
            State: c.state,
            Labels: { "vps-stack.stack": STACK },
        }));
}

function dockerApi(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url!, "http://docker");
    if (req.method !== "GET") {
        res.writeHead(405).end();
        throw new Error(`the watcher sent ${req.method} ${req.url}: it must only read`);
    }
    const filters = url.searchParams.get("filters") ? JSON.parse(url.searchParams.get("filters")!) : {};
    let m: RegExpMatchArray | null;
    if (url.pathname === "/containers/json") {
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(listContainers(filters)));
    } else if ((m = url.pathname.match(/^\/containers\/([^/]+)\/json$/))) {
        const c = containers.find((x) => x.name === m![1]);
        if (!c) {
            res.writeHead(404).end(JSON.stringify({ message: "No such container" }));
            return;
        }
        const log = c.output ? [{ ExitCode: 1, Output: "an earlier failure\n" }, { ExitCode: 1, Output: c.output }] : [];
        res.writeHead(200).end(JSON.stringify({ Name: `/${c.name}`, State: { Status: c.state, Health: { Status: c.health, Log: log } } }));
    } else if (url.pathname === "/events") {
        const since = Number(url.searchParams.get("since"));
        const until = Number(url.searchParams.get("until"));
        const lines = ooms
            .filter((o) => o.time >= since && o.time <= until)
            .map((o) => JSON.stringify({ status: "oom", Type: "container", Action: "oom", Actor: { ID: "abc", Attributes: { image: "x", name: o.name, "vps-stack.stack": STACK } }, time: o.time }));
        res.writeHead(200).end(lines.map((l) => `${l}\n`).join(""));
    } else {
        res.writeHead(404).end();
    }
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
        PATH: `${busyboxDir}:${process.env.PATH}`,
        STACK,
        STATE_DIR: path.join(root, "state"),
        INTERVAL: "60",
        DOCKER_SOCKET: path.join(root, "docker.sock"),
        EXPECTED: `vps-stack-${STACK}-postgres vps-stack-${STACK}-nginx`,
        DISKS: `backups=${path.join(root, "backups")}`,
        DISK_PERCENT: "99",
        HEALTH_URLS: `https://localhost:${healthPort}/health`,
        CERT_DAYS: "0",
        WEBHOOKS: ["json", "slack", "discord"].map((k) => `${k}=${path.join(root, `hook-${k}`)}`).join(" "),
        SMTP_URL: `smtp://localhost:${smtpPort}`,
        SMTP_AUTH: path.join(root, "smtp-auth"),
        MAIL_FROM: "alerts@example.com",
        MAIL_TO: "ops@example.com cto@example.com",
        CURL_CA_BUNDLE: ca.caCert,
        ...extra,
    };
}

const watcher = (cmd: string, extra: Record<string, string> = {}) => shAsync(path.join(busyboxDir, "sh"), [SCRIPT, cmd], { env: env(extra) });
const round = async (extra: Record<string, string> = {}) => {
    const r = await watcher("round", extra);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    return r;
};
const mails = () =>
    fs
        .readdirSync(mailDir)
        .filter((f) => f.endsWith(".eml"))
        .sort()
        .map((f) => fs.readFileSync(path.join(mailDir, f), "utf8"));
const reset = () => {
    received = [];
    for (const f of fs.readdirSync(mailDir)) fs.rmSync(path.join(mailDir, f));
};
/** The events each destination got, by kind: "<event> <key or summary>". */
const jsonEvents = () => received.filter((r) => r.path === "/json").map((r) => `${r.body.event} ${r.body.key}`).sort();

const ALL_PROBLEMS: FakeContainer[] = [
    { name: `vps-stack-${STACK}-postgres`, state: "running", health: "healthy" },
    // nginx: expected, absent (gone).
    { name: `vps-stack-${STACK}-backup`, state: "running", health: "unhealthy", output: 'the last good backup is 30h old (max 26h): "pg_dump" failed \\ see the log\n' },
    { name: `vps-stack-${STACK}-redis`, state: "restarting" },
    { name: `vps-stack-${STACK}-api-r1-1`, state: "exited" },
    { name: `vps-stack-${STACK}-api-migrate-r1`, state: "exited", oneShot: true },
    { name: `vps-stack-${STACK}-acme`, state: "running", health: "unhealthy", output: "the certificate expires in 100h; renewal is failing" },
];
const ALL_KEYS = [
    "certificate:localhost:PORT",
    `disk:backups`,
    `gone:vps-stack-${STACK}-nginx`,
    "health:URL",
    `oom:vps-stack-${STACK}-api-r1-1`,
    `restarting:vps-stack-${STACK}-redis`,
    `stopped:vps-stack-${STACK}-api-r1-1`,
    `unhealthy:vps-stack-${STACK}-acme`,
    `unhealthy:vps-stack-${STACK}-backup`,
];

beforeAll(async () => {
    root = tempDir("alerts");
    fs.mkdirSync(path.join(root, "backups"));
    mailDir = path.join(root, "mail");
    fs.mkdirSync(mailDir);
    busyboxDir = path.join(root, "busybox");
    fs.mkdirSync(busyboxDir);
    const busybox = tool("busybox", "busybox");
    for (const applet of ["sh", "awk", "sed", "grep", "cut", "date", "df", "sort", "md5sum", "tail", "head", "cat", "touch", "rm", "mkdir", "sleep", "tr", "wc"]) {
        fs.symlinkSync(busybox, path.join(busyboxDir, applet));
    }
    ca = makeCa(root, ["localhost"]);

    docker = http.createServer(dockerApi);
    await new Promise<void>((r) => docker.listen(path.join(root, "docker.sock"), r));

    hooks = http.createServer((req, res) => {
        let data = "";
        req.on("data", (d) => (data += d));
        req.on("end", () => {
            const ok = req.url!.endsWith(`?token=${TOKEN}`);
            const p = req.url!.replace(/\?.*/, "");
            if (hookStatus === 200 && ok) received.push({ path: p, body: JSON.parse(data) });
            res.writeHead(ok ? hookStatus : 403).end(hookStatus === 200 ? "ok" : "down");
        });
    });
    hookPort = await freePort();
    await new Promise<void>((r) => hooks.listen(hookPort, "127.0.0.1", r));
    for (const k of ["json", "slack", "discord"]) fs.writeFileSync(path.join(root, `hook-${k}`), webhookCurlConfig(`http://127.0.0.1:${hookPort}/${k}?token=${TOKEN}`), { mode: 0o400 });
    fs.writeFileSync(path.join(root, "smtp-auth"), smtpCurlConfig(SMTP_USER, SMTP_PASSWORD), { mode: 0o400 });

    health = https.createServer({ cert: fs.readFileSync(ca.cert), key: fs.readFileSync(ca.key) }, (_req, res) => res.writeHead(healthStatus).end("health"));
    healthPort = await freePort();
    await new Promise<void>((r) => health.listen(healthPort, "127.0.0.1", r));

    smtpPort = await freePort();
    const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : tool("python3", "python3-aiosmtpd");
    smtp = spawn(python, [path.join(__dirname, "smtp-sink.py"), String(smtpPort), ca.cert, ca.key, mailDir, SMTP_USER, SMTP_PASSWORD], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    smtp.stderr!.on("data", (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
        smtp.stdout!.on("data", (d) => String(d).includes("ready") && resolve());
        smtp.on("exit", () => reject(new Error(`the SMTP sink did not start (apt-get install -y python3-aiosmtpd, or bash .ci/install-tools.sh): ${err}`)));
    });
});

afterAll(async () => {
    smtp?.kill("SIGTERM");
    await Promise.all([docker, hooks, health].map((s) => new Promise((r) => (s ? s.close(r) : r(undefined)))));
    fs.rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
    fs.rmSync(path.join(root, "state"), { recursive: true, force: true });
    containers = [{ name: `vps-stack-${STACK}-postgres`, state: "running", health: "healthy" }, { name: `vps-stack-${STACK}-nginx`, state: "running", health: "healthy" }];
    ooms = [];
    hookStatus = 200;
    healthStatus = 200;
    reset();
});

describe("vps-stack-alerts", () => {
    it("notifies each kind of problem once, on every destination, never again while it lasts, and its resolution once", async () => {
        const keys = ALL_KEYS.map((k) => k.replace("PORT", String(healthPort)).replace("URL", `https://localhost:${healthPort}/health`)).sort();
        const broken = { CERT_DAYS: "14", DISK_PERCENT: "1" };
        await round();
        expect(received).toEqual([]);

        containers = ALL_PROBLEMS.map((c) => ({ ...c }));
        ooms = [{ time: Math.floor(Date.now() / 1000), name: `vps-stack-${STACK}-api-r1-1` }];
        healthStatus = 503;
        // Seen once: not yet an incident (alerts.confirmRounds is 2).
        await round(broken);
        expect(received).toEqual([]);
        await round(broken);
        expect(jsonEvents()).toEqual(keys.map((k) => `problem ${k}`));
        expect(received.filter((r) => r.path === "/slack")).toHaveLength(keys.length);
        expect(received.filter((r) => r.path === "/discord")).toHaveLength(keys.length);
        expect(mails()).toHaveLength(keys.length);

        // Lasting: nothing more, round after round.
        reset();
        await round(broken);
        await round(broken);
        expect(received).toEqual([]);
        expect(mails()).toEqual([]);
        const status = await watcher("status");
        expect(status.stdout.trim().split("\n")).toHaveLength(keys.length);

        // All fixed: one resolution each.
        containers = [{ name: `vps-stack-${STACK}-postgres`, state: "running", health: "healthy" }, { name: `vps-stack-${STACK}-nginx`, state: "running", health: "healthy" }];
        healthStatus = 200;
        await round({ OOM_WINDOW: "0" });
        expect(jsonEvents()).toEqual(keys.map((k) => `resolved ${k}`));
        expect(mails()).toHaveLength(keys.length);
        reset();
        await round();
        expect(received).toEqual([]);
        expect((await watcher("status")).stdout.trim()).toBe("no active problem");
    });

    it("sends what Slack, Discord and a JSON receiver expect, and an e-mail over STARTTLS with the login", async () => {
        containers.push(ALL_PROBLEMS[1]);
        await round();
        await round();
        const slack = received.find((r) => r.path === "/slack")!.body;
        const discord = received.find((r) => r.path === "/discord")!.body;
        const json = received.find((r) => r.path === "/json")!.body;
        // Slack's incoming webhooks take {"text"}; Discord's {"content"} of at most 2000 characters.
        expect(Object.keys(slack)).toEqual(["text"]);
        expect(slack.text).toMatch(new RegExp(`^\\[vps-stack ${STACK}\\] PROBLEM: container vps-stack-${STACK}-backup is unhealthy: the last good backup is 30h old \\(max 26h\\): "pg_dump" failed \\\\ see the log`));
        expect(slack.text).toContain("\nWhat to do: docker exec vps-stack-it-backup vps-stack-backup check");
        expect(Object.keys(discord)).toEqual(["content"]);
        expect(discord.content.length).toBeLessThanOrEqual(2000);
        expect(discord.content).toBe(slack.text);
        expect(json).toEqual({
            stack: STACK,
            event: "problem",
            kind: "backup",
            key: `unhealthy:vps-stack-${STACK}-backup`,
            summary: expect.stringContaining('"pg_dump" failed'),
            action: expect.stringContaining("vps-stack-backup check"),
            since: expect.any(Number),
            time: expect.any(Number),
            text: slack.text,
        });
        const [mail] = mails();
        expect(mail).toContain(`X-Test-Auth: ${SMTP_USER}\r\n`);
        expect(mail).toContain("X-Test-TLS: yes\r\n");
        expect(mail).toContain("X-Test-Rcpt: ops@example.com cto@example.com\r\n");
        expect(mail).toMatch(/\r\nSubject: \[vps-stack it\] PROBLEM: container vps-stack-it-backup is unhealthy/);
        expect(mail).toContain("To: ops@example.com, cto@example.com\r\n");
    });

    it("reminds while a problem lasts, every REMINDER seconds", async () => {
        containers.push({ name: `vps-stack-${STACK}-redis`, state: "restarting" });
        await round({ REMINDER: "1" });
        await round({ REMINDER: "1" });
        expect(jsonEvents()).toEqual([`problem restarting:vps-stack-${STACK}-redis`]);
        reset();
        await new Promise((r) => setTimeout(r, 1100));
        await round({ REMINDER: "1" });
        expect(jsonEvents()).toEqual([`reminder restarting:vps-stack-${STACK}-redis`]);
        expect(received.find((r) => r.path === "/slack")!.body.text).toMatch(/^\[vps-stack it\] STILL FAILING: .*\nSince \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
        reset();
        await round({ REMINDER: "3600" });
        expect(received).toEqual([]);
    });

    it("tries again next round when no destination took a notification", async () => {
        containers.push({ name: `vps-stack-${STACK}-redis`, state: "restarting" });
        hookStatus = 500;
        const noMail = { SMTP_URL: "" };
        await round(noMail);
        const r = await round(noMail);
        expect(r.stderr).toMatch(/slack webhook: .*500/);
        expect(r.stderr).not.toContain(TOKEN);
        hookStatus = 200;
        await round(noMail);
        expect(jsonEvents()).toEqual([`problem restarting:vps-stack-${STACK}-redis`]);
        reset();
        await round(noMail);
        expect(received).toEqual([]);
    });

    it("test sends to every destination; a refused one fails it without printing its URL", async () => {
        const ok = await watcher("test");
        expect(ok.code).toBe(0);
        expect(ok.stdout).toContain("slack webhook: sent");
        expect(ok.stdout).toContain("e-mail to ops@example.com cto@example.com: sent");
        expect(received.map((r) => `${r.path} ${r.body.event ?? ""}`).sort()).toEqual(["/discord ", "/json test", "/slack "]);
        expect(mails()[0]).toMatch(/Subject: \[vps-stack it\] TEST: /);
        hookStatus = 500;
        const bad = await watcher("test");
        expect(bad.code).not.toBe(0);
        expect(bad.stdout).toMatch(/slack webhook: FAILED/);
        expect(bad.stdout + bad.stderr).not.toContain(TOKEN);
        const noDestination = await watcher("test", { WEBHOOKS: "", SMTP_URL: "" });
        expect(noDestination.code).not.toBe(0);
    });

    it("check: healthy after a round, unhealthy when the last round is older than three intervals", async () => {
        expect((await watcher("check")).code).not.toBe(0);
        await round();
        expect((await watcher("check")).code).toBe(0);
        const old = new Date(Date.now() - 200_000);
        fs.utimesSync(path.join(root, "state", "heartbeat"), old, old);
        const stale = await watcher("check");
        expect(stale.code).not.toBe(0);
        expect(stale.stderr).toMatch(/stuck/);
    });

    it("reports a Docker API that does not answer, as a problem of its own", async () => {
        await round({ DOCKER_SOCKET: path.join(root, "no.sock") });
        await round({ DOCKER_SOCKET: path.join(root, "no.sock") });
        expect(jsonEvents()).toEqual(["problem docker"]);
    });

    it("passes shellcheck and busybox's syntax check", async () => {
        for (const [cmd, args] of [
            [tool("shellcheck", "shellcheck"), ["-s", "sh", SCRIPT]],
            [tool("busybox", "busybox"), ["sh", "-n", SCRIPT]],
        ] as const) {
            const r = await shAsync(cmd, [...args]);
            expect({ cmd, code: r.code, out: r.stdout + r.stderr }).toEqual({ cmd, code: 0, out: "" });
        }
    });
});
