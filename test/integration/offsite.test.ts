// vps-stack-offsite against a real S3-compatible store (SeaweedFS, e2e/lib/seaweedfs.sh) and the real
// restic: an upload restored into an empty directory gives back the backup directory byte for byte, less
// what is in progress; nothing in the bucket is readable without the passphrase, and a wrong one
// restores nothing; with the store down an upload fails loudly and touches nothing local, and the next
// one after it is back clears the alarm; forget keeps what the GFS retention says and prunes the rest;
// verify finds a damaged and a missing object; the scheduler keeps its interval and stops at once on
// SIGTERM. The markers (check, shipped) are also read by vps-stack-backup's check. The round trip runs
// under busybox sh with busybox's tools first on PATH, as in the Alpine restic image.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { S3Store, startStore } from "./s3";
import { eventually, tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-offsite.sh");
const BACKUP_SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-backup.sh");
const SEAWEEDFS_LIB = path.join(__dirname, "..", "..", "e2e", "lib", "seaweedfs.sh");
const BUCKET = "vps-stack-test";
/** In every file of the fixture: found locally, it must not be found in any object of the bucket. */
const MARKER = "OFFSITE-PLAINTEXT-MARKER-3b9e1c";

let store: S3Store;
let root: string;
let passphrase: string;
let busyboxDir: string;
const children: ChildProcess[] = [];

type Env = Record<string, string>;
const nowSecs = () => Math.floor(Date.now() / 1000);
const read = (p: string) => (fs.existsSync(p) ? fs.readFileSync(p, "utf8") : "");
const keyval = (text: string) => Object.fromEntries(text.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
const marker = (dir: string, name: string) => keyval(read(path.join(dir, name)));
const writeMarker = (dir: string, name: string, kv: Record<string, string | number>) =>
    fs.writeFileSync(path.join(dir, name), Object.entries(kv).map(([k, v]) => `${k}=${v}\n`).join(""));

let dirs = 0;
function dir(name: string): string {
    const d = path.join(root, `${name}-${++dirs}`);
    fs.mkdirSync(d, { recursive: true });
    return d;
}

/** The uploader's environment: files for both secrets, nothing else of this process's. */
function envFor(opts: { backupDir: string; host: string; prefix?: string; env?: Env; busybox?: boolean }): Env {
    return {
        PATH: opts.busybox ? `${busyboxDir}:${process.env.PATH}` : process.env.PATH!,
        HOME: root,
        TZ: "UTC",
        RESTIC_REPOSITORY: `s3:${store.endpoint}/${BUCKET}/${opts.prefix ?? "main"}`,
        RESTIC_PASSWORD_FILE: passphrase,
        RESTIC_CACHE_DIR: path.join(root, "restic-cache"),
        AWS_SHARED_CREDENTIALS_FILE: store.credentials,
        AWS_DEFAULT_REGION: "us-east-1",
        S3_PATH_STYLE: "1",
        BACKUP_DIR: opts.backupDir,
        OFFSITE_HOST: opts.host,
        ...opts.env,
    };
}

function offsite(args: string[], opts: { backupDir: string; host: string; prefix?: string; env?: Env; busybox?: boolean }) {
    const shell = opts.busybox ? path.join(busyboxDir, "sh") : "sh";
    const r = spawnSync(shell, [SCRIPT, ...args], { env: envFor(opts), encoding: "utf8", timeout: 120_000 });
    return { code: r.status, out: r.stdout + r.stderr, stdout: r.stdout };
}

/** restic itself, for what the test looks at (snapshot lists). */
function restic(args: string[], opts: { prefix?: string; password?: string } = {}) {
    const env = envFor({ backupDir: root, host: "-", prefix: opts.prefix, env: opts.password ? { RESTIC_PASSWORD_FILE: opts.password } : {} });
    const r = spawnSync("restic", ["-o", "s3.bucket-lookup=path", ...args], { env, encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) throw new Error(`restic ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}

function snapshotsOf(host: string, prefix?: string): { time: string; id: string }[] {
    return JSON.parse(restic(["snapshots", "--json", "--host", host], { prefix })) as { time: string; id: string }[];
}

/** Random bytes around the marker: incompressible, and the marker is in the plaintext. */
function payload(size: number): Buffer {
    return Buffer.concat([crypto.randomBytes(size / 2), Buffer.from(` ${MARKER} `), crypto.randomBytes(size / 2)]);
}

/** Files in a backup directory as the stack leaves it, and in-progress ones that must not leave. */
const PROGRESS = [
    ".test-app-20261103T020000Z.dump.partial",
    ".test-app-20261103T020000Z.dump.partial.sha256",
    "base/.test-app-20261103T010000Z.partial/base.tar",
    ".lock",
    ".lock-base",
    "last-success.tmp.4242",
    "pitr-before-20261102T000000Z/wal/000000010000000000000001",
    "pitr-before-20261102T000000Z/base/test-app-20261101T010000Z/base.tar",
];
function fillBackupDir(d: string) {
    const put = (rel: string, content: Buffer | string) => {
        fs.mkdirSync(path.dirname(path.join(d, rel)), { recursive: true });
        fs.writeFileSync(path.join(d, rel), content, { mode: 0o600 });
    };
    for (const day of ["20261101", "20261102"]) {
        const body = payload(40_000);
        put(`test-app-${day}T020000Z.dump`, body);
        put(`test-app-${day}T020000Z.dump.sha256`, `${crypto.createHash("sha256").update(body).digest("hex")}  test-app-${day}T020000Z.dump\n`);
    }
    put("base/test-app-20261101T010000Z/base.tar", payload(120_000));
    put("base/test-app-20261101T010000Z/backup_manifest", `{"marker": "${MARKER}"}\n`);
    put("base/test-app-20261101T010000Z/done", "started=1793500000\nfinished=1793500010\nstart_wal=000000010000000000000002\nsize=120000\n");
    put("wal/000000010000000000000002", payload(64_000));
    put("wal/000000010000000000000003", payload(64_000));
    // The segment being written: the newest writes, what keeps the RPO.
    put("wal/000000010000000000000004.partial", payload(64_000));
    put("wal/00000002.history", `1\t0/3000000\tno recovery target specified ${MARKER}\n`);
    put("last-success", `time=${nowSecs()}\nfile=test-app-20261102T020000Z.dump\n`);
    put(".installed", `time=${nowSecs()}\n`);
    for (const rel of PROGRESS) put(rel, payload(2_000));
}

/** Relative path -> sha256 and mode of every file under d, less what the uploader leaves out. */
function tree(d: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (rel: string) => {
        for (const e of fs.readdirSync(path.join(d, rel), { withFileTypes: true })) {
            const r = rel ? `${rel}/${e.name}` : e.name;
            if (skip(r)) continue;
            if (e.isDirectory()) walk(r);
            else out[r] = `${crypto.createHash("sha256").update(fs.readFileSync(path.join(d, r))).digest("hex")} ${(fs.statSync(path.join(d, r)).mode & 0o777).toString(8)}`;
        }
    };
    walk("");
    return out;
}
const uploaderOwn = (rel: string) => /^(offsite-|\.offsite-|\.lock-offsite)/.test(rel);
/** What the uploader leaves out, said independently of its exclude patterns. */
const inProgress = (rel: string) => {
    const name = path.basename(rel);
    return /^\..*\.partial(\..*)?$/.test(name) || name.startsWith(".lock") || /\.tmp\.\d+$/.test(name) || rel.startsWith("pitr-before-") || uploaderOwn(rel);
};

beforeAll(() => {
    root = tempDir("offsite");
    passphrase = path.join(root, "passphrase");
    fs.writeFileSync(passphrase, `${crypto.randomBytes(24).toString("base64")}\n`, { mode: 0o600 });
    busyboxDir = path.join(root, "busybox");
    fs.mkdirSync(busyboxDir);
    const busybox = tool("busybox", "busybox");
    tool("restic", "restic");
    tool("flock", "util-linux");
    // Debian's busybox has no flock applet: util-linux's, further down PATH, stands in for Alpine's.
    for (const applet of "sh awk basename cat chmod cp cut date dirname find grep head ls mkdir mktemp mv printf rm sed sleep sort stat tail touch tr wc".split(" ")) {
        fs.symlinkSync(busybox, path.join(busyboxDir, applet));
    }
    // Built once per cache when missing: minutes, not counted against a test.
    store = startStore();
    // The repository most tests share, each with its own host (restic's --host: the stack).
    const init = offsite(["init"], { backupDir: root, host: "-" });
    if (init.code !== 0) throw new Error(init.out);
}, 60 * 60_000);

afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL");
    store?.stop();
    store?.remove();
    if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("init", () => {
    it("creates the repository once, and a wrong passphrase is an error, never a new repository", () => {
        const opts = { backupDir: dir("init"), host: "init", prefix: "init" };
        const first = offsite(["init"], opts);
        expect(first.out).toContain("creating it");
        expect(first.code).toBe(0);
        const again = offsite(["init"], opts);
        expect(again.out).toContain("exists and the passphrase opens it");
        expect(again.code).toBe(0);
        const keys = store.list(BUCKET, "init/keys/");
        expect(keys).toHaveLength(1);

        const wrong = path.join(root, "wrong-passphrase");
        fs.writeFileSync(wrong, "not the passphrase\n", { mode: 0o600 });
        const refused = offsite(["init"], { ...opts, env: { RESTIC_PASSWORD_FILE: wrong } });
        expect(refused.code).toBe(1);
        expect(refused.out).toContain("does not open the existing repository");
        expect(store.list(BUCKET, "init/keys/")).toEqual(keys);
        expect(store.list(BUCKET, "init/config")).toHaveLength(1);

        // A secret in the environment is refused rather than used.
        const envSecret = offsite(["init"], { ...opts, env: { RESTIC_PASSWORD: "x" } });
        expect(envSecret.code).toBe(1);
        expect(envSecret.out).toContain("RESTIC_PASSWORD is set");
    }, 60_000);
});

describe("upload and restore-into", () => {
    it("restores every file byte for byte, less what is in progress, under busybox", () => {
        const d = dir("backups");
        fillBackupDir(d);
        const before = tree(d);
        const up = offsite(["upload"], { backupDir: d, host: "roundtrip", busybox: true });
        expect(up.out).toContain("upload ok");
        expect(up.code).toBe(0);
        const m = marker(d, "offsite-last-success");
        expect(Object.keys(m).sort()).toEqual(["added", "finished", "iso", "seconds", "snapshot", "started"]);
        expect(m.snapshot).toMatch(/^[0-9a-f]{8,64}$/);
        // The fixture is random bytes: nearly all of it is new to the store.
        expect(Number(m.added)).toBeGreaterThan(300_000);
        expect(Number(m.finished)).toBeGreaterThanOrEqual(Number(m.started));
        expect(Math.abs(Number(m.started) - nowSecs())).toBeLessThan(60);
        expect(fs.existsSync(path.join(d, "offsite-last-failure"))).toBe(false);
        // Nothing local was touched: only the uploader's marker and lock are new.
        expect(tree(d, uploaderOwn)).toEqual(before);

        const target = path.join(dir("restore"), "into");
        const r = offsite(["restore-into", target], { backupDir: d, host: "roundtrip", busybox: true });
        expect(r.out).toContain("restore ok");
        expect(r.code).toBe(0);
        expect(keyval(r.stdout)).toMatchObject({ path: d });
        expect(keyval(r.stdout).snapshot.startsWith(m.snapshot)).toBe(true);
        const restored = tree(target);
        expect(restored).toEqual(tree(d, inProgress));
        // The positive half: the WAL segment being written did go.
        expect(restored["wal/000000010000000000000004.partial"]).toBe(before["wal/000000010000000000000004.partial"]);
        expect(Object.keys(restored).filter((f) => f.startsWith(".") || f.includes("/.") || /pitr-before|\.tmp\./.test(f))).toEqual([".installed"]);

        // Only into an empty directory.
        const busy = offsite(["restore-into", target], { backupDir: d, host: "roundtrip" });
        expect(busy.code).toBe(1);
        expect(busy.out).toContain("is not empty");
        // No snapshot of that host: a clear error, and the directory stays empty.
        const none = path.join(dir("restore"), "none");
        const nothing = offsite(["restore-into", none], { backupDir: d, host: "never-uploaded" });
        expect(nothing.code).toBe(1);
        expect(nothing.out).toContain("no snapshot latest of host never-uploaded");
        expect(fs.readdirSync(none)).toEqual([]);
    }, 90_000);

    it("encrypts before anything leaves: no object holds the local files' marker; a wrong passphrase restores nothing", () => {
        const d = dir("plain");
        fillBackupDir(d);
        // The positive control on the local side: every file holds the marker.
        const local = Object.keys(tree(d)).filter((f) => fs.readFileSync(path.join(d, f)).includes(MARKER));
        expect(local.length).toBeGreaterThanOrEqual(10);
        expect(offsite(["upload"], { backupDir: d, host: "plaintext" }).code).toBe(0);

        // Read back through the S3 API, as anyone holding the bucket's key would: the store's own files
        // (volumes, its metadata database) are an implementation of SeaweedFS, the objects are what left.
        const control = `control/${crypto.randomBytes(4).toString("hex")}`;
        expect(store.request("PUT", `${BUCKET}/${control}`, { body: Buffer.from(`plain ${MARKER}`) }).status).toBe(200);
        const objects = store.list(BUCKET);
        const readable = objects.filter((o) => store.request("GET", `${BUCKET}/${o.key}`).body.includes(MARKER)).map((o) => o.key);
        expect(readable).toEqual([control]);
        expect(objects.filter((o) => o.key.startsWith("main/data/")).length).toBeGreaterThan(0);
        expect(store.request("DELETE", `${BUCKET}/${control}`).status).toBe(204);

        const wrong = path.join(root, "another-passphrase");
        fs.writeFileSync(wrong, "a guess\n", { mode: 0o600 });
        const target = path.join(dir("restore"), "wrong");
        const r = offsite(["restore-into", target], { backupDir: d, host: "plaintext", env: { RESTIC_PASSWORD_FILE: wrong } });
        expect(r.code).toBe(1);
        expect(r.out).toContain("does not open the repository");
        expect(fs.readdirSync(target)).toEqual([]);
    }, 90_000);
});

describe("fetch-dump", () => {
    it("brings the newest dump of the latest snapshot back, with its checksum, for the backup job's verification", () => {
        const d = dir("fetch");
        fillBackupDir(d);
        expect(offsite(["upload"], { backupDir: d, host: "fetch" }).code).toBe(0);
        const r = offsite(["fetch-dump"], { backupDir: d, host: "fetch", busybox: true });
        expect([r.code, r.out]).toEqual([0, expect.stringContaining("fetched test-app-20261102T020000Z.dump")]);
        const got = path.join(d, "offsite-verify");
        expect(fs.readdirSync(got).sort()).toEqual(["test-app-20261102T020000Z.dump", "test-app-20261102T020000Z.dump.sha256"]);
        for (const f of fs.readdirSync(got)) expect(fs.readFileSync(path.join(got, f)).equals(fs.readFileSync(path.join(d, f)))).toBe(true);
        expect(marker(d, "offsite-fetch")).toMatchObject({ file: "test-app-20261102T020000Z.dump", snapshot: expect.stringMatching(/^[0-9a-f]{64}$/) });
        // What it fetched is never uploaded again.
        expect(offsite(["upload"], { backupDir: d, host: "fetch" }).code).toBe(0);
        const target = path.join(dir("fetch-restore"), "into");
        expect(offsite(["restore-into", target], { backupDir: d, host: "fetch" }).code).toBe(0);
        expect(fs.existsSync(path.join(target, "offsite-verify"))).toBe(false);
    }, 90_000);
});

describe("a new host facing the store's history", () => {
    it("holds instead of uploading an empty directory over it, says so in its check, and uploads once adopted", () => {
        const old = dir("history");
        fillBackupDir(old);
        expect(offsite(["upload"], { backupDir: old, host: "drill" }).code).toBe(0);
        const before = snapshotsOf("drill");

        const fresh = dir("new-host");
        writeMarker(fresh, ".offsite-installed", { time: nowSecs() });
        const held = offsite(["upload"], { backupDir: fresh, host: "drill" });
        expect(held.code).toBe(0);
        expect(held.out).toContain("HOLDING");
        expect(snapshotsOf("drill")).toEqual(before);
        expect(marker(fresh, "offsite-hold").snapshot).toBe(before[before.length - 1].id.slice(0, 8));
        expect(fs.existsSync(path.join(fresh, "offsite-last-success"))).toBe(false);
        // Healthy during the grace period (pulumi up waits for it), then loud.
        const inGrace = offsite(["check"], { backupDir: fresh, host: "drill" });
        expect([inGrace.code, inGrace.out]).toEqual([0, expect.stringContaining("holding uploads")]);
        const late = offsite(["check"], { backupDir: fresh, host: "drill", env: { VPS_STACK_NOW: String(nowSecs() + 3600) } });
        expect([late.code, late.out]).toEqual([1, expect.stringContaining("FAIL: holding uploads")]);

        expect(offsite(["adopt", "test"], { backupDir: fresh, host: "drill" }).code).toBe(0);
        expect(fs.existsSync(path.join(fresh, "offsite-hold"))).toBe(false);
        const up = offsite(["upload"], { backupDir: fresh, host: "drill" });
        expect([up.code, up.out]).toEqual([0, expect.stringContaining("upload ok")]);
        expect(snapshotsOf("drill")).toHaveLength(before.length + 1);

        // A store with nothing of this stack: the first directory is adopted by itself.
        const first = dir("first-host");
        const up1 = offsite(["upload"], { backupDir: first, host: "never-seen" });
        expect([up1.code, up1.out]).toEqual([0, expect.stringContaining("upload ok")]);
        expect(marker(first, ".offsite-adopted").why).toContain("no snapshot");
    }, 120_000);
});

describe("the uploader's lock", () => {
    /** Holds the uploader's lock in d for `seconds`, as a running upload would; resolves once it is held. */
    async function holdLock(d: string, seconds: number) {
        const holder = spawn(tool("flock", "util-linux"), [path.join(d, ".lock-offsite"), "sh", "-c", `echo locked; exec sleep ${seconds}`], {
            detached: true,
            stdio: ["ignore", "pipe", "ignore"],
        });
        children.push(holder);
        let said = "";
        holder.stdout!.on("data", (c) => (said += c));
        expect(await eventually(async () => said, (s) => s.includes("locked"))).toContain("locked");
        let released = false;
        const release = () => {
            if (released || holder.exitCode !== null) return;
            released = true;
            process.kill(-holder.pid!, "SIGTERM");
        };
        return { release };
    }

    it("an upload run by hand waits for the running one, then goes", async () => {
        const d = dir("waits");
        fillBackupDir(d);
        await holdLock(d, 3);
        const t0 = Date.now();
        const r = offsite(["upload"], { backupDir: d, host: "waits", env: { LOCK_WAIT: "60" } });
        expect([r.code, r.out]).toEqual([0, expect.stringContaining("upload ok")]);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
        expect(snapshotsOf("waits")).toHaveLength(1);
    }, 60_000);

    it("never runs two at once: past LOCK_WAIT an upload by hand gives up (75) and records no failure", async () => {
        const d = dir("locked");
        const held = await holdLock(d, 30);
        try {
            const r = offsite(["upload"], { backupDir: d, host: "locked", env: { LOCK_WAIT: "2" } });
            expect(r.code).toBe(75);
            expect(r.out).toContain("is still held after 2s; giving up");
            expect(fs.existsSync(path.join(d, "offsite-last-failure"))).toBe(false);
            expect(fs.existsSync(path.join(d, "offsite-last-success"))).toBe(false);
        } finally {
            held.release();
        }
    });

    // (Its daily forget does wait: it is not due again for a day, and it goes once the lock is free.)
    it("the scheduler skips its upload turn instead of waiting, and uploads once the lock is free", async () => {
        const d = dir("skips");
        fillBackupDir(d);
        const held = await holdLock(d, 30);
        const logFile = path.join(root, "schedule-skips.log");
        const fd = fs.openSync(logFile, "a");
        const child = spawn("sh", [SCRIPT, "schedule"], { env: envFor({ backupDir: d, host: "skips", env: { UPLOAD_INTERVAL: "2", LOCK_WAIT: "600" } }), stdio: ["ignore", fd, fd], detached: true });
        fs.closeSync(fd);
        children.push(child);
        try {
            expect(await eventually(async () => read(logFile).split("no upload this time").length - 1, (n) => n >= 1, 20_000)).toBeGreaterThanOrEqual(1);
            expect(fs.existsSync(path.join(d, "offsite-last-success"))).toBe(false);
            held.release();
            expect(await eventually(async () => fs.existsSync(path.join(d, "offsite-last-success")), (ok) => ok, 20_000)).toBe(true);
        } finally {
            held.release();
            process.kill(-child.pid!, "SIGTERM");
        }
    }, 60_000);
});

describe("the store down", () => {
    it("fails the upload loudly and touches nothing local; back up, the next upload clears the alarm", () => {
        const d = dir("down");
        fillBackupDir(d);
        expect(offsite(["upload"], { backupDir: d, host: "down" }).code).toBe(0);
        const good = read(path.join(d, "offsite-last-success"));
        const before = tree(d, (rel) => rel === "offsite-last-failure");
        const backupCheck = () =>
            spawnSync("sh", [BACKUP_SCRIPT, "check"], { env: { PATH: process.env.PATH!, BACKUP_DIR: d, BACKUP_PREFIX: "test-app", OFFSITE: "1" }, encoding: "utf8" });
        store.stop();
        try {
            const up = offsite(["upload"], { backupDir: d, host: "down" });
            expect(up.code).toBe(1);
            expect(up.out).toContain("upload FAILED");
            const failure = marker(d, "offsite-last-failure");
            expect(failure.reason).toMatch(/connection refused/);
            expect(Number(failure.time)).toBeGreaterThanOrEqual(Number(keyval(good).finished));
            expect(read(path.join(d, "offsite-last-success"))).toBe(good);
            expect(tree(d, (rel) => rel === "offsite-last-failure")).toEqual(before);
            const check = offsite(["check"], { backupDir: d, host: "down" });
            expect(check.code).toBe(1);
            expect(check.out).toContain("FAIL: the last off-site upload failed at");
            // The backup container's health shows it too.
            const b = backupCheck();
            expect(b.status).toBe(1);
            expect(b.stdout).toContain("FAIL: the last off-site upload failed at");
        } finally {
            store.start();
        }
        const again = offsite(["upload"], { backupDir: d, host: "down" });
        expect(again.out).toContain("upload ok");
        expect(again.code).toBe(0);
        expect(fs.existsSync(path.join(d, "offsite-last-failure"))).toBe(false);
        expect(offsite(["check"], { backupDir: d, host: "down" }).code).toBe(0);
        expect(backupCheck().status).toBe(0);
    }, 120_000);
});

describe("forget", () => {
    it("keeps what the retention says (within, daily, weekly, monthly) and prunes the rest from the store", () => {
        const d = dir("retention");
        // Wednesday 2026-06-17 12:00 UTC, and uploads that many hours before it.
        const T = 1781697600;
        const upload = (hoursBefore: number) => {
            const r = offsite(["upload"], { backupDir: d, host: "retention", env: { VPS_STACK_NOW: String(T - hoursBefore * 3600) } });
            expect(r.code).toBe(0);
        };
        // Data only the two oldest snapshots hold: pruned with them.
        fs.writeFileSync(path.join(d, "old-only.dump"), crypto.randomBytes(400_000));
        upload(4800);
        upload(2400);
        fs.rmSync(path.join(d, "old-only.dump"));
        fillBackupDir(d);
        for (const h of [1680, 960, 384, 216, 72, 60, 36, 12, 0]) upload(h);
        const dataBytes = () => store.list(BUCKET, "main/data/").reduce((n, o) => n + o.size, 0);
        const bytesBefore = dataBytes();
        const others = snapshotsOf("roundtrip");

        const r = offsite(["forget"], { backupDir: d, host: "retention", env: { KEEP_WITHIN: "1d", KEEP_DAILY: "3", KEEP_WEEKLY: "2", KEEP_MONTHLY: "3" } });
        expect(r.out).toContain("forget ok: 4 snapshots removed");
        expect(r.code).toBe(0);
        const hoursLeft = snapshotsOf("retention")
            .map((s) => Math.round((T - Date.parse(s.time) / 1000) / 3600))
            .sort((a, b) => a - b);
        // within 1d of the newest: 0, 12; daily (3): 0, 36, 60; weekly (2, ISO weeks): 0, 72;
        // monthly (3): 0, 960 (May), 1680 (April). Gone: 216, 384 (June, second in their week), 2400, 4800.
        expect(hoursLeft).toEqual([0, 12, 36, 60, 72, 960, 1680]);
        expect(marker(d, "offsite-last-prune").removed).toBe("4");
        expect(dataBytes()).toBeLessThan(bytesBefore - 350_000);
        // Another host's snapshots are not this host's retention.
        expect(snapshotsOf("roundtrip")).toEqual(others);
    }, 120_000);
});

describe("verify", () => {
    it("passes on a sound store and fails on a damaged object and on a missing one; the check follows", () => {
        const d = dir("verify");
        fs.writeFileSync(path.join(d, "test-app-20261101T020000Z.dump"), payload(300_000));
        const opts = { backupDir: d, host: "verify", prefix: "verify" };
        expect(offsite(["init"], opts).code).toBe(0);
        expect(offsite(["upload"], opts).code).toBe(0);
        const ok = offsite(["verify", "100"], opts);
        expect(ok.out).toContain("verify ok");
        expect(ok.code).toBe(0);
        expect(marker(d, "offsite-last-verify-success").percent).toBe("100");

        // The largest object holds the dump's data (trees and the index are small).
        const [pack] = store.list(BUCKET, "verify/data/").sort((a, b) => b.size - a.size);
        const original = store.request("GET", `${BUCKET}/${pack.key}`).body;
        expect(original.length).toBe(pack.size);
        expect(store.request("PUT", `${BUCKET}/${pack.key}`, { body: crypto.randomBytes(pack.size) }).status).toBe(200);
        const damaged = offsite(["verify", "100"], opts);
        expect(damaged.code).toBe(1);
        expect(damaged.out).toContain("verification of the off-site store FAILED");
        expect(marker(d, "offsite-last-verify-failure").reason).toMatch(/does not match/);
        const check = offsite(["check"], opts);
        expect(check.code).toBe(1);
        expect(check.out).toContain("FAIL: the last verification of the off-site store failed");

        expect(store.request("PUT", `${BUCKET}/${pack.key}`, { body: original }).status).toBe(200);
        expect(offsite(["verify", "100"], opts).code).toBe(0);
        expect(offsite(["check"], opts).code).toBe(0);

        // Missing: found by the listing, without reading any data back (PERCENT 0).
        expect(store.request("DELETE", `${BUCKET}/${pack.key}`).status).toBe(204);
        const missing = offsite(["verify", "0"], opts);
        expect(missing.code).toBe(1);
        expect(marker(d, "offsite-last-verify-failure").reason).toContain(`${path.basename(pack.key)}: does not exist`);
        expect(offsite(["check"], opts).code).toBe(1);
    }, 120_000);
});

describe("markers and the clock", () => {
    const S = 1790000000;

    it("shipped: a successful upload started at or after EPOCH", () => {
        const d = dir("shipped");
        const shipped = (epoch: string) => offsite(["shipped", epoch], { backupDir: d, host: "x" });
        expect(shipped(String(S)).code).toBe(1);
        writeMarker(d, "offsite-last-success", { started: S, finished: S + 5, snapshot: "abcd1234", added: 1, seconds: 5 });
        expect(shipped(String(S - 100)).code).toBe(0);
        const at = shipped(String(S));
        expect(at.code).toBe(0);
        expect(at.out).toContain("shipped: the upload of snapshot abcd1234");
        const after = shipped(String(S + 1));
        expect(after.code).toBe(1);
        expect(after.out).toContain("not shipped");
        // A failure since does not unship what the last success sent.
        writeMarker(d, "offsite-last-failure", { time: S + 60, reason: "down" });
        expect(shipped(String(S)).code).toBe(0);
        expect(shipped("yesterday").code).toBe(1);
    });

    it("check: fresh passes; stale, failed after the last success, or never uploaded after the grace period fail", () => {
        const d = dir("check");
        const check = (at: number, env: Env = {}) => offsite(["check"], { backupDir: d, host: "x", env: { VPS_STACK_NOW: String(at), ...env } });
        const backupCheck = (at: number, env: Env = {}) =>
            spawnSync("sh", [BACKUP_SCRIPT, "check"], {
                env: { PATH: process.env.PATH!, BACKUP_DIR: d, BACKUP_PREFIX: "test-app", MAX_AGE_HOURS: "1000", OFFSITE: "1", VPS_STACK_NOW: String(at), ...env },
                encoding: "utf8",
            });
        writeMarker(d, "last-success", { time: S, file: "test-app-x.dump", size: 1 });

        // Never uploaded: grace from the first start, then a failure.
        writeMarker(d, ".offsite-installed", { time: S });
        expect(check(S + 100).out).toContain("OK: no upload yet");
        expect(check(S + 100).code).toBe(0);
        const never = check(S + 151);
        expect(never.code).toBe(1);
        expect(never.out).toContain("FAIL: no successful upload");
        expect(backupCheck(S + 100).status).toBe(0);
        expect(backupCheck(S + 601).stdout).toContain("FAIL: no successful off-site upload");

        writeMarker(d, "offsite-last-success", { started: S, finished: S + 2, snapshot: "abcd1234", added: 10, seconds: 2 });
        const fresh = check(S + 10);
        expect(fresh.code).toBe(0);
        expect(fresh.out).toContain("OK: last off-site upload 10s ago, snapshot abcd1234");
        // MAX_UPLOAD_AGE defaults to 3 intervals and a minute: 150 s for 30 s uploads.
        expect(check(S + 150).code).toBe(0);
        const stale = check(S + 151);
        expect(stale.code).toBe(1);
        expect(stale.out).toContain("started 151s ago; the limit is 150s");
        expect(check(S + 151, { UPLOAD_INTERVAL: "100" }).code).toBe(0);
        expect(check(S + 151, { MAX_UPLOAD_AGE: "1000" }).code).toBe(0);
        // The backup container: OFFSITE_MAX_AGE (600 s by default); without OFFSITE it does not look.
        expect(backupCheck(S + 600).status).toBe(0);
        expect(backupCheck(S + 600).stdout).toContain("OK: last off-site upload 600s ago");
        const bstale = backupCheck(S + 601);
        expect(bstale.status).toBe(1);
        expect(bstale.stdout).toContain("FAIL: the last successful off-site upload started 601s ago; the limit is 600s");
        expect(backupCheck(S + 601, { OFFSITE_MAX_AGE: "3600" }).status).toBe(0);
        expect(backupCheck(S + 5000, { OFFSITE: "", MAX_AGE_HOURS: "1000" }).status).toBe(0);

        // A failure before the last success is old news; one after it is the latest.
        writeMarker(d, "offsite-last-failure", { time: S + 1, iso: "2026-09-21T12:26:41Z", reason: "connection refused" });
        expect(check(S + 10).code).toBe(0);
        expect(backupCheck(S + 10).status).toBe(0);
        writeMarker(d, "offsite-last-failure", { time: S + 30, iso: "2026-09-21T12:27:10Z", reason: "connection refused" });
        const failed = check(S + 40);
        expect(failed.code).toBe(1);
        expect(failed.out).toContain("FAIL: the last off-site upload failed at 2026-09-21T12:27:10Z: connection refused");
        const bfailed = backupCheck(S + 40);
        expect(bfailed.status).toBe(1);
        expect(bfailed.stdout).toContain("FAIL: the last off-site upload failed at 2026-09-21T12:27:10Z: connection refused");
        fs.rmSync(path.join(d, "offsite-last-failure"));

        // A verification that found damage fails the check until one passes.
        writeMarker(d, "offsite-last-verify-success", { time: S - 100 });
        writeMarker(d, "offsite-last-verify-failure", { time: S - 50, iso: "x", reason: "Pack ID does not match" });
        expect(check(S + 10).out).toContain("FAIL: the last verification of the off-site store failed at x: Pack ID does not match");
        writeMarker(d, "offsite-last-verify-success", { time: S });
        expect(check(S + 10).code).toBe(0);
    });
});

describe("the scheduler", () => {
    /** Starts `schedule` detached (its own process group), its output in a log file. */
    function schedule(d: string, host: string, env: Env) {
        const logFile = path.join(root, `schedule-${host}.log`);
        const fd = fs.openSync(logFile, "a");
        const child = spawn("sh", [SCRIPT, "schedule"], { env: envFor({ backupDir: d, host, env }), stdio: ["ignore", fd, fd], detached: true });
        fs.closeSync(fd);
        children.push(child);
        const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
        /** SIGTERM, then the exit code and how long it took (at most 5 s is waited for). */
        const term = async () => {
            const t0 = Date.now();
            process.kill(child.pid!, "SIGTERM");
            let timer: NodeJS.Timeout | undefined;
            const code = await Promise.race([exited, new Promise<string>((resolve) => (timer = setTimeout(() => resolve("timeout"), 5_000)))]);
            clearTimeout(timer);
            return { code, ms: Date.now() - t0 };
        };
        return { log: () => read(logFile), term };
    }

    it("stops within 2 s of SIGTERM while it sleeps between uploads", async () => {
        const d = dir("sleeping");
        fs.writeFileSync(path.join(d, "test-app-20261101T020000Z.dump"), "x");
        const s = schedule(d, "sleeping", { UPLOAD_INTERVAL: "60" });
        await eventually(async () => s.log(), (l) => l.includes("forget ok"), 30_000);
        const { code, ms } = await s.term();
        expect(code).toBe(0);
        expect(ms).toBeLessThan(2_000);
        expect(s.log()).toContain("scheduler: stopping (signal)");
    }, 60_000);

    it("starts an upload every UPLOAD_INTERVAL s, and stops within 2 s of SIGTERM mid-upload without leaving a lock", async () => {
        const d = dir("schedule");
        fillBackupDir(d);
        const s = schedule(d, "schedule", { UPLOAD_INTERVAL: "2" });
        const starts: number[] = [];
        await eventually(
            async () => {
                const t = Number(marker(d, "offsite-last-success").started);
                if (t && !starts.includes(t)) starts.push(t);
                return starts.length;
            },
            (n) => n >= 6,
            40_000,
        );
        expect(starts.length).toBeGreaterThanOrEqual(6);
        // Every 2 s from start to start (whole seconds: ±1 at each end), not 2 s after each upload ended
        // (an upload of nothing new takes most of a second: 4 of them would add 3 s or so).
        expect(starts[5] - starts[1]).toBeGreaterThanOrEqual(7);
        expect(starts[5] - starts[1]).toBeLessThanOrEqual(9);
        expect(marker(d, ".offsite-installed").time).toMatch(/^\d+$/);
        expect(s.log()).toContain("forget ok");

        // Something big to upload, and the signal once the scheduler has started on it.
        fs.writeFileSync(path.join(d, "test-app-20261104T020000Z.dump"), crypto.randomBytes(60_000_000));
        const uploadsSoFar = s.log().split("upload of").length;
        await eventually(async () => s.log().split("upload of").length, (n) => n > uploadsSoFar, 10_000);
        const { code, ms } = await s.term();
        expect(code).toBe(0);
        expect(ms).toBeLessThan(2_000);
        expect(s.log()).toContain("scheduler: stopping (signal)");
        // restic stopped cleanly: no lock left in the repository, no restic left running.
        expect(await eventually(async () => store.list(BUCKET, "main/locks/"), (l) => l.length === 0, 5_000)).toEqual([]);
        expect(spawnSync("pgrep", ["-f", `restic .*${d}`], { encoding: "utf8" }).stdout.trim()).toBe("");
    }, 90_000);
});

describe("the scripts are clean", () => {
    it.each([
        ["shellcheck", ["-s", "sh", SCRIPT]],
        ["sh", ["-n", SCRIPT]],
        ["bash", ["-n", SCRIPT]],
        ["busybox", ["sh", "-n", SCRIPT]],
        ["shellcheck", ["-x", SEAWEEDFS_LIB]],
    ])("%s %j", (cmd, args) => {
        const r = spawnSync(tool(cmd, cmd === "shellcheck" ? "shellcheck" : cmd === "busybox" ? "busybox" : "bash"), args as string[], { encoding: "utf8" });
        expect(r.stdout + r.stderr).toBe("");
        expect(r.status).toBe(0);
    });
});
