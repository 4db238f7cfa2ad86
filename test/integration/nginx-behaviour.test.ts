// The rendered proxy config, served by a real nginx (Debian's) on free loopback ports with a test CA, in
// front of small upstream HTTP servers written here: redirects, headers, host and path routing, /health,
// body limits, rate limits, forwarded headers; and the static-site config serving a built SPA unpacked
// from a real tar archive.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import * as zlib from "zlib";
import { NginxSite, renderNginxConf } from "../../render/nginx";
import { renderStaticSiteConf } from "../../render/static-site";
import { readSite } from "../../config/static-files";
import { freePort, listening, makeCa, sh, shAsync, tempDir, tool } from "./tools";

interface Upstream {
    name: string;
    port: number;
    server: http.Server;
}

async function upstream(name: string): Promise<Upstream> {
    const port = await freePort();
    const server = http.createServer((req, res) => {
        let size = 0;
        req.on("data", (c) => (size += c.length));
        req.on("end", () => {
            res.setHeader("content-type", "application/json");
            res.end(JSON.stringify({ upstream: name, path: req.url, headers: req.headers, bodyBytes: size }));
        });
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    return { name, port, server };
}

async function startNginx(dir: string, conf: string, port: number): Promise<ChildProcess> {
    const file = path.join(dir, "nginx.conf");
    fs.writeFileSync(file, conf);
    fs.mkdirSync(path.join(dir, "logs"), { recursive: true });
    const test = sh(tool("nginx", "nginx"), ["-t", "-p", dir, "-c", file, "-e", "stderr"]);
    if (test.code !== 0) throw new Error(`nginx -t failed:\n${test.stderr}`);
    const proc = spawn(tool("nginx", "nginx"), ["-p", dir, "-c", file, "-e", "stderr", "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<never>((_, reject) => proc.once("exit", () => reject(new Error(`nginx exited: ${stderr}`))));
    await Promise.race([listening(port), exited]);
    return proc;
}

interface Reply {
    status: number;
    headers: Record<string, string>;
    body: string;
}

const headerDir = tempDir("curl-headers");
let headerSeq = 0;

// The upstream servers live in this process: every command here must leave the event loop free.
const run = (cmd: string, args: string[], input?: string) => shAsync(cmd, args, { input });

/** curl, so TLS, SNI and HTTP/2 are a real client's. */
async function curl(url: string, opts: { host?: string; port?: number; ca?: string; data?: string; headers?: string[]; compressed?: boolean } = {}): Promise<Reply> {
    // Headers to a file: curl crashes writing them to /dev/stderr when that is a pipe.
    const headerFile = path.join(headerDir, `h${headerSeq++}`);
    const args = ["-sS", "-o", "-", "-D", headerFile, "--max-time", "10"];
    if (opts.ca) args.push("--cacert", opts.ca);
    if (opts.host && opts.port) args.push("--resolve", `${opts.host}:${opts.port}:127.0.0.1`);
    if (opts.data !== undefined) args.push("--data-binary", "@-", "-H", "content-type: application/octet-stream");
    for (const h of opts.headers ?? []) args.push("-H", h);
    if (opts.compressed) args.push("-H", "accept-encoding: gzip");
    const r = await run(tool("curl", "curl"), [...args, url], opts.data);
    const raw = fs.existsSync(headerFile) ? fs.readFileSync(headerFile, "utf8") : "";
    const headerBlocks = raw.split(/\r?\n\r?\n/).filter((b) => /^HTTP\//.test(b));
    const last = headerBlocks[headerBlocks.length - 1] ?? "";
    const [statusLine, ...lines] = last.split(/\r?\n/);
    const headers: Record<string, string> = {};
    for (const l of lines) {
        const i = l.indexOf(":");
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    return { status: Number(statusLine?.split(" ")[1] ?? 0), headers, body: r.stdout };
}

describe("the proxy config, served by a real nginx", () => {
    const dir = tempDir("nginx-live");
    let nginx: ChildProcess | undefined;
    const ups: Upstream[] = [];
    let httpPort = 0;
    let httpsPort = 0;
    let ca = "";
    const https = (host: string, p: string, o: Parameters<typeof curl>[1] = {}) => curl(`https://${host}:${httpsPort}${p}`, { host, port: httpsPort, ca, ...o });

    beforeAll(async () => {
        const [api, web, admin] = [await upstream("api"), await upstream("web"), await upstream("admin")];
        ups.push(api, web, admin);
        httpPort = await freePort();
        httpsPort = await freePort();
        const certs = makeCa(dir, ["app.example.test", "admin.example.test"]);
        ca = certs.caCert;
        const site: NginxSite = {
            apps: [
                // by path: /api → api, / → web on one host; by host: a second host name for another app.
                { name: "api", servers: [`127.0.0.1:${api.port}`], hosts: ["app.example.test"], paths: ["/api"], healthPath: "/api/health", clientMaxBodySize: "1k", rateLimit: { rate: "1r/s", burst: 2 } },
                { name: "web", servers: [`127.0.0.1:${web.port}`], hosts: ["app.example.test"], paths: ["/"], healthPath: "/healthz", rateLimit: { enabled: false } },
                { name: "admin", servers: [`127.0.0.1:${admin.port}`], hosts: ["admin.example.test"], paths: ["/"], healthPath: "/health", headers: { "X-Frame-Options": "DENY" } },
            ],
            httpsPort,
            listen: { http: httpPort, https: httpsPort },
            clientMaxBodySize: "100M",
            rateLimit: { enabled: true, rate: "50r/s", burst: 50 },
            timeouts: { connect: "5s", send: "30s", read: "30s" },
            hsts: { maxAge: 31536000, includeSubDomains: true, preload: false },
            keepalive: 8,
            certificatePath: certs.cert,
            keyPath: certs.key,
            runtime: { pid: path.join(dir, "nginx.pid"), errorLog: path.join(dir, "error.log"), accessLog: path.join(dir, "access.log") },
        };
        nginx = await startNginx(dir, renderNginxConf(site), httpsPort);
    });

    afterAll(() => {
        nginx?.kill("SIGQUIT");
        for (const u of ups) u.server.close();
    });

    it("redirects plain HTTP to HTTPS with 301, keeping host, port and URI", async () => {
        const r = await curl(`http://127.0.0.1:${httpPort}/api/items?page=2`, { headers: ["Host: app.example.test"] });
        expect(r.status).toBe(301);
        expect(r.headers.location).toBe(`https://app.example.test:${httpsPort}/api/items?page=2`);
    });

    it("serves HTTP/2 over TLS with HSTS and the security headers", async () => {
        const r = await https("app.example.test", "/");
        expect(r.status).toBe(200);
        expect(r.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
        expect(r.headers["x-content-type-options"]).toBe("nosniff");
        expect(r.headers["x-frame-options"]).toBe("SAMEORIGIN");
        expect(r.headers["referrer-policy"]).toBe("strict-origin-when-cross-origin");
        const v = await run(tool("curl", "curl"), ["-sS", "-o", "/dev/null", "-w", "%{http_version}", "--cacert", ca, "--resolve", `app.example.test:${httpsPort}:127.0.0.1`, `https://app.example.test:${httpsPort}/`]);
        expect(v.stdout).toBe("2");
    });

    it("refuses TLS 1.1", async () => {
        const r = await run(tool("curl", "curl"), ["-sS", "--tlsv1.1", "--tls-max", "1.1", "--cacert", ca, "--resolve", `app.example.test:${httpsPort}:127.0.0.1`, `https://app.example.test:${httpsPort}/`]);
        expect(r.code).not.toBe(0);
    });

    it("routes by path: /api and /api/… to api, everything else (even /apix) to web", async () => {
        expect(JSON.parse((await https("app.example.test", "/api")).body).upstream).toBe("api");
        expect(JSON.parse((await https("app.example.test", "/api/orders/7")).body)).toMatchObject({ upstream: "api", path: "/api/orders/7" });
        expect(JSON.parse((await https("app.example.test", "/apix")).body).upstream).toBe("web");
        expect(JSON.parse((await https("app.example.test", "/dashboard")).body).upstream).toBe("web");
    });

    it("routes by host name, each host with its own headers", async () => {
        const r = await https("admin.example.test", "/settings");
        expect(JSON.parse(r.body).upstream).toBe("admin");
        expect(r.headers["x-frame-options"]).toBe("DENY");
    });

    it("passes /health through to the host's health app, unrate-limited", async () => {
        const r = await https("app.example.test", "/health");
        expect(JSON.parse(r.body)).toMatchObject({ upstream: "web", path: "/healthz" });
        expect(JSON.parse((await https("admin.example.test", "/health")).body)).toMatchObject({ upstream: "admin", path: "/health" });
        expect(r.headers["strict-transport-security"]).toBeDefined();
    });

    it("forwards Host, X-Real-IP, X-Forwarded-For and X-Forwarded-Proto", async () => {
        const h = JSON.parse((await https("app.example.test", "/x")).body).headers;
        expect(h.host).toBe("app.example.test");
        expect(h["x-real-ip"]).toBe("127.0.0.1");
        expect(h["x-forwarded-for"]).toBe("127.0.0.1");
        expect(h["x-forwarded-proto"]).toBe("https");
    });

    it("answers 413 to a body over the app's limit, and lets it through where the limit is higher", async () => {
        const big = "x".repeat(4096);
        expect((await https("app.example.test", "/api/upload", { data: big })).status).toBe(413);
        const web = await https("app.example.test", "/upload", { data: big });
        expect(web.status).toBe(200);
        expect(JSON.parse(web.body).bodyBytes).toBe(4096);
    });

    it("answers 429 to a burst over the app's rate limit, and not on another app", async () => {
        // Earlier tests used the api's allowance; at 1r/s a burst of 2 drains in 3 seconds.
        await new Promise((r) => setTimeout(r, 3100));
        const statuses: number[] = [];
        for (let i = 0; i < 8; i++) statuses.push((await https("app.example.test", "/api/ping")).status);
        expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
        expect(statuses.slice(0, 3)).toEqual([200, 200, 200]); // 1 + burst of 2
        const web: number[] = [];
        for (let i = 0; i < 8; i++) web.push((await https("app.example.test", "/ping")).status);
        expect(web.every((s) => s === 200)).toBe(true);
    });

    it("refuses a TLS handshake for an unknown host name", async () => {
        const r = await run(tool("curl", "curl"), ["-sS", "-k", "--resolve", `unknown.example.test:${httpsPort}:127.0.0.1`, `https://unknown.example.test:${httpsPort}/`]);
        expect(r.code).not.toBe(0);
    });
});

describe("the static-site config, served by a real nginx", () => {
    const dir = tempDir("nginx-static");
    const root = path.join(dir, "site");
    let nginx: ChildProcess | undefined;
    let port = 0;
    const get = (p: string, compressed = false) => curl(`http://127.0.0.1:${port}${p}`, { compressed });
    const bundle = `console.log(${JSON.stringify("x".repeat(4000))});\n`;

    beforeAll(async () => {
        // nginx's workers drop root: the site must be readable by them, as uploads (0444) are.
        fs.chmodSync(dir, 0o755);
        // The front end's build output, packed by a real tar as a CI job would (static.archive), then
        // unpacked by the program's reader and written as the container's uploads are (0444).
        const dist = path.join(dir, "dist");
        fs.mkdirSync(path.join(dist, "assets"), { recursive: true });
        fs.writeFileSync(path.join(dist, "index.html"), '<!doctype html><script src="/assets/app-3f9a1c2b.js"></script>');
        fs.writeFileSync(path.join(dist, "assets", "app-3f9a1c2b.js"), bundle);
        fs.writeFileSync(path.join(dist, "robots.txt"), "User-agent: *\n");
        const packed = sh(tool("tar", "tar"), ["-czf", path.join(dir, "dist.tgz"), "-C", dir, "dist"]);
        if (packed.code !== 0) throw new Error(packed.stderr);
        for (const f of readSite({ archive: "dist.tgz" }, dir)) {
            fs.mkdirSync(path.dirname(path.join(root, f.path)), { recursive: true });
            fs.writeFileSync(path.join(root, f.path), Buffer.from(f.contentBase64, "base64"), { mode: 0o444 });
        }
        port = await freePort();
        const server = renderStaticSiteConf({ port, root });
        const conf = [
            `pid ${path.join(dir, "nginx.pid")};`,
            `error_log ${path.join(dir, "error.log")} warn;`,
            "events {}",
            "http {",
            "    include /etc/nginx/mime.types;",
            `    access_log ${path.join(dir, "access.log")};`,
            server,
            "}",
        ].join("\n");
        nginx = await startNginx(dir, conf, port);
    });

    afterAll(() => nginx?.kill("SIGQUIT"));

    it("serves index.html for client-side routes, never cached", async () => {
        for (const p of ["/", "/orders/42", "/settings/profile"]) {
            const r = await get(p);
            expect([p, r.status]).toEqual([p, 200]);
            expect(r.body).toContain("<!doctype html>");
            expect(r.headers["cache-control"]).toBe("no-cache");
        }
        expect((await get("/index.html")).headers["cache-control"]).toBe("no-cache");
    });

    it("caches hashed assets for a year, immutable", async () => {
        const r = await get("/assets/app-3f9a1c2b.js");
        expect(r.status).toBe(200);
        expect(r.body).toBe(bundle);
        expect(r.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    });

    it("answers 404 for a missing asset instead of index.html", async () => {
        expect((await get("/assets/app-deadbeef.js")).status).toBe(404);
    });

    it("serves other files as they are", async () => {
        const r = await get("/robots.txt");
        expect(r.status).toBe(200);
        expect(r.body).toBe("User-agent: *\n");
    });

    it("compresses with gzip when asked", () => {
        const r = sh(tool("curl", "curl"), ["-sS", "-H", "accept-encoding: gzip", "-D", path.join(dir, "gz.headers"), "-o", path.join(dir, "out.gz"), `http://127.0.0.1:${port}/assets/app-3f9a1c2b.js`]);
        expect(r.code).toBe(0);
        expect(fs.readFileSync(path.join(dir, "gz.headers"), "utf8").toLowerCase()).toContain("content-encoding: gzip");
        expect(zlib.gunzipSync(fs.readFileSync(path.join(dir, "out.gz"))).toString()).toBe(bundle);
    });
});
