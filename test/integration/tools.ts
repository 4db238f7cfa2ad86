// Helpers for tests that run real tools: temporary dirs, free ports, a throwaway CA from openssl.
import { execFile, execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

export function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `vps-stack-${prefix}-`));
}

/** The absolute path of a tool, or a test failure telling how to install it (never a silent skip). */
export function tool(name: string, pkg: string): string {
    for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
        const p = path.join(dir, name);
        if (fs.existsSync(p)) return p;
    }
    throw new Error(`${name} is not installed: apt-get install -y ${pkg} (or run bash .ci/install-tools.sh as root)`);
}

export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.listen(0, "127.0.0.1", () => {
            const { port } = srv.address() as net.AddressInfo;
            srv.close(() => resolve(port));
        });
        srv.on("error", reject);
    });
}

export interface TestCa {
    caCert: string;
    cert: string;
    key: string;
}

/** A CA and a server certificate for `names`, like the per-stack CA the program makes. */
export function makeCa(dir: string, names: string[]): TestCa {
    const openssl = tool("openssl", "openssl");
    const f = (n: string) => path.join(dir, n);
    const run = (args: string[]) => execFileSync(openssl, args, { stdio: "pipe" });
    run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("ca.key")]);
    run(["req", "-x509", "-new", "-key", f("ca.key"), "-subj", "/CN=vps-stack test CA", "-days", "2", "-out", f("ca.crt")]);
    run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("server.key")]);
    run(["req", "-new", "-key", f("server.key"), "-subj", `/CN=${names[0]}`, "-out", f("server.csr")]);
    fs.writeFileSync(f("ext.cnf"), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`);
    run(["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", f("ext.cnf"), "-out", f("server.crt")]);
    return { caCert: f("ca.crt"), cert: f("server.crt"), key: f("server.key") };
}

export function sh(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
    const r = spawnSync(cmd, args, { input: opts.input, env: { ...process.env, ...opts.env }, encoding: "utf8" });
    return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

/** Runs a command without blocking the event loop (for tests whose servers live in the test process). */
export function shAsync(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        const child = execFile(cmd, args, { encoding: "utf8", maxBuffer: 1 << 24, env: opts.env ?? process.env }, (err, stdout, stderr) =>
            resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
        );
        // A child that exits without reading its stdin (sh -n -c …) closes the pipe first: the EPIPE
        // that follows is not the command's result, its exit code is.
        child.stdin?.on("error", () => undefined);
        child.stdin?.end(opts.input ?? "");
    });
}

/**
 * Probes until `ok` holds or `timeoutMs` passes, then returns the last value (the assertion after it
 * shows what was seen). For effects that land asynchronously, such as an nginx reload: a fixed sleep is
 * either slow or flaky on a loaded machine.
 */
export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await probe();
        if (ok(v) || Date.now() > deadline) return v;
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** The command names of the live children of `pid`, read from /proc. */
export function childrenOf(pid: number): string[] {
    const names: string[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        let stat: string;
        try {
            stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
        } catch {
            continue; // gone since the listing
        }
        // The name is in parentheses and may hold spaces or ")": the fields after the last ")" are fixed.
        const close = stat.lastIndexOf(")");
        if (Number(stat.slice(close + 2).split(" ")[1]) === pid) names.push(stat.slice(stat.indexOf("(") + 1, close));
    }
    return names;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (or rejects after timeoutMs). */
export async function listening(port: number, timeoutMs = 10_000): Promise<void> {
    const up = () =>
        new Promise<boolean>((resolve) => {
            const s = net.connect(port, "127.0.0.1");
            s.once("connect", () => (s.destroy(), resolve(true)));
            s.once("error", () => resolve(false));
        });
    if (!(await eventually(up, (v) => v, timeoutMs))) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}
