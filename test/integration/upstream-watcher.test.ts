// The proxy's upstream watcher (render/proxy.ts), run by sh with fakes first on PATH: `getent`
// answers with the addresses in a file the test changes, `nginx` records its calls and passes or fails
// `-t` as told. It must reload once per change, not while nothing changes, and never into a config that
// nginx -t rejects (it retries instead).
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { upstreamWatcher } from "../../render/proxy";
import { eventually, tempDir } from "./tools";

let dir: string;
let watcher: ChildProcess | undefined;

const write = (name: string, content: string, mode = 0o644) => fs.writeFileSync(path.join(dir, name), content, { mode });
const calls = () => (fs.existsSync(path.join(dir, "nginx.calls")) ? fs.readFileSync(path.join(dir, "nginx.calls"), "utf8").split("\n").filter(Boolean) : []);
const reloads = () => calls().filter((c) => c.endsWith("-s reload")).length;

beforeEach(() => {
    dir = tempDir("upstream-watcher");
    fs.mkdirSync(path.join(dir, "bin"));
    write("nginx.conf", ["upstream app_api {", "    server api-0123456789:8000 max_fails=3 fail_timeout=10s;", "}", "server {", "    server_name _;", "}", ""].join("\n"));
    write("addresses", "172.18.0.5 api-0123456789\n");
    write("test-ok", "");
    // glibc's `getent ahostsv4` prints each address three times (one per socket type), in DNS order.
    write("bin/getent", `#!/bin/sh\n[ "$1" = ahostsv4 ] && [ "$2" = api-0123456789 ] && awk '{ for (i = 0; i < 3; i++) print $1, "STREAM", $2 }' ${dir}/addresses\n`, 0o755);
    write(
        "bin/nginx",
        `#!/bin/sh\necho "$*" >> ${dir}/nginx.calls\ncase "$*" in *" -t"*) [ -e ${dir}/test-ok ] ;; *) exit 0 ;; esac\n`,
        0o755,
    );
    const script = upstreamWatcher({ conf: path.join(dir, "nginx.conf"), interval: 0.2 });
    watcher = spawn("sh", ["-c", script], { env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}` }, stdio: "ignore" });
});

afterEach(() => {
    watcher?.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
});

const settle = () => new Promise((r) => setTimeout(r, 800));

test("reloads nginx once when an upstream's address changes, and not while nothing changes", async () => {
    await settle();
    expect(reloads()).toBe(0);
    write("addresses", "172.18.0.9 api-0123456789\n");
    expect(await eventually(async () => reloads(), (n) => n === 1)).toBe(1);
    await settle();
    expect(reloads()).toBe(1);
    // It checks the config first, with the live config's path.
    expect(calls().slice(-2)).toEqual([`-c ${path.join(dir, "nginx.conf")} -t -q`, `-c ${path.join(dir, "nginx.conf")} -s reload`]);
});

test("does not reload for the address order (Docker's DNS shuffles it) nor after a new config, which its installer reloads", async () => {
    write("addresses", "172.18.0.5 api-0123456789\n172.18.0.6 api-0123456789\n");
    await settle();
    const before = reloads();
    write("addresses", "172.18.0.6 api-0123456789\n172.18.0.5 api-0123456789\n");
    await settle();
    expect(reloads()).toBe(before);
    // A release: new upstream names in the config, already reloaded by the config command.
    write("nginx.conf", fs.readFileSync(path.join(dir, "nginx.conf"), "utf8").replace(/api-0123456789/g, "api-abcdefabcd"));
    write("bin/getent", `#!/bin/sh\n[ "$1" = ahostsv4 ] && [ "$2" = api-abcdefabcd ] && echo "172.18.0.9 STREAM api-abcdefabcd"\n`, 0o755);
    await settle();
    expect(reloads()).toBe(before);
});

test("never reloads into a config nginx -t rejects, and retries until it passes", async () => {
    await settle();
    fs.rmSync(path.join(dir, "test-ok"));
    write("addresses", "");
    await settle();
    expect(reloads()).toBe(0);
    expect(calls().filter((c) => c.endsWith("-t -q")).length).toBeGreaterThan(1);
    write("addresses", "172.18.0.7 api-0123456789\n");
    write("test-ok", "");
    expect(await eventually(async () => reloads(), (n) => n >= 1)).toBe(1);
});
