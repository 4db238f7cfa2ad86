// The local S3-compatible store for tests: SeaweedFS through e2e/lib/seaweedfs.sh (built once per cache,
// like the e2e's), on 127.0.0.1, with its key in an AWS shared credentials file. Plus a few signed S3
// requests by curl (--aws-sigv4), to look at and damage what restic stored.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { tempDir, tool } from "./tools";

const LIB = path.join(__dirname, "..", "..", "e2e", "lib", "seaweedfs.sh");

export interface S3Store {
    dir: string;
    endpoint: string;
    credentials: string;
    accessKeyId: string;
    /** Stops the server; start() brings it back with the same endpoint, key and objects. */
    stop(): void;
    start(): void;
    /** One signed request; the secret reaches curl on stdin, never in its argv. */
    request(method: string, key: string, opts?: { body?: Buffer; query?: string }): { status: number; body: Buffer };
    /** Every key in the bucket under prefix. */
    list(bucket: string, prefix?: string): { key: string; size: number }[];
    /** Removes the server's directory (after stop). */
    remove(): void;
}

function run(args: string[], timeoutMs: number) {
    const r = spawnSync("bash", [LIB, ...args], { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
    if (r.status !== 0) throw new Error(`seaweedfs.sh ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stdout}${r.stderr}${r.error ?? ""}`);
    return r.stdout;
}

/** The binary, built when missing (minutes on a cold cache: go mod download, go build). */
export function buildStore(): string {
    return run(["build"], 60 * 60_000).trim();
}

export function startStore(): S3Store {
    tool("curl", "curl");
    buildStore();
    const dir = tempDir("s3");
    const parse = (out: string) => Object.fromEntries(out.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    const vars = parse(run(["start", dir, "127.0.0.1"], 90_000));
    const secret = () => /^aws_secret_access_key = (.*)$/m.exec(fs.readFileSync(vars.S3_CREDENTIALS, "utf8"))![1];
    const store: S3Store = {
        dir,
        endpoint: vars.S3_ENDPOINT,
        credentials: vars.S3_CREDENTIALS,
        accessKeyId: vars.S3_ACCESS_KEY_ID,
        stop: () => void run(["stop", dir], 30_000),
        start: () => {
            const again = parse(run(["start", dir, "127.0.0.1"], 90_000));
            if (again.S3_ENDPOINT !== store.endpoint) throw new Error(`the store came back on ${again.S3_ENDPOINT}, not ${store.endpoint}`);
        },
        request(method, key, opts = {}) {
            const body = opts.body ?? Buffer.alloc(0);
            const out = path.join(dir, `curl-${process.pid}-${Date.now()}`);
            // SeaweedFS checks the payload's hash, which curl 7.88 does not send by itself.
            const args = ["-sS", "-K", "-", "--aws-sigv4", "aws:amz:us-east-1:s3", "-X", method, "-o", out, "-w", "%{http_code}"];
            args.push("-H", `x-amz-content-sha256: ${crypto.createHash("sha256").update(body).digest("hex")}`);
            // stdin carries curl's config (-K -), so a body goes through a file.
            if (method === "PUT") {
                fs.writeFileSync(`${out}.body`, body);
                args.push("--data-binary", `@${out}.body`);
            }
            args.push(`${store.endpoint}/${key}${opts.query ? `?${opts.query}` : ""}`);
            const r = spawnSync(tool("curl", "curl"), args, { input: `user = "${store.accessKeyId}:${secret()}"\n`, timeout: 30_000 });
            const status = Number(r.stdout.toString());
            const got = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
            fs.rmSync(out, { force: true });
            fs.rmSync(`${out}.body`, { force: true });
            if (!status) throw new Error(`curl ${method} ${key}: ${r.stderr.toString()}`);
            return { status, body: got };
        },
        list(bucket, prefix = "") {
            const found: { key: string; size: number }[] = [];
            let token = "";
            for (;;) {
                // Only list-type and the token in the query: curl's signature of an unencoded "/" in a
                // prefix differs from the server's, so the prefix is applied here.
                const r = store.request("GET", bucket, { query: `list-type=2${token ? `&continuation-token=${encodeURIComponent(token)}` : ""}` });
                if (r.status !== 200) throw new Error(`list ${bucket}: ${r.status} ${r.body.toString()}`);
                const xml = r.body.toString();
                for (const m of xml.matchAll(/<Contents>.*?<Key>([^<]*)<\/Key>.*?<Size>(\d+)<\/Size>.*?<\/Contents>/gs)) {
                    if (m[1].startsWith(prefix)) found.push({ key: m[1], size: Number(m[2]) });
                }
                const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml);
                if (!/<IsTruncated>true<\/IsTruncated>/.test(xml) || !next) return found;
                token = next[1];
            }
        },
        remove: () => fs.rmSync(dir, { recursive: true, force: true }),
    };
    return store;
}
