// nginx.mode "host": the site script against a real nginx (Debian's) running from a temporary prefix.
// A good site is installed and serves; a broken one is refused with nginx's message and the previous
// one keeps serving; removing the site takes it out; certificates land in a 0700 directory as 0600.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { hostSiteScript, HOST_SITE_SCRIPT } from "../../render/host-nginx";
import { renderNginxSiteFile } from "../../render/nginx";
import { eventually, freePort, makeCa, shAsync, tempDir, tool } from "./tools";

const dir = tempDir("host-nginx");
fs.chmodSync(dir, 0o755);
const nginxDir = path.join(dir, "etc-nginx");
const tlsRoot = path.join(dir, "etc-vps-stack");
const NAME = "vps-stack-hosttest";
let nginx: ChildProcess | undefined;
let upstream: http.Server | undefined;
let httpsPort = 0;
let httpPort = 0;
let upstreamPort = 0;
let ca = "";

function env() {
    const conf = path.join(nginxDir, "nginx.conf");
    return {
        ...process.env,
        NGINX_DIR: nginxDir,
        VPS_TLS_DIR: tlsRoot,
        CRON_DIR: path.join(dir, "cron.d"),
        NGINX_TEST: `${tool("nginx", "nginx")} -t -q -p ${dir} -c ${conf} -e stderr`,
        NGINX_RELOAD: `${tool("nginx", "nginx")} -s reload -p ${dir} -c ${conf} -e stderr`,
    };
}

async function runScript(body: string): Promise<{ code: number; out: string }> {
    const r = await shAsync("sh", ["-s"], { input: body, env: env() });
    return { code: r.code, out: r.stdout + r.stderr };
}

async function curlHealth(): Promise<string> {
    const r = await shAsync(tool("curl", "curl"), ["-sS", "--max-time", "5", "--cacert", ca, "--resolve", `site.example.test:${httpsPort}:127.0.0.1`, `https://site.example.test:${httpsPort}/health`]);
    return r.code === 0 ? r.stdout : `error: ${r.stderr}`;
}

function siteFile(tag: string, acme?: { served: string; webroot: string }): string {
    return renderNginxSiteFile({
        apps: [{ name: "api", servers: [`127.0.0.1:${upstreamPort}`], hosts: ["site.example.test"], paths: ["/"], healthPath: `/health-${tag}` }],
        httpsPort,
        listen: { http: httpPort, https: httpsPort },
        clientMaxBodySize: "10M",
        rateLimit: { enabled: true, rate: "100r/s", burst: 100 },
        timeouts: { connect: "5s", send: "10s", read: "10s" },
        hsts: { maxAge: 600, includeSubDomains: false, preload: false },
        keepalive: 4,
        certificatePath: acme?.served ?? path.join(tlsRoot, NAME, "fullchain.pem"),
        keyPath: acme?.served ?? path.join(tlsRoot, NAME, "privkey.pem"),
        namespace: "vps_stack_hosttest_",
        acmeWebroot: acme?.webroot,
    });
}

let cert = "";
let key = "";

beforeAll(async () => {
    upstreamPort = await freePort();
    upstream = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
    await new Promise<void>((r) => upstream!.listen(upstreamPort, "127.0.0.1", r));
    httpsPort = await freePort();
    httpPort = await freePort();
    const certs = makeCa(dir, ["site.example.test"]);
    ca = certs.caCert;
    cert = fs.readFileSync(certs.cert, "utf8");
    key = fs.readFileSync(certs.key, "utf8");
    fs.mkdirSync(path.join(nginxDir, "sites-enabled"), { recursive: true });
    fs.mkdirSync(path.join(dir, "logs"), { recursive: true });
    // Like Debian's nginx.conf: sites are included in http{} beside the host's own settings.
    fs.writeFileSync(
        path.join(nginxDir, "nginx.conf"),
        [
            `pid ${dir}/nginx.pid;`,
            "events {}",
            "http {",
            "    include /etc/nginx/mime.types;",
            `    access_log ${dir}/access.log;`,
            "    gzip on;",
            "    server_tokens off;",
            `    include ${nginxDir}/sites-enabled/*.conf;`,
            "}",
        ].join("\n"),
    );
    nginx = spawn(tool("nginx", "nginx"), ["-p", dir, "-c", path.join(nginxDir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;"], { stdio: "ignore" });
    // No site yet, so nothing listens: wait for the master to write its pid file instead.
    await eventually(async () => fs.existsSync(path.join(dir, "nginx.pid")), (v) => v);
});

afterAll(() => {
    nginx?.kill("SIGQUIT");
    upstream?.close();
});

it("installs a site that passes nginx -t and reloads nginx", async () => {
    const r = await runScript(hostSiteScript("install", NAME, { site: siteFile("one"), cert, key }));
    expect(r.out).toContain(`site ${NAME} installed`);
    expect(r.code).toBe(0);
    // The reload is asynchronous: the new site serves once nginx's new workers are up.
    expect(await eventually(curlHealth, (b) => b === "upstream saw /health-one")).toBe("upstream saw /health-one");
    expect(fs.readlinkSync(path.join(nginxDir, "sites-enabled", `${NAME}.conf`))).toBe(path.join(nginxDir, "sites-available", `${NAME}.conf`));
});

it("keeps the certificates root-only", () => {
    const tls = path.join(tlsRoot, NAME);
    expect(fs.statSync(tls).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(tls, "privkey.pem")).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(tls, "fullchain.pem")).mode & 0o777).toBe(0o600);
});

it("refuses a broken site with nginx's message and leaves the previous one serving", async () => {
    const broken = siteFile("two").replace("ssl_session_timeout 1d;", "ssl_session_timeout 1d;\n        no_such_directive on;");
    const r = await runScript(hostSiteScript("install", NAME, { site: broken, cert, key }));
    expect(r.code).toBe(1);
    expect(r.out).toContain('unknown directive "no_such_directive"');
    expect(r.out).toContain("the previous configuration is still serving");
    expect(await curlHealth()).toBe("upstream saw /health-one");
    expect(fs.readFileSync(path.join(nginxDir, "sites-available", `${NAME}.conf`), "utf8")).toContain("/health-one");
});

it("replaces a working site with a new working one", async () => {
    const r = await runScript(hostSiteScript("install", NAME, { site: siteFile("three"), cert, key }));
    expect(r.code).toBe(0);
    // The reload is asynchronous: the new site serves once nginx's new workers are up.
    expect(await eventually(curlHealth, (b) => b === "upstream saw /health-three")).toBe("upstream saw /health-three");
});

describe("with tls.mode acme", () => {
    const acmeDir = path.join(dir, "var-lib-acme");
    const served = path.join(acmeDir, "tls.pem");
    const webroot = path.join(acmeDir, "webroot");
    const cronFile = path.join(dir, "cron.d", `${NAME}-tls-reload`);
    const combined = (c: { cert: string; key: string }) => fs.readFileSync(c.cert, "utf8") + fs.readFileSync(c.key, "utf8");

    it("reads the ACME container's single file, serves the challenge directory, installs the reload cron entry", async () => {
        fs.mkdirSync(path.join(webroot, ".well-known", "acme-challenge"), { recursive: true });
        fs.chmodSync(acmeDir, 0o755);
        fs.writeFileSync(path.join(webroot, ".well-known", "acme-challenge", "tok"), "tok.thumb");
        fs.writeFileSync(served, combined({ cert: path.join(dir, "server.crt"), key: path.join(dir, "server.key") }), { mode: 0o600 });
        fs.mkdirSync(path.join(dir, "cron.d"), { recursive: true });

        const r = await runScript(hostSiteScript("install", NAME, { site: siteFile("acme", { served, webroot }), watch: served }));
        expect(r.out).toContain(`site ${NAME} installed`);
        expect(r.code).toBe(0);
        // Certificates of the earlier mode are gone; the site serves the ACME file.
        expect(fs.existsSync(path.join(tlsRoot, NAME, "fullchain.pem"))).toBe(false);
        expect(fs.existsSync(path.join(tlsRoot, NAME, "privkey.pem"))).toBe(false);
        // The reload is asynchronous: the new site serves once nginx's new workers are up.
        expect(await eventually(curlHealth, (b) => b === "upstream saw /health-acme")).toBe("upstream saw /health-acme");
        // Plain HTTP has its own listener: a worker of the old configuration can still take a new
        // connection there (and answer the old site's 301) after HTTPS already serves the new one.
        const challenge = async () => (await shAsync(tool("curl", "curl"), ["-s", "-H", "host: site.example.test", `http://127.0.0.1:${httpPort}/.well-known/acme-challenge/tok`])).stdout;
        expect(await eventually(challenge, (b) => b === "tok.thumb")).toBe("tok.thumb");

        const cron = fs.readFileSync(cronFile, "utf8");
        expect(cron).toMatch(new RegExp(`^\\*/5 \\* \\* \\* \\* root .*cksum < ${served}.*nginx -t -q && \\{ systemctl reload nginx`, "m"));
        expect(cron).not.toContain("%");
        const line = cron.split("\n").find((l) => l.startsWith("*/5"))!;
        expect((await shAsync("sh", ["-n", "-c", line.replace(/^(\S+\s+){6}/, "")])).code).toBe(0);
        expect(fs.statSync(cronFile).mode & 0o777).toBe(0o644);
    });

    it("reloads nginx when the file changes (a renewal), and only then", async () => {
        const same = await runScript(hostSiteScript("reload-if-changed", NAME, { watch: served }));
        expect(same).toEqual({ code: 0, out: "" });

        // A renewal: a certificate from another CA, so the client sees the switch.
        const renewedDir = path.join(dir, "renewed");
        fs.mkdirSync(renewedDir);
        const renewed = makeCa(renewedDir, ["site.example.test"]);
        fs.writeFileSync(served + ".tmp", combined(renewed), { mode: 0o600 });
        fs.renameSync(served + ".tmp", served);
        const changed = await runScript(hostSiteScript("reload-if-changed", NAME, { watch: served }));
        expect(changed.out).toContain(`certificate of ${NAME} changed; nginx reloaded`);
        expect(changed.code).toBe(0);
        // Trusting only the renewed certificate's CA: passes once the reload serves the new file.
        ca = renewed.caCert;
        expect(await eventually(curlHealth, (b) => b === "upstream saw /health-acme")).toBe("upstream saw /health-acme");
    });
});

it("removes the site, its link and its certificates", async () => {
    const r = await runScript(hostSiteScript("remove", NAME));
    expect(r.out).toContain(`site ${NAME} removed`);
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(nginxDir, "sites-enabled", `${NAME}.conf`))).toBe(false);
    expect(fs.existsSync(path.join(tlsRoot, NAME))).toBe(false);
    expect(fs.existsSync(path.join(dir, "cron.d", `${NAME}-tls-reload`))).toBe(false);
    expect(await eventually(curlHealth, (b) => b.startsWith("error"))).toMatch(/^error/);
});

it("is clean POSIX sh", () => {
    const r = require("child_process").spawnSync(tool("shellcheck", "shellcheck"), ["-s", "sh", HOST_SITE_SCRIPT], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
});
