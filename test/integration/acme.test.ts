// tls.mode "acme", for real: Debian's pebble (Let's Encrypt's ACME test server) and its fake DNS, Debian's
// certbot driven by vps-stack-acme.sh, and a real nginx with the rendered proxy config answering the
// HTTP-01 challenge. Proves the first-run bootstrap (nginx starts on the placeholder), issuance over
// HTTP-01, the single chain+key file nginx serves, renewal picked up by the reload watcher, a failed
// challenge that leaves the served certificate alone, and a new set of names replacing the old lineage.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import * as tls from "tls";
import { acmeCertName } from "../../plan/tls";
import { certificateWatcher } from "../../render/acme";
import { NginxSite, renderNginxConf } from "../../render/nginx";
import { childrenOf, freePort, makeCa, sh, shAsync, tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-acme.sh");
const dir = tempDir("acme");
// nginx's workers (not root) read the challenge answers under it, as they do under /var/www/acme.
fs.chmodSync(dir, 0o755);
const f = (...p: string[]) => path.join(dir, ...p);
const DOMAINS = ["app.acme.test", "www.acme.test"];
const procs: ChildProcess[] = [];

let httpPort = 0;
let httpsPort = 0;
let pebbleUrl = "";
let pebbleRoot = "";
let nginxArgs: string[] = [];
let upstream: http.Server | undefined;

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout!.on("data", (d) => (out += d));
    p.stderr!.on("data", (d) => (out += d));
    (p as ChildProcess & { output: () => string }).output = () => out;
    procs.push(p);
    return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await fn();
        if (v !== undefined && v !== false) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(200);
    }
}

/** The script with the test's directories; every command leaves the event loop free (nginx's upstream lives here). */
function acme(args: string[], env: NodeJS.ProcessEnv = {}) {
    return shAsync("sh", [SCRIPT, ...args], { env: { ...process.env, ...scriptEnv(), ...env } });
}

function scriptEnv(domains = DOMAINS): NodeJS.ProcessEnv {
    return {
        ACME_DOMAINS: domains.join(" "),
        ACME_EMAIL: "admin@acme.test",
        ACME_SERVER: pebbleUrl,
        ACME_CERT_NAME: acmeCertName(pebbleUrl, domains),
        ACME_CONFIG_DIR: f("letsencrypt"),
        ACME_WORK_DIR: f("work"),
        ACME_LOGS_DIR: f("logs"),
        ACME_WEBROOT: f("webroot"),
        ACME_PLACEHOLDER: f("placeholder.pem"),
        REQUESTS_CA_BUNDLE: f("ca.crt"),
    };
}

const served = () => f("letsencrypt", "vps-stack", "tls.pem");
const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** The certificate nginx presents for a name (not verified: the placeholder is self-signed). */
function peerCert(host: string): Promise<tls.PeerCertificate> {
    return new Promise((resolve, reject) => {
        const s = tls.connect({ host: "127.0.0.1", port: httpsPort, servername: host, rejectUnauthorized: false }, () => {
            const c = s.getPeerCertificate();
            s.end();
            resolve(c);
        });
        s.on("error", reject);
    });
}

const reloadNginx = () => shAsync(tool("nginx", "nginx"), [...nginxArgs, "-s", "reload"]);

beforeAll(async () => {
    httpPort = await freePort();
    httpsPort = await freePort();
    const [pebblePort, pebbleMgmt, dnsPort, challMgmt, tlsPort, upPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);

    // Pebble's own HTTPS listener gets a certificate from a test CA that certbot is told to trust.
    makeCa(dir, ["localhost"]);
    fs.writeFileSync(
        f("pebble.json"),
        JSON.stringify({
            pebble: {
                listenAddress: `127.0.0.1:${pebblePort}`,
                managementListenAddress: `127.0.0.1:${pebbleMgmt}`,
                certificate: f("server.crt"),
                privateKey: f("server.key"),
                // Where it connects to validate HTTP-01: the proxy's port 80.
                httpPort,
                tlsPort,
                ocspResponderURL: "",
                externalAccountBindingRequired: false,
            },
        }),
    );
    // Every name resolves to 127.0.0.1 through pebble's fake DNS.
    start(tool("pebble-challtestsrv", "pebble"), ["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", `127.0.0.1:${dnsPort}`, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", `127.0.0.1:${challMgmt}`]);
    start(tool("pebble", "pebble"), ["-config", f("pebble.json"), "-dnsserver", `127.0.0.1:${dnsPort}`], { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" });
    pebbleUrl = `https://localhost:${pebblePort}/dir`;
    const curl = tool("curl", "curl");
    await until("pebble", async () => (await shAsync(curl, ["-sf", "--cacert", f("ca.crt"), pebbleUrl])).code === 0 || undefined);

    // The placeholder, as the program makes it: a self-signed chain+key in one file.
    const openssl = tool("openssl", "openssl");
    sh(openssl, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f("ph.key"), "-out", f("ph.crt"), "-days", "90", "-subj", "/O=vps-stack placeholder (not issued yet)/CN=app.acme.test"]);
    fs.writeFileSync(f("placeholder.pem"), fs.readFileSync(f("ph.crt"), "utf8") + fs.readFileSync(f("ph.key"), "utf8"));

    upstream = http.createServer((_req, res) => res.end("hello from the app\n"));
    await new Promise<void>((r) => upstream!.listen(upPort, "127.0.0.1", r));
    const site: NginxSite = {
        apps: [{ name: "app", servers: [`127.0.0.1:${upPort}`], hosts: DOMAINS, paths: ["/"], healthPath: "/" }],
        httpsPort,
        listen: { http: httpPort, https: httpsPort },
        clientMaxBodySize: "1m",
        rateLimit: { enabled: false, rate: "10r/s", burst: 20 },
        timeouts: { connect: "5s", send: "10s", read: "10s" },
        hsts: { maxAge: 31536000, includeSubDomains: false, preload: false },
        keepalive: 0,
        certificatePath: served(),
        keyPath: served(),
        acmeWebroot: f("webroot"),
        runtime: { pid: f("nginx.pid"), errorLog: f("error.log"), accessLog: f("access.log") },
    };
    fs.writeFileSync(f("nginx.conf"), renderNginxConf(site));
    nginxArgs = ["-p", dir, "-c", f("nginx.conf"), "-e", "stderr"];
}, 60000);

afterAll(async () => {
    // nginx's workers hold the log pipe too: a graceful quit takes them down with the master.
    if (fs.existsSync(f("nginx.pid"))) await shAsync(tool("nginx", "nginx"), [...nginxArgs, "-s", "quit"]);
    await sleep(500);
    const running = procs.filter((p) => p.exitCode === null && p.signalCode === null);
    for (const p of running) p.kill("SIGKILL");
    await Promise.all(running.map((p) => new Promise((r) => p.once("exit", r))));
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
});

describe("tls.mode acme against a local ACME server (pebble), certbot and a real nginx", () => {
    let issuedSerial = "";

    it("the healthcheck fails while nothing is served", async () => {
        const r = await acme(["check"]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("nothing is served");
    });

    it("bootstrap: the daemon serves the placeholder at once, so nginx can start before any certificate exists", async () => {
        const daemon = start("sh", [SCRIPT, "daemon"], { ...scriptEnv(), ACME_RENEW_INTERVAL: "3600" });
        await until("the placeholder", () => fs.existsSync(served()) || undefined);
        expect(fs.readFileSync(served(), "utf8")).toBe(fs.readFileSync(f("placeholder.pem"), "utf8"));
        expect(fs.statSync(served()).mode & 0o777).toBe(0o600);
        expect((await acme(["check"])).code).toBe(0);

        const t = sh(tool("nginx", "nginx"), [...nginxArgs, "-t"]);
        expect(t.stderr).toContain("test is successful");
        start(tool("nginx", "nginx"), [...nginxArgs, "-g", "daemon off;"]);
        const cert = await until("nginx on the placeholder", () => peerCert("app.acme.test").catch(() => undefined));
        expect(cert.subject.O).toBe("vps-stack placeholder (not issued yet)");

        // docker stop: the daemon answers TERM at once instead of finishing its sleep.
        daemon.kill("SIGTERM");
        await until("the daemon to stop", () => (daemon.exitCode !== null ? true : undefined), 5000);
        expect(daemon.exitCode).toBe(0);
    });

    it("port 80 serves the challenge directory for any name, without the HTTPS redirect", async () => {
        fs.mkdirSync(f("webroot", ".well-known", "acme-challenge"), { recursive: true });
        fs.writeFileSync(f("webroot", ".well-known", "acme-challenge", "probe"), "token.thumbprint");
        const curl = tool("curl", "curl");
        const get = (p: string, host = "app.acme.test") => shAsync(curl, ["-s", "-o", "-", "-w", "\n%{http_code}", "-H", `host: ${host}`, `http://127.0.0.1:${httpPort}${p}`]);
        expect((await get("/.well-known/acme-challenge/probe")).stdout).toBe("token.thumbprint\n200");
        expect((await get("/.well-known/acme-challenge/probe", "unknown.example")).stdout).toBe("token.thumbprint\n200");
        expect((await get("/.well-known/acme-challenge/missing")).stdout).toMatch(/\n404$/);
        expect((await get("/.well-known/acme-challenge/")).stdout).toMatch(/\n(403|404)$/);
        expect((await get("/anything")).stdout).toMatch(/\n301$/);
    });

    it("issue: certbot proves the names over HTTP-01 through nginx, and the chain and key are served as one file", async () => {
        const r = await acme(["issue"]);
        expect(r.code).toBe(0);
        const pem = fs.readFileSync(served(), "utf8");
        expect(pem.match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThanOrEqual(2); // leaf + intermediate
        expect(pem).toMatch(/-----END CERTIFICATE-----\n-----BEGIN (EC )?PRIVATE KEY-----/);
        expect(fs.statSync(served()).mode & 0o777).toBe(0o600);
        expect(fs.existsSync(f("letsencrypt", "vps-stack", "placeholder"))).toBe(false);
        expect(r.stderr).toContain(`installed ${acmeCertName(pebbleUrl, DOMAINS)}`);

        // What `pulumi up` does next: nginx reloads and presents the issued certificate for every name.
        expect((await reloadNginx()).code).toBe(0);
        const cert = await until("the issued certificate", async () => {
            const c = await peerCert("www.acme.test");
            return String(c.issuer.CN).startsWith("Pebble Intermediate") ? c : undefined;
        });
        expect(cert.subjectaltname).toContain("DNS:app.acme.test");
        expect(cert.subjectaltname).toContain("DNS:www.acme.test");
        issuedSerial = cert.serialNumber;

        // A real client trusting the CA's root verifies the whole chain nginx sends.
        const mgmt = JSON.parse(fs.readFileSync(f("pebble.json"), "utf8")).pebble.managementListenAddress;
        const root = await shAsync(tool("curl", "curl"), ["-sf", "--cacert", f("ca.crt"), `https://localhost:${mgmt.split(":")[1]}/roots/0`]);
        pebbleRoot = f("pebble-root.pem");
        fs.writeFileSync(pebbleRoot, root.stdout);
        // Retried: until every worker of the old configuration has stopped accepting, a new
        // connection can still meet the placeholder certificate.
        const get = () => shAsync(tool("curl", "curl"), ["-sS", "--cacert", pebbleRoot, "--resolve", `app.acme.test:${httpsPort}:127.0.0.1`, `https://app.acme.test:${httpsPort}/`]);
        const ok = await until("a verified request", async () => {
            const r = await get();
            return r.stderr === "" ? r : undefined;
        }).catch(async () => get());
        expect(ok.stderr).toBe("");
        expect(ok.stdout).toBe("hello from the app\n");
        expect((await acme(["check"])).code).toBe(0);
    }, 60000);

    it("issue again (every `pulumi up` that replaces the container) keeps the valid certificate: no new request", async () => {
        const before = sha(served());
        const r = await acme(["issue"]);
        expect(r.code).toBe(0);
        expect(r.stdout + r.stderr).toMatch(/not yet due for renewal/i);
        expect(sha(served())).toBe(before);
        expect(fs.readdirSync(f("letsencrypt", "archive", acmeCertName(pebbleUrl, DOMAINS))).filter((n) => n.startsWith("cert"))).toEqual(["cert1.pem"]);
    }, 60000);

    it("renewal: a renewed certificate is installed and the watcher reloads nginx after nginx -t", async () => {
        const watcher = start("sh", ["-c", certificateWatcher(served(), { nginx: `${tool("nginx", "nginx")} ${nginxArgs.join(" ")}`, interval: 1 })]);
        // The watcher reloads when the file differs from what it read at start, so the renewal must come
        // after that read; its loop's first `sleep` shows the read is done (a fixed wait may not be enough).
        await until("the watcher to read the current certificate", () => childrenOf(watcher.pid!).includes("sleep") || undefined);
        const before = sha(served());
        const r = await acme(["renew", "--force-renewal", "--no-random-sleep-on-renew"]);
        expect(r.code).toBe(0);
        expect(sha(served())).not.toBe(before);
        const cert = await until("nginx to present the renewed certificate", async () => {
            const c = await peerCert("app.acme.test");
            return c.serialNumber !== issuedSerial ? c : undefined;
        });
        expect(cert.issuer.CN).toMatch(/^Pebble Intermediate/);
        expect((watcher as ChildProcess & { output: () => string }).output()).toContain("certificate changed, nginx reloaded");
        watcher.kill("SIGTERM");
        issuedSerial = cert.serialNumber;
    }, 60000);

    it("a challenge that fails (port 80 does not answer it) fails with the reason, and the served certificate stays", async () => {
        const names = [...DOMAINS, "new.acme.test"];
        const before = sha(served());
        const r = await acme(["issue"], { ...scriptEnv(names), ACME_WEBROOT: f("elsewhere") });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("did not issue");
        expect(r.stderr).toContain("port 80 reaches the proxy");
        expect(sha(served())).toBe(before);
        expect((await peerCert("app.acme.test")).serialNumber).toBe(issuedSerial);
    }, 60000);

    it("a new set of names gets its own certificate, and the stack's previous one is deleted (not renewed for nothing)", async () => {
        const names = [...DOMAINS, "new.acme.test"];
        const r = await acme(["issue"], scriptEnv(names));
        expect(r.code).toBe(0);
        expect(fs.existsSync(f("letsencrypt", "live", acmeCertName(pebbleUrl, names)))).toBe(true);
        expect(fs.existsSync(f("letsencrypt", "live", acmeCertName(pebbleUrl, DOMAINS)))).toBe(false);
        expect(r.stderr).toContain(`deleted the stack's previous certificate ${acmeCertName(pebbleUrl, DOMAINS)}`);
        await reloadNginx();
        const cert = await until("the new certificate", async () => {
            const c = await peerCert("app.acme.test");
            return c.subjectaltname?.includes("DNS:new.acme.test") ? c : undefined;
        });
        expect(cert.issuer.CN).toMatch(/^Pebble Intermediate/);
    }, 60000);

    it("the healthcheck fails on a certificate close to expiry, and on a placeholder left too long", async () => {
        const soon = await acme(["check"], { ACME_MIN_DAYS: "100000" });
        expect(soon.code).toBe(1);
        expect(soon.stderr).toMatch(/expires in \d+h; renewal is failing/);

        const other = f("other-served", "tls.pem");
        const env = { ACME_SERVED: other, ACME_PLACEHOLDER_GRACE: "0" };
        const boot = start("sh", [SCRIPT, "daemon"], { ...scriptEnv(), ...env, ACME_RENEW_INTERVAL: "3600" });
        await until("the placeholder", () => fs.existsSync(other) || undefined);
        boot.kill("SIGTERM");
        const stale = await acme(["check"], env);
        expect(stale.code).toBe(1);
        expect(stale.stderr).toContain("still serving the self-signed placeholder");
    }, 60000);

    it("status says what is served and lists certbot's certificates", async () => {
        const r = await acme(["status"], scriptEnv([...DOMAINS, "new.acme.test"]));
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/served: vps-stack-[0-9a-f]{10} for app\.acme\.test www\.acme\.test new\.acme\.test, expires \d{4}-\d\d-\d\d/);
        expect(r.stdout).toContain("Certificate Name: vps-stack-");
    }, 60000);
});

describe("vps-stack-acme.sh", () => {
    it.each([
        ["shellcheck", ["-s", "sh", SCRIPT]],
        ["busybox", ["sh", "-n", SCRIPT]], // the certbot image is Alpine: busybox sh
        ["sh", ["-n", SCRIPT]],
    ])("passes %s", (cmd, args) => {
        const r = sh(tool(cmd, cmd === "sh" ? "dash" : cmd), args as string[]);
        expect(r.stdout + r.stderr).toBe("");
        expect(r.code).toBe(0);
    });

    it("refuses an unknown command with its usage", async () => {
        const r = await acme(["frobnicate"]);
        expect(r.code).toBe(64);
        expect(r.stderr).toContain("usage: vps-stack-acme.sh daemon|issue|renew");
    });
});
