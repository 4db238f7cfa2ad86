// The redis.conf the program renders is loaded by a real redis-server (Debian's), and the container's
// healthcheck command authenticates through REDISCLI_AUTH read from that file.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderRedisConf } from "../../render/services";
import { redisHealthCommand } from "../../render/services";
import { freePort, sh, tempDir, tool } from "./tools";

const PASSWORD = "Aa1bcdefghijklmnopqrstuvwxyz0123";

let server: ChildProcess | undefined;
let port = 0;
let confFile = "";

beforeAll(async () => {
    const dir = tempDir("redis");
    confFile = path.join(dir, "redis.conf");
    fs.writeFileSync(confFile, renderRedisConf({ password: PASSWORD, maxmemory: "64mb", maxmemoryPolicy: "allkeys-lru", appendonly: true, appendfsync: "everysec", dataDir: dir }), { mode: 0o400 });
    port = await freePort();
    // Only where the container differs from this machine: the port and the bind address.
    server = spawn(tool("redis-server", "redis-server"), [confFile, "--port", String(port), "--bind", "127.0.0.1"], { stdio: "ignore" });
    const cli = tool("redis-cli", "redis-server");
    for (let i = 0; i < 100; i++) {
        if (sh(cli, ["-p", String(port), "ping"]).stdout.match(/PONG|NOAUTH/)) return;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("redis-server did not start with the rendered config");
});

afterAll(() => {
    server?.kill("SIGTERM");
});

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
    return sh(tool("redis-cli", "redis-server"), ["-p", String(port), ...args], { env });
}

it("requires the password", () => {
    expect(cli(["ping"]).stdout).toMatch(/NOAUTH/);
    expect(cli(["ping"], { REDISCLI_AUTH: "wrong" }).stdout + cli(["ping"], { REDISCLI_AUTH: "wrong" }).stderr).toMatch(/WRONGPASS|invalid/i);
    expect(cli(["ping"], { REDISCLI_AUTH: PASSWORD }).stdout.trim()).toBe("PONG");
});

it("runs with AOF persistence and the memory policy", () => {
    const get = (k: string) => cli(["config", "get", k], { REDISCLI_AUTH: PASSWORD }).stdout.split("\n")[1];
    expect(get("appendonly")).toBe("yes");
    expect(get("appendfsync")).toBe("everysec");
    expect(get("maxmemory")).toBe(String(64 * 1024 * 1024));
    expect(get("maxmemory-policy")).toBe("allkeys-lru");
});

it("passes the container's healthcheck command, which keeps the password out of argv", () => {
    const test = redisHealthCommand(confFile, port);
    expect(test).not.toContain(PASSWORD);
    expect(sh("sh", ["-c", test]).code).toBe(0);
    const broken = test.replace("requirepass", "requirepasswd");
    expect(sh("sh", ["-c", broken]).code).not.toBe(0);
});
