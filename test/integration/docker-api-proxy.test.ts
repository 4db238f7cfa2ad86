// The alert watcher's Docker API proxy (render/docker-api-proxy.ts) run by a real nginx in front of a fake
// Docker API on a unix socket that records what reaches it: the watcher's reads pass, with their queries;
// every write, every other read (a container's files, logs, exec, the versioned API) and every path trick
// is refused by nginx and never reaches Docker.
import { ChildProcess, execFile, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { dockerApiProxyConf } from "../../render/docker-api-proxy";
import { eventually, tempDir, tool } from "./tools";

let root: string;
let proxySock: string;
let docker: http.Server;
let nginx: ChildProcess;
let nginxLog = "";
const reached: { method: string; url: string }[] = [];

/**
 * One request through the proxy's socket, by curl as the watcher sends it (--path-as-is: curl would
 * otherwise squash the dot segments itself). Asynchronous: the fake Docker API answers from this process.
 */
async function request(method: string, pathAndQuery: string, body?: string): Promise<{ status: number; body: string }> {
    const args = ["-sS", "--path-as-is", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", proxySock, "-X", method, `http://docker${pathAndQuery}`];
    if (body !== undefined) args.push("-H", "Content-Type: application/json", "--data", body);
    const out = await new Promise<string>((resolve) => execFile("curl", args, { encoding: "utf8", timeout: 10_000 }, (_err, stdout) => resolve(stdout ?? "")));
    const cut = out.lastIndexOf("\n");
    return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

beforeAll(async () => {
    root = tempDir("docker-api-proxy");
    const dockerSock = path.join(root, "docker.sock");
    proxySock = path.join(root, "proxy.sock");
    docker = http.createServer((req, res) => {
        reached.push({ method: req.method!, url: req.url! });
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ fake: "docker", url: req.url }));
    });
    await new Promise<void>((r) => docker.listen(dockerSock, r));
    const conf = path.join(root, "nginx.conf");
    fs.writeFileSync(conf, dockerApiProxyConf({ listen: proxySock, docker: dockerSock, tmp: root }));
    const nginxBin = tool("nginx", "nginx");
    const t = spawnSync(nginxBin, ["-t", "-p", root, "-c", conf, "-e", "stderr"], { encoding: "utf8" });
    expect(t.status).toBe(0);
    nginx = spawn(nginxBin, ["-p", root, "-c", conf, "-e", "stderr", "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
    nginx.stderr!.on("data", (d) => (nginxLog += d));
    expect(await eventually(async () => fs.existsSync(proxySock), (ok) => ok)).toBe(true);
});

afterAll(async () => {
    nginx?.kill("SIGTERM");
    await new Promise<void>((r) => docker?.close(() => r()));
});

beforeEach(() => {
    reached.length = 0;
});

describe("the Docker API proxy", () => {
    it.each([
        ["/_ping"],
        ["/containers/json?all=1&filters=%7B%22label%22%3A%5B%22vps-stack.stack%3Dprod%22%5D%7D"],
        ["/containers/vps-stack-prod-postgres/json"],
        ["/containers/0123456789ab/json"],
        ["/events?since=1700000000&until=1700000060&filters=%7B%22event%22%3A%5B%22oom%22%5D%7D"],
    ])("passes the watcher's read GET %s, query and all", async (url) => {
        const r = await request("GET", url);
        expect(r.status).toBe(200);
        expect(reached).toEqual([{ method: "GET", url }]);
    });

    it.each([
        ["POST", "/containers/create", '{"Image":"alpine","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}'],
        ["POST", "/containers/vps-stack-prod-postgres/stop", undefined],
        ["POST", "/containers/vps-stack-prod-postgres/json", "{}"],
        ["DELETE", "/containers/vps-stack-prod-postgres/json", undefined],
        ["PUT", "/containers/vps-stack-prod-postgres/archive?path=/", "x"],
        ["POST", "/containers/vps-stack-prod-postgres/exec", '{"Cmd":["sh"]}'],
    ])("refuses %s %s: nothing reaches Docker", async (method, url, body) => {
        const r = await request(method, url, body);
        expect(r.status).toBe(403);
        expect(reached).toEqual([]);
    });

    it.each([
        // A container's files (its secrets), its logs, its whole filesystem, the daemon's secrets and config.
        ["/containers/vps-stack-prod-postgres/archive?path=/run/secrets"],
        ["/containers/vps-stack-prod-postgres/logs?stdout=1"],
        ["/containers/vps-stack-prod-postgres/export"],
        ["/secrets"],
        ["/info"],
        ["/images/json"],
        // The same reads, versioned: refused rather than reasoned about.
        ["/v1.41/containers/json"],
        // Path tricks: matched on nginx's normalised URI, and that URI is what would go on.
        ["/containers/json/../vps-stack-prod-postgres/archive?path=/"],
        ["/containers/x/json/../archive?path=/"],
        ["/containers/x%2Fjson/../../secrets"],
        ["/containers/%2e%2e/secrets/json"],
        ["//containers/json/../../info"],
    ])("refuses GET %s: nothing reaches Docker", async (url) => {
        const r = await request("GET", url);
        expect(r.status).toBe(403);
        expect(r.body).toContain("refuses this request");
        expect(reached).toEqual([]);
    });

    it("sends Docker the normalised path it matched, not the raw one", async () => {
        const r = await request("GET", "/containers//vps-stack-prod-redis/./json");
        expect(r.status).toBe(200);
        expect(reached).toEqual([{ method: "GET", url: "/containers/vps-stack-prod-redis/json" }]);
    });

    it("logged no error of its own", () => {
        expect(nginxLog).not.toMatch(/\[(emerg|alert|crit)\]/);
    });
});
