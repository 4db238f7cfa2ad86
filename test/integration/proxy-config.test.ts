// The proxy container's config installer (render/scripts/vps-stack-proxy.sh) against a real nginx
// (Debian's), fed exactly as NginxProxy feeds it: the script and one vps_proxy_install call on `sh -s`'s
// stdin. A wrapper named nginx first on PATH adds a temporary prefix and stderr logging; the script is
// unchanged. Checked: a valid config becomes `live` and passes nginx -t there; its relative certificate
// paths resolve inside the version (also when served and reloaded); a config nginx rejects leaves `live`
// alone and no stage behind; only the live version and the one before it are kept.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../config";
import { NGINX_CERT_FILE, NGINX_KEY_FILE, proxyScript } from "../../render/proxy";
import { renderNginxConf } from "../../render/nginx";
import { nginxSite } from "../../plan/proxy";
import { eventually, freePort, makeCa, shAsync, tempDir, tool, TestCa } from "./tools";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";
const root = tempDir("proxy-config");
const wrapperBin = path.join(root, "bin");
const b64 = (v: string) => Buffer.from(v).toString("base64");
const read = (f: string) => fs.readFileSync(f, "utf8");

let caA: TestCa;
let caB: TestCa;
let ports = { http: 0, https: 0 };

beforeAll(async () => {
    fs.mkdirSync(wrapperBin, { recursive: true });
    fs.writeFileSync(path.join(wrapperBin, "nginx"), `#!/bin/sh\nexec ${tool("nginx", "nginx")} -p ${root}/ -e stderr "$@"\n`, { mode: 0o755 });
    fs.mkdirSync(path.join(root, "a"));
    fs.mkdirSync(path.join(root, "b"));
    caA = makeCa(path.join(root, "a"), ["a.example.test"]);
    caB = makeCa(path.join(root, "b"), ["b.example.test"]);
    ports = { http: await freePort(), https: await freePort() };
});

/** The proxy's nginx.conf as the program renders it (relative certificate paths), on local ports. */
function conf(tag: string): string {
    const cfg = loadConfig(
        { host: { address: "203.0.113.10", hostKey: KEY, privateKeyPath: "/dev/null" }, domain: "app.example.com", apps: [{ name: "api", image: "ghcr.io/acme/api:1", port: 3001 }] },
        "preprod",
    );
    const site = nginxSite(cfg, { api: "api-0123456789" });
    return renderNginxConf({
        ...site,
        apps: site.apps.map((a) => ({ ...a, servers: ["127.0.0.1:9"], healthPath: `/health-${tag}` })),
        listen: ports,
        certificatePath: NGINX_CERT_FILE,
        keyPath: NGINX_KEY_FILE,
        runtime: { pid: path.join(root, "nginx.pid"), errorLog: path.join(root, "error.log"), accessLog: path.join(root, "access.log") },
    });
}

/** Runs the installer as NginxProxy's config command does: `sh -s` with the script and the call on stdin. */
async function install(dir: string, nginxConf: string, tls?: TestCa) {
    const call = `vps_proxy_install ${dir} ${b64(nginxConf)}${tls ? ` ${b64(read(tls.cert))} ${b64(read(tls.key))}` : ""}\n`;
    return shAsync("sh", ["-s"], { input: `${proxyScript()}\n${call}`, env: { ...process.env, PATH: `${wrapperBin}:${process.env.PATH}` } });
}

const versions = (dir: string) => fs.readdirSync(path.join(dir, "releases")).sort((a, b) => Number(a) - Number(b));
const nginxT = (confFile: string, cwd = "/") =>
    shAsync("sh", ["-c", 'cd "$1" && exec "$2" -t -p "$3/" -e stderr -c "$4"', "sh", cwd, tool("nginx", "nginx"), root, confFile]);

describe("vps_proxy_install", () => {
    it("installs a valid config as the new live version, which passes nginx -t from anywhere", async () => {
        const dir = tempDir("proxy-vol");
        const r = await install(dir, conf("one"), caA);
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe("vps-stack: proxy configuration 1 installed\n");
        expect(r.code).toBe(0);
        expect(fs.readlinkSync(path.join(dir, "live"))).toBe("releases/1");
        expect(read(path.join(dir, "live", "nginx.conf"))).toBe(conf("one"));
        expect(read(path.join(dir, "live", "nginx.conf"))).toContain("worker_shutdown_timeout 30s;");
        expect(read(path.join(dir, "live", "tls", "server.crt"))).toBe(read(caA.cert));
        expect(fs.statSync(path.join(dir, "live", "tls", "server.key")).mode & 0o777).toBe(0o600);
        // Relative certificate paths resolve against the config's own directory (live → releases/1).
        const t = await nginxT(path.join(dir, "live", "nginx.conf"));
        expect(t.stderr).toContain("test is successful");
        expect(t.code).toBe(0);
    });

    it("resolves tls/server.* inside the version: the live one's files, not another's", async () => {
        const dir = tempDir("proxy-vol");
        expect((await install(dir, conf("one"), caA)).code).toBe(0);
        expect((await install(dir, conf("two"), caB)).code).toBe(0);
        expect(fs.readlinkSync(path.join(dir, "live"))).toBe("releases/2");
        // Break version 1's key: live (2) still tests fine; break 2's and live fails.
        fs.writeFileSync(path.join(dir, "releases", "1", "tls", "server.key"), "garbage");
        expect((await nginxT(path.join(dir, "live", "nginx.conf"))).code).toBe(0);
        fs.writeFileSync(path.join(dir, "releases", "2", "tls", "server.key"), "garbage");
        const t = await nginxT(path.join(dir, "live", "nginx.conf"));
        expect(t.code).not.toBe(0);
        expect(t.stderr).toContain(path.join(dir, "live", "tls", "server.key"));
    });

    it("refuses a config nginx rejects: exit 1 with nginx's message, no stage left, live unchanged", async () => {
        const dir = tempDir("proxy-vol");
        expect((await install(dir, conf("one"), caA)).code).toBe(0);
        const broken = conf("two").replace("worker_processes auto;", "worker_processes auto;\nno_such_directive on;");
        const r = await install(dir, broken, caA);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('unknown directive "no_such_directive"');
        expect(r.stderr).toContain("vps-stack: nginx rejected the new proxy configuration; the previous one is still serving");
        expect(versions(dir)).toEqual(["1"]);
        expect(fs.readlinkSync(path.join(dir, "live"))).toBe("releases/1");
        expect(read(path.join(dir, "live", "nginx.conf"))).toBe(conf("one"));
    });

    it("refuses a key that does not belong to the certificate (nginx -t loads both)", async () => {
        const dir = tempDir("proxy-vol");
        expect((await install(dir, conf("one"), caA)).code).toBe(0);
        const r = await install(dir, conf("two"), { ...caA, key: caB.key });
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/key values mismatch|SSL_CTX_use_PrivateKey/);
        expect(versions(dir)).toEqual(["1"]);
        expect(fs.readlinkSync(path.join(dir, "live"))).toBe("releases/1");
    });

    it("keeps only the live version and the one before it, a refused one leaving no trace", async () => {
        const dir = tempDir("proxy-vol");
        for (const tag of ["one", "two", "three"]) expect((await install(dir, conf(tag), caA)).code).toBe(0);
        expect(versions(dir)).toEqual(["2", "3"]);
        expect((await install(dir, "events {", caA)).code).toBe(1);
        expect(versions(dir)).toEqual(["2", "3"]);
        expect((await install(dir, conf("four"), caA)).code).toBe(0);
        expect(versions(dir)).toEqual(["3", "4"]);
        expect(fs.readlinkSync(path.join(dir, "live"))).toBe("releases/4");
    });
});

describe("a running proxy on the live version", () => {
    let nginx: ChildProcess | undefined;
    afterAll(() => nginx?.kill("SIGQUIT"));

    const servedSubject = async () => {
        const r = await shAsync("sh", ["-c", 'openssl s_client -connect "127.0.0.1:$1" -servername app.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject', "sh", String(ports.https)]);
        return r.stdout.trim();
    };

    it("serves the new version's certificate after an install and a reload of live/nginx.conf", async () => {
        const dir = tempDir("proxy-vol");
        expect((await install(dir, conf("one"), caA)).code).toBe(0);
        const live = path.join(dir, "live", "nginx.conf");
        nginx = spawn(tool("nginx", "nginx"), ["-p", `${root}/`, "-e", "stderr", "-c", live, "-g", "daemon off;"], { stdio: "ignore" });
        expect(await eventually(servedSubject, (s) => s.includes("a.example.test"))).toContain("CN = a.example.test");
        expect((await install(dir, conf("two"), caB)).code).toBe(0);
        const reload = await shAsync(tool("nginx", "nginx"), ["-p", `${root}/`, "-e", "stderr", "-c", live, "-s", "reload"]);
        expect(reload.code).toBe(0);
        expect(await eventually(servedSubject, (s) => s.includes("b.example.test"))).toContain("CN = b.example.test");
    });
});
