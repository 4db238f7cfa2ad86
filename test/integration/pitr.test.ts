// vps-stack-backup's continuous WAL and point-in-time recovery against a real PostgreSQL: receive-wal
// streams segments with pg_receivewal and survives a server restart; wal-check follows it; base takes
// pg_basebackup tars with a correct start_wal, expires old ones and only the WAL they alone needed;
// pitr-restore-into recovers a new data directory to a timestamp (rows before it, none after) and to the
// end of the WAL (the last segment only in the receiver's .partial); the failures say what is wrong; the
// check watches the base backups. The WAL receiver, `base` and the latest restore run under busybox sh
// with busybox's tools first on PATH, as in the Alpine image.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PgServer, pgBinDir, startPostgres } from "./postgres";
import { eventually, freePort, tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-backup.sh");
const PASSWORD = "Aa1bcdefghijklmnopqrstuvwxyz0123";
const WAL_PASSWORD = "Wal1bcdefghijklmnopqrstuvwxyz987";
const SEGMENT = /^[0-9A-F]{24}$/;
const DAY = 86400;

let pg: PgServer;
/** The backup directory the receiver streams into (shared by the streaming, base and PITR tests). */
let dir: string;
/** busybox's applets (flock aside: Debian's busybox has none) ahead of PATH: the Alpine image's tools. */
let busyboxDir: string;
let receiver: ChildProcess | undefined;
let receiverLog: string;

/** Temporary directories this file made (restored data directories are tens of MB): removed in afterAll. */
const made: string[] = [];
function tmp(prefix: string): string {
    const d = tempDir(prefix);
    made.push(d);
    return d;
}

type Env = Record<string, string>;
const nowSecs = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The script's TMPDIR: private to this file, so that "no temporary directory left behind" does not count
 * another program's (the bench runs the same script) in /tmp. Traversable by the postgres user, who runs
 * the recovery server in a directory under it.
 */
let scratch = "";
function script(args: string[], opts: { dir?: string; env?: Env; busybox?: boolean } = {}) {
    if (!scratch) {
        scratch = tmp("pitr-tmpdir");
        fs.chmodSync(scratch, 0o711);
    }
    const env = { ...pg.env, BACKUP_DIR: opts.dir ?? dir, BACKUP_PREFIX: "test-app", TMPDIR: scratch, ...opts.env } as Env;
    if (opts.busybox) env.PATH = `${busyboxDir}:${env.PATH}`;
    const r = spawnSync(opts.busybox ? path.join(busyboxDir, "sh") : "sh", [SCRIPT, ...args], { env, encoding: "utf8", timeout: 120_000 });
    return { code: r.status, out: r.stdout + r.stderr, stdout: r.stdout };
}

const walFiles = (d = dir) => (fs.existsSync(path.join(d, "wal")) ? fs.readdirSync(path.join(d, "wal")).sort() : []);
const bases = (d = dir) => (fs.existsSync(path.join(d, "base")) ? fs.readdirSync(path.join(d, "base")).sort() : []);
const read = (p: string) => (fs.existsSync(p) ? fs.readFileSync(p, "utf8") : "");
const keyval = (text: string) => Object.fromEntries(text.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

function startReceiver() {
    receiverLog = path.join(tmp("wal-log"), "receiver.log");
    const fd = fs.openSync(receiverLog, "a");
    receiver = spawn(path.join(busyboxDir, "sh"), [SCRIPT, "receive-wal"], {
        env: { ...pg.env, PATH: `${busyboxDir}:${pg.env.PATH}`, BACKUP_DIR: dir, BACKUP_PREFIX: "test-app" },
        stdio: ["ignore", fd, fd],
        detached: true,
    });
    fs.closeSync(fd);
}

/** The pids of pg_receivewal processes writing into `d`. */
function receiversInto(d: string): number[] {
    return fs
        .readdirSync("/proc")
        .filter((e) => /^\d+$/.test(e))
        .filter((e) => {
            try {
                const argv = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
                return path.basename(argv[0]) === "pg_receivewal" && argv.includes(path.join(d, "wal"));
            } catch {
                return false;
            }
        })
        .map(Number);
}

async function walCheckIs(code: number, timeoutMs = 30_000) {
    return eventually(async () => script(["wal-check"]), (r) => r.code === code, timeoutMs);
}

/** Waits until the receiver has flushed everything the server has written so far. */
async function receiverCaughtUp() {
    const lsn = pg.sql("SELECT pg_current_wal_lsn()");
    const ok = await eventually(async () => pg.sql(`SELECT count(*) FROM pg_stat_replication WHERE flush_lsn >= '${lsn}'`, "postgres"), (v) => v === "1", 20_000);
    expect(ok).toBe("1");
    return lsn;
}

/** Starts PostgreSQL on a restored data directory (as the postgres user, another port), counts the rows by tag, stops it. */
async function restoredRows(data: string): Promise<Record<string, number>> {
    const bin = pgBinDir();
    const sock = tmp("pitr-sock");
    fs.chownSync(sock, ...postgresIds());
    const port = await freePort();
    const pgctl = (...args: string[]) => spawnSync("runuser", ["-u", "postgres", "--", path.join(bin, "pg_ctl"), "-D", data, "-w", ...args], { encoding: "utf8" });
    const started = pgctl("-l", path.join(sock, "log"), "-o", `-p ${port} -k ${sock} -c listen_addresses=''`, "start");
    if (started.status !== 0) throw new Error(`the restored server did not start: ${started.stdout}${started.stderr}${read(path.join(sock, "log"))}`);
    try {
        const q = (sql: string) => {
            const r = spawnSync(path.join(bin, "psql"), ["-h", sock, "-p", String(port), "-U", "postgres", "-d", "app", "-qAt", "-c", sql], { encoding: "utf8" });
            if (r.status !== 0) throw new Error(r.stderr);
            return r.stdout.trim();
        };
        // A primary, not a server still in recovery.
        expect(q("SELECT pg_is_in_recovery()")).toBe("f");
        const rows: Record<string, number> = {};
        for (const line of q("SELECT tag, count(*) FROM pitr_rows WHERE tag IN ('A', 'B') GROUP BY tag").split("\n").filter(Boolean)) {
            const [tag, n] = line.split("|");
            rows[tag] = Number(n);
        }
        return rows;
    } finally {
        pgctl("-m", "fast", "stop");
    }
}

function postgresIds(): [number, number] {
    const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
    return [id("-u"), id("-g")];
}

/** A directory the postgres user can reach, for restore targets. */
function restoreParent(): string {
    const p = tmp("pitr-target");
    fs.chmodSync(p, 0o755);
    return p;
}

function fakeBase(d: string, name: string, done: Record<string, string | number> | null) {
    const b = path.join(d, "base", name);
    fs.mkdirSync(b, { recursive: true });
    fs.writeFileSync(path.join(b, "base.tar"), "not a real tar");
    if (done) fs.writeFileSync(path.join(b, "done"), Object.entries(done).map(([k, v]) => `${k}=${v}\n`).join(""));
}

const pitrTemps = () => (scratch ? fs.readdirSync(scratch).filter((f) => f.startsWith("vps-stack-pitr.")) : []);

beforeAll(async () => {
    busyboxDir = tmp("busybox");
    const busybox = tool("busybox", "busybox");
    for (const applet of "sh awk basename cat chmod chown cp cut date dirname find grep head id kill ls mkdir mktemp mv printf rm sed sleep sort tail tar touch tr wc".split(" ")) {
        fs.symlinkSync(busybox, path.join(busyboxDir, applet));
    }
    pg = await startPostgres(PASSWORD);
    pg.sql(`CREATE ROLE vps_stack_wal LOGIN REPLICATION PASSWORD '${WAL_PASSWORD}'`);
    pg.sql("CREATE TABLE pitr_rows (id serial PRIMARY KEY, tag text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    // The same pgpass as the app user's line: host:port:*:user:password also matches replication.
    fs.appendFileSync(pg.env.PGPASSFILE!, `127.0.0.1:${pg.port}:*:vps_stack_wal:${WAL_PASSWORD}\n`);
    dir = tmp("pitr");
    startReceiver();
}, 120_000);

afterAll(() => {
    if (receiver && receiver.exitCode === null && receiver.signalCode === null) process.kill(-receiver.pid!, "SIGKILL");
    for (const pid of receiversInto(dir ?? "/nonexistent")) process.kill(pid, "SIGKILL");
    pg?.stop();
    for (const d of [...made, ...(pg ? [pg.dir] : [])]) fs.rmSync(d, { recursive: true, force: true });
});

describe("receive-wal and wal-check", () => {
    it("streams WAL into wal/ and wal-check passes while it runs", async () => {
        const ok = await walCheckIs(0);
        expect(ok.out).toContain("is active");
        pg.sql("INSERT INTO pitr_rows (tag) SELECT 'stream' FROM generate_series(1, 100)");
        const seg = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        pg.sql("SELECT pg_switch_wal()");
        // The finished segment, under its final name, and the receiver goes on in the next one.
        expect(await eventually(async () => walFiles(), (f) => f.includes(seg), 20_000)).toContain(seg);
        expect(walFiles().every((f) => SEGMENT.test(f.replace(/\.partial$/, "")) || /^[0-9A-F]{8}\.history$/.test(f))).toBe(true);
    }, 60_000);

    it("survives a server restart and resumes streaming", async () => {
        await walCheckIs(0);
        pg.stop();
        try {
            const down = script(["wal-check"]);
            expect(down.code).toBe(1);
            expect(down.out).toContain("FAIL: cannot ask");
            expect(await eventually(async () => read(receiverLog), (l) => l.includes("pg_receivewal exited"), 20_000)).toContain("pg_receivewal exited");
        } finally {
            pg.start();
        }
        await walCheckIs(0);
        expect(receiver!.exitCode).toBeNull();
        pg.sql("INSERT INTO pitr_rows (tag) SELECT 'after restart' FROM generate_series(1, 100)");
        const seg = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        pg.sql("SELECT pg_switch_wal()");
        expect(await eventually(async () => walFiles(), (f) => f.includes(seg), 20_000)).toContain(seg);
    }, 90_000);
});

describe("base backups", () => {
    it("writes base.tar, backup_manifest and a done marker with the right start_wal, under busybox", async () => {
        await walCheckIs(0);
        const r = script(["base"], { busybox: true });
        expect(r.out).toContain("base backup ok");
        expect(r.code).toBe(0);
        // The base backup's checkpoint is the server's latest: its redo segment is where the backup starts.
        const redo = pg.sql("SELECT redo_wal_file FROM pg_control_checkpoint()");
        const names = bases();
        expect(names).toHaveLength(1);
        const [name] = names;
        expect(name).toMatch(/^test-app-\d{8}T\d{6}Z$/);
        const b = path.join(dir, "base", name);
        expect(fs.readdirSync(b).sort()).toEqual(["backup_manifest", "base.tar", "done"]);
        const done = keyval(read(path.join(b, "done")));
        expect(Object.keys(done).sort()).toEqual(["finished", "size", "start_wal", "started"]);
        expect(done.start_wal).toMatch(SEGMENT);
        expect(done.start_wal).toBe(redo);
        expect(Number(done.finished)).toBeGreaterThanOrEqual(Number(done.started));
        expect(Math.abs(Number(done.finished) - nowSecs())).toBeLessThan(60);
        expect(Number(done.size)).toBe(fs.statSync(path.join(b, "base.tar")).size + fs.statSync(path.join(b, "backup_manifest")).size);
        expect(keyval(read(path.join(dir, "last-base-success")))).toMatchObject({ name, start_wal: done.start_wal });
        expect(fs.existsSync(path.join(dir, "last-base-failure"))).toBe(false);

        const list = script(["list"]);
        expect(list.stdout).toContain(`base/${name}\t${done.size} bytes`);
        expect(list.stdout).toMatch(/^wal\/: \d+ segments, [0-9A-F]{24} \.\. [0-9A-F]{24}(\.partial)?$/m);
        const status = script(["status"], { env: { BASE_SCHEDULE: "0 1 * * *" } });
        expect(status.stdout).toContain("[last-base-success]");
        expect(status.stdout).toContain(`base/${name}`);
    }, 60_000);

    it("keeps the base backups of the last PITR_DAYS days and the WAL from the oldest kept one on", () => {
        const d = tmp("pitr-retention");
        const now = nowSecs();
        fakeBase(d, "test-app-20200101T000000Z", { started: now - 10 * DAY, finished: now - 10 * DAY, start_wal: "000000010000000000000001", size: 1 });
        fakeBase(d, "test-app-20200102T000000Z", { started: now - 3 * DAY, finished: now - 3 * DAY, start_wal: "000000010000000000000002", size: 1 });
        fakeBase(d, "test-app-20200103T000000Z", null); // no done marker: not a base backup, never touched
        fs.mkdirSync(path.join(d, "base", ".test-app-20200104T000000Z.partial")); // left by a killed run
        const wal = path.join(d, "wal");
        fs.mkdirSync(wal);
        const fakeWal = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003", "000000010000000100000000", "000000010000000100000001.partial", "00000002.history"];
        for (const f of fakeWal) fs.writeFileSync(path.join(wal, f), "");

        const first = script(["base"], { dir: d, env: { PITR_DAYS: "7" } });
        expect(first.code).toBe(0);
        const [real1] = bases(d).filter((n) => !n.startsWith("test-app-2020"));
        expect(bases(d)).toEqual(["test-app-20200102T000000Z", "test-app-20200103T000000Z", real1]);
        expect(first.out).toContain("retention: deleted base backup test-app-20200101T000000Z");
        // The 3-day-old base backup starts at ...02: only what is before it goes.
        expect(walFiles(d)).toEqual(fakeWal.filter((f) => f !== "000000010000000000000001").sort());

        // Eight days later: the 3-day-old one and the first real one are out of the window.
        const later = script(["base"], { dir: d, env: { PITR_DAYS: "7", VPS_STACK_NOW: String(now + 8 * DAY) } });
        expect(later.code).toBe(0);
        const left = bases(d);
        expect(left).toHaveLength(2);
        expect(left).toContain("test-app-20200103T000000Z");
        expect(left).not.toContain(real1);
        const newest = keyval(read(path.join(d, "base", left.find((n) => !n.startsWith("test-app-2020"))!, "done")));
        expect(newest.finished).toBe(String(now + 8 * DAY));
        // The newest starts at the server's current segment (log 0, below ...0100000000): the WAL before it goes.
        expect(newest.start_wal < "000000010000000100000000").toBe(true);
        expect(walFiles(d)).toEqual(["000000010000000100000000", "000000010000000100000001.partial", "00000002.history"]);
    }, 60_000);

    it("with OFFSITE=1 expires only the base backups and the WAL an off-site upload has shipped", () => {
        // The server's WAL well past the fake segments below, so that the real base backups start after them.
        for (let i = 0; i < 3; i++) pg.sql("INSERT INTO pitr_rows (tag) VALUES ('offsite'); SELECT pg_switch_wal()");
        const d = tmp("pitr-offsite");
        const now = nowSecs();
        const age = (p: string, mtime: number) => {
            if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) age(path.join(p, e), mtime);
            fs.utimesSync(p, mtime, mtime);
        };
        fakeBase(d, "test-app-20200101T000000Z", { started: now - 10 * DAY, finished: now - 10 * DAY, start_wal: "000000010000000000000001", size: 1 });
        fakeBase(d, "test-app-20200102T000000Z", { started: now - 9 * DAY, finished: now - 9 * DAY, start_wal: "000000010000000000000002", size: 1 });
        fakeBase(d, "test-app-20200103T000000Z", { started: now - 3 * DAY, finished: now - 3 * DAY, start_wal: "000000010000000000000003", size: 1 });
        age(path.join(d, "base", "test-app-20200101T000000Z"), now - 10 * DAY);
        // Written after the last upload started (a copy put back by hand, say): not off-site.
        age(path.join(d, "base", "test-app-20200102T000000Z"), now - 60);
        const wal = path.join(d, "wal");
        fs.mkdirSync(wal);
        for (const f of ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"]) {
            fs.writeFileSync(path.join(wal, f), "");
            age(path.join(wal, f), now - 10 * DAY);
        }
        const shippedAt = (t: number) => fs.writeFileSync(path.join(d, "offsite-last-success"), `started=${t}\nfinished=${t + 5}\nsnapshot=abcd1234\n`);
        shippedAt(now - 3600);
        const base = () => script(["base"], { dir: d, env: { PITR_DAYS: "7", OFFSITE: "1" } });

        const first = base();
        expect(first.code).toBe(0);
        expect(first.out).toContain("retention: deleted base backup test-app-20200101T000000Z");
        expect(first.out).toContain("retention: kept base backup test-app-20200102T000000Z: not off-site yet");
        expect(bases(d).filter((n) => n.startsWith("test-app-2020"))).toEqual(["test-app-20200102T000000Z", "test-app-20200103T000000Z"]);
        // The oldest kept base starts at ...02: ...01 goes, and it was shipped.
        expect(walFiles(d)).toEqual(["000000010000000000000002", "000000010000000000000003"]);

        // Now the base is off-site, but the WAL before the next oldest was written since the upload.
        age(path.join(d, "base", "test-app-20200102T000000Z"), now - 9 * DAY);
        age(path.join(wal, "000000010000000000000002"), now);
        const second = base();
        expect(second.code).toBe(0);
        expect(second.out).toContain("retention: deleted base backup test-app-20200102T000000Z");
        expect(second.out).toContain("retention: kept the WAL before 000000010000000000000003: not off-site yet");
        expect(walFiles(d)).toEqual(["000000010000000000000002", "000000010000000000000003"]);

        // An upload that started after it: the cleanup goes ahead.
        shippedAt(now + 2);
        const third = base();
        expect(third.code).toBe(0);
        expect(third.out).toContain("retention: WAL before 000000010000000000000003 removed");
        expect(walFiles(d)).toEqual(["000000010000000000000003"]);
    }, 60_000);

    it("fails loudly without leaving anything, and has its own lock", async () => {
        const d = tmp("pitr-basefail");
        const r = script(["base"], { dir: d, env: { PGPORT: "1" } });
        expect(r.code).toBe(1);
        expect(r.out).toContain("base backup FAILED: pg_basebackup failed");
        expect(bases(d)).toEqual([]);
        expect(keyval(read(path.join(d, "last-base-failure"))).reason).toBe("pg_basebackup failed");
        // A failure after pg_basebackup wrote everything (here: backup_label cannot be read) keeps nothing either.
        const broken = tmp("pitr-broken-tar");
        fs.writeFileSync(path.join(broken, "tar"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
        const late = script(["base"], { dir: d, env: { PATH: `${broken}:${pg.env.PATH}` } });
        expect(late.code).toBe(1);
        expect(late.out).toContain("base backup FAILED: cannot read backup_label in base.tar");
        expect(bases(d)).toEqual([]);

        // A base backup running (its lock held) stops a second one; a dump running (the dumps' lock) does not.
        const hold = (lockName: string) => {
            const holder = spawn(tool("flock", "util-linux"), [path.join(d, lockName), "sh", "-c", "echo locked; exec sleep 30"], { detached: true, stdio: ["ignore", "pipe", "ignore"] });
            let said = "";
            holder.stdout!.on("data", (c) => (said += c));
            return { holder, locked: () => eventually(async () => said, (s) => s.includes("locked")) };
        };
        const base = hold(".lock-base");
        try {
            await base.locked();
            const second = script(["base"], { dir: d });
            expect(second.code).toBe(75);
            expect(second.out).toContain("another base backup is running");
        } finally {
            process.kill(-base.holder.pid!, "SIGTERM");
        }
        const dump = hold(".lock");
        try {
            await dump.locked();
            const ok = script(["base"], { dir: d });
            expect(ok.code).toBe(0);
        } finally {
            process.kill(-dump.holder.pid!, "SIGTERM");
        }
        // The success clears the failure.
        expect(fs.existsSync(path.join(d, "last-base-failure"))).toBe(false);
    }, 60_000);
});

describe("the scheduler", () => {
    it.each([
        ["when BASE_SCHEDULE matches", "* * * * *"],
        // Point-in-time recovery starts at a base backup: a new stack must not wait for 01:00.
        ["at once when there is none, without waiting for BASE_SCHEDULE", "0 0 1 1 *"],
    ])("takes a base backup %s", async (_what, baseSchedule) => {
        const d = tmp("pitr-schedule");
        const child = spawn("sh", [SCRIPT, "schedule"], {
            env: { ...pg.env, BACKUP_DIR: d, BACKUP_PREFIX: "test-app", BACKUP_SCHEDULE: "0 0 1 1 *", VERIFY_SCHEDULE: "0 0 1 1 *", BASE_SCHEDULE: baseSchedule, TZ: "UTC" },
            detached: true,
            stdio: "ignore",
        });
        try {
            await eventually(async () => read(path.join(d, "last-base-success")), (m) => m.includes("name=test-app-"), 30_000);
        } finally {
            process.kill(-child.pid!, "SIGTERM");
        }
        expect(bases(d)).toHaveLength(1);
        expect(fs.readdirSync(d).filter((f) => f.endsWith(".dump"))).toEqual([]);
    }, 60_000);

    // A reboot during the nightly base backup: without this, point-in-time recovery would rest on a base
    // backup a day older than it should, and the check would fail until the next night.
    it.each([
        ["failed", "the last base backup failed at", (d: string) => expect(script(["base"], { dir: d, env: { PGPORT: "1" } }).code).toBe(1)],
        ["was interrupted", "a base backup was interrupted", (d: string) => fs.mkdirSync(path.join(d, "base", ".test-app-20261130T010000Z.partial"))],
    ])("at its start, takes again a base backup that %s", async (_what, said, spoil) => {
        const d = tmp("pitr-catch-up");
        expect(script(["base"], { dir: d }).code).toBe(0);
        spoil(d);
        let log = "";
        const child = spawn("sh", [SCRIPT, "schedule"], {
            env: { ...pg.env, BACKUP_DIR: d, BACKUP_PREFIX: "test-app", BACKUP_SCHEDULE: "0 0 1 1 *", VERIFY_SCHEDULE: "0 0 1 1 *", BASE_SCHEDULE: "0 0 1 1 *", TZ: "UTC" },
            detached: true,
            stdio: ["ignore", "ignore", "pipe"],
        });
        child.stderr!.on("data", (c) => (log += c));
        const complete = () => bases(d).filter((b) => !b.startsWith("."));
        try {
            // Done when the success is recorded: the base directory is renamed into place just before.
            await eventually(async () => complete().length === 2 && !fs.existsSync(path.join(d, "last-base-failure")), (v) => v, 30_000);
        } finally {
            process.kill(-child.pid!, "SIGTERM");
        }
        expect(complete()).toHaveLength(2);
        expect(log).toContain(said);
        expect(log).toContain("taking a base backup now");
        expect(fs.existsSync(path.join(d, "last-base-failure"))).toBe(false);
        expect(bases(d).filter((f) => f.endsWith(".partial"))).toEqual([]);
    }, 60_000);
});

describe("pitr-restore-into", () => {
    it("recovers to a timestamp (rows before it, none after) and to the end of the WAL from the .partial segment", async () => {
        await walCheckIs(0);
        const b = script(["base"]);
        expect(b.code).toBe(0);
        const finished = Number(keyval(read(path.join(dir, "last-base-success"))).time);
        // A target strictly after the second in which the base backup finished.
        await eventually(async () => nowSecs(), (t) => t > finished, 5_000);
        pg.sql("INSERT INTO pitr_rows (tag) SELECT 'A' FROM generate_series(1, 50)");
        await sleep(300);
        const T = pg.sql("SELECT clock_timestamp()");
        await sleep(300);
        pg.sql("INSERT INTO pitr_rows (tag) SELECT 'B' FROM generate_series(1, 70)");
        const lsn = await receiverCaughtUp();
        // No switch after B: its commit is only in the segment the receiver is still writing.
        const seg = pg.sql(`SELECT pg_walfile_name('${lsn}')`);
        expect(walFiles()).toContain(`${seg}.partial`);
        expect(walFiles()).not.toContain(seg);
        const before = pitrTemps();

        const parent = restoreParent();
        const toT = script(["pitr-restore-into", path.join(parent, "at-t"), "--to", T]);
        expect(toT.out).toContain("point-in-time restore ok");
        expect(toT.code).toBe(0);
        expect(toT.stdout).toContain(`target=${T}`);
        expect(await restoredRows(path.join(parent, "at-t"))).toEqual({ A: 50 });

        const latest = script(["pitr-restore-into", path.join(parent, "latest")], { busybox: true });
        expect(latest.out).toContain("point-in-time restore ok");
        expect(latest.code).toBe(0);
        expect(latest.stdout).toContain("target=latest");
        expect(await restoredRows(path.join(parent, "latest"))).toEqual({ A: 50, B: 70 });
        // Recovery settings were never written into the restored directory, and the staging is gone.
        expect(read(path.join(parent, "latest", "postgresql.auto.conf"))).not.toContain("restore_command");
        expect(fs.existsSync(path.join(parent, "latest", "recovery.signal"))).toBe(false);
        expect(pitrTemps()).toEqual(before);
    }, 120_000);

    it("refuses a target before the only base backup, and when there is no base backup", () => {
        const parent = restoreParent();
        const empty = tmp("pitr-empty");
        const none = script(["pitr-restore-into", path.join(parent, "none")], { dir: empty });
        expect(none.code).toBe(1);
        expect(none.out).toContain("no complete base backup");

        const one = tmp("pitr-one");
        expect(script(["base"], { dir: one }).code).toBe(0);
        const [newest] = bases(one);
        const early = script(["pitr-restore-into", path.join(parent, "early"), "--to", "2020-01-01 00:00:00+00"], { dir: one });
        expect(early.code).toBe(1);
        expect(early.out).toContain(`no base backup finished before 2020-01-01 00:00:00+00 (the oldest, ${newest}`);
        expect(fs.readdirSync(path.join(parent, "early"))).toEqual([]);

        const garbled = script(["pitr-restore-into", path.join(parent, "garbled"), "--to", "the day before"], { dir: one });
        expect(garbled.code).toBe(1);
        expect(garbled.out).toContain("cannot read the time 'the day before'");
    });

    it("says no WAL reaches a target beyond the end of the WAL, and cleans up after itself", async () => {
        await walCheckIs(0);
        expect(script(["base"]).code).toBe(0);
        const parent = restoreParent();
        const before = pitrTemps();
        const future = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
        const r = script(["pitr-restore-into", path.join(parent, "future"), "--to", future]);
        expect(r.code).toBe(1);
        expect(r.out).toContain(`point-in-time restore FAILED: no WAL reaches ${future}`);
        expect(r.out).toContain("recovery ended before configured recovery target was reached");
        expect(pitrTemps()).toEqual(before);
        // Nothing of the failed server is left running.
        expect(fs.existsSync(path.join(parent, "future", "postmaster.pid"))).toBe(false);
    }, 60_000);
});

describe("the check watches base backups when BASE_SCHEDULE is set", () => {
    it("passes while fresh, fails when stale, missing after the grace period, or after a failure", () => {
        const d = tmp("pitr-check");
        const now = nowSecs();
        const marker = (name: string, kv: Record<string, string | number>) => fs.writeFileSync(path.join(d, name), Object.entries(kv).map(([k, v]) => `${k}=${v}\n`).join(""));
        marker("last-success", { time: now, file: "test-app-x.dump", size: 1 });
        const check = (env: Env = {}) => script(["check"], { dir: d, env: { BASE_SCHEDULE: "0 1 * * *", MAX_AGE_HOURS: "1000", ...env } });

        // No schedule, no base check.
        expect(check({ BASE_SCHEDULE: "" }).code).toBe(0);
        marker(".installed", { time: now });
        const grace = check();
        expect(grace.code).toBe(0);
        expect(grace.out).toContain("no base backup yet");
        const missing = check({ VPS_STACK_NOW: String(now + 27 * 3600) });
        expect(missing.code).toBe(1);
        expect(missing.out).toContain("FAIL: no complete base backup");

        fakeBase(d, "test-app-20261130T010000Z", { started: now - 60, finished: now, start_wal: "000000010000000000000002", size: 1 });
        const fresh = check();
        expect(fresh.code).toBe(0);
        expect(fresh.out).toContain("newest base backup test-app-20261130T010000Z");
        expect(check({ VPS_STACK_NOW: String(now + 25 * 3600) }).code).toBe(0);
        const stale = check({ VPS_STACK_NOW: String(now + 27 * 3600) });
        expect(stale.code).toBe(1);
        expect(stale.out).toContain("FAIL: the newest base backup (test-app-20261130T010000Z) is 27h old; the limit is 26h");

        marker("last-base-success", { time: now - 100 });
        marker("last-base-failure", { time: now - 50, iso: "2026-11-30T00:59:10Z", reason: "pg_basebackup failed" });
        const failed = check();
        expect(failed.code).toBe(1);
        expect(failed.out).toContain("FAIL: the last base backup failed at 2026-11-30T00:59:10Z: pg_basebackup failed");
        // A failure older than the last success is old news.
        marker("last-base-success", { time: now });
        expect(check().code).toBe(0);
    });
});

describe("stopping the receiver", () => {
    it("stops at once on SIGTERM, with its pg_receivewal, and wal-check then fails", async () => {
        await walCheckIs(0);
        expect(receiversInto(dir)).toHaveLength(1);
        const exited = new Promise<number | null>((resolve) => receiver!.once("exit", (code) => resolve(code)));
        const t0 = Date.now();
        process.kill(receiver!.pid!, "SIGTERM");
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([exited, new Promise<string>((resolve) => (timer = setTimeout(() => resolve("timeout"), 5_000)))]);
        clearTimeout(timer);
        expect(code).toBe(0);
        expect(Date.now() - t0).toBeLessThan(5_000);
        expect(await eventually(async () => receiversInto(dir), (p) => p.length === 0, 5_000)).toEqual([]);
        expect(read(receiverLog)).toContain("stopping (signal)");
        const down = await walCheckIs(1, 15_000);
        expect(down.code).toBe(1);
        expect(down.out).toContain("exists but no WAL receiver is connected");
    }, 60_000);
});
