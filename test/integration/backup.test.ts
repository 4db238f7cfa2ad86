// vps-stack-backup against a real PostgreSQL: backup → change → restore gives back the backed-up data;
// verification passes on a good dump and fails on a corrupted one; a failed backup leaves nothing and
// is reported; two runs never overlap; the max-age check fails on an old backup. Plus shellcheck.
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { PgServer, startPostgres } from "./postgres";
import { eventually, tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-backup.sh");
const PASSWORD = "Aa1bcdefghijklmnopqrstuvwxyz0123";

let pg: PgServer;
let dir: string;

function backup(args: string[], extra: Record<string, string> = {}) {
    const r = spawnSync("sh", [SCRIPT, ...args], {
        env: { ...pg.env, BACKUP_DIR: dir, BACKUP_PREFIX: "test-app", KEEP_DAILY: "7", KEEP_WEEKLY: "4", KEEP_MONTHLY: "6", MAX_AGE_HOURS: "26", ...extra },
        encoding: "utf8",
    });
    return { code: r.status, out: r.stdout + r.stderr };
}

/** A checksum of every table's full contents: equal checksums, equal data. */
function fingerprint(db = "app"): string {
    return pg.sql(
        "SELECT md5(string_agg(t || ':' || (xpath('/row/h/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(x::text, ''|'' ORDER BY x::text), '''')) AS h FROM %s x', t), false, true, '')))[1]::text, ',' ORDER BY t)) " +
            "FROM (SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) s",
        db,
    );
}

const dumps = () => fs.readdirSync(dir).filter((f) => /^test-app-\d{8}T\d{6}Z\.dump$/.test(f)).sort();
const marker = (name: string) => (fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name), "utf8") : "");

beforeAll(async () => {
    pg = await startPostgres(PASSWORD);
    pg.sql(`
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
        CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());
        CREATE TABLE orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), customer int REFERENCES customers, amount numeric(10,2));
        INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 500) g;
        INSERT INTO orders (customer, amount) SELECT 1 + g % 500, g * 1.5 FROM generate_series(1, 2000) g;
    `);
}, 120000);

afterAll(() => pg?.stop());

beforeEach(() => {
    dir = tempDir("backups");
});

describe("backup and restore", () => {
    it("restores exactly the backed-up state after the data changed", () => {
        const before = fingerprint();
        const run = backup(["run"]);
        expect(run.out).toContain("backup ok");
        expect(run.code).toBe(0);
        const [file] = dumps();
        expect(fs.readFileSync(path.join(dir, `${file}.sha256`), "utf8")).toMatch(new RegExp(`^[a-f0-9]{64}  ${file}\\n$`));
        expect(marker("last-success")).toContain(`file=${file}`);

        pg.sql("DELETE FROM orders WHERE amount > 100; UPDATE customers SET name = 'changed'; CREATE TABLE extra (x int);");
        expect(fingerprint()).not.toBe(before);

        const restore = backup(["restore", "latest", "--confirm"]);
        expect(restore.out).toContain("restore ok");
        expect(restore.code).toBe(0);
        expect(fingerprint()).toBe(before);
        // The restore went through a fresh copy that was swapped in; nothing is left over.
        expect(pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_%'")).toBe("0");
        // The safety dump of the changed state is kept beside the backups, outside retention.
        expect(fs.readdirSync(dir).filter((f) => f.includes("-pre-restore-") && f.endsWith(".dump"))).toHaveLength(1);
    });

    it("refuses to restore without --confirm and leaves the database alone", () => {
        expect(backup(["run"]).code).toBe(0);
        pg.sql("INSERT INTO customers (name) VALUES ('after backup')");
        const state = fingerprint();
        const r = backup(["restore"]);
        expect(r.code).not.toBe(0);
        expect(r.out).toContain("--confirm");
        expect(fingerprint()).toBe(state);
        pg.sql("DELETE FROM customers WHERE name = 'after backup'");
    });

    it("refuses to restore a dump whose checksum does not match", () => {
        expect(backup(["run"]).code).toBe(0);
        const [file] = dumps();
        fs.appendFileSync(path.join(dir, file), "garbage");
        const r = backup(["restore", file, "--confirm"]);
        expect(r.code).not.toBe(0);
        expect(r.out).toContain("checksum mismatch");
    });
});

describe("verification", () => {
    it("passes on a good dump and records what it found", () => {
        expect(backup(["run"]).code).toBe(0);
        const r = backup(["verify"]);
        expect(r.out).toContain("verification ok");
        expect(r.code).toBe(0);
        const m = marker("last-verify-success");
        expect(m).toMatch(/^tables=2$/m);
        expect(m).toMatch(/^rows=2500$/m);
        expect(m).toContain("public.customers=500");
        // The throwaway database is gone.
        expect(pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'vps_stack_verify_%'")).toBe("0");
        expect(backup(["check"]).code).toBe(0);
    });

    it("with an off-site copy, test-restores the dump fetched back from the store, not the local file", () => {
        expect(backup(["run"]).code).toBe(0);
        const [file] = dumps();
        const off = { OFFSITE: "1" };
        // Nothing fetched back yet: a loud failure, not a quiet fallback to the local copy.
        const none = backup(["verify"], off);
        expect([none.code, none.out]).toEqual([1, expect.stringContaining("no dump fetched back from the off-site copy")]);
        fs.mkdirSync(path.join(dir, "offsite-verify"));
        fs.copyFileSync(path.join(dir, file), path.join(dir, "offsite-verify", file));
        fs.copyFileSync(path.join(dir, `${file}.sha256`), path.join(dir, "offsite-verify", `${file}.sha256`));
        fs.writeFileSync(path.join(dir, "offsite-fetch"), `time=${Math.floor(Date.now() / 1000)}\nfile=${file}\n`);
        const ok = backup(["verify"], off);
        expect([ok.code, ok.out]).toEqual([0, expect.stringContaining("(the off-site copy)")]);
        expect(marker("last-verify-success")).toMatch(/^source=off-site$/m);
        expect(marker("last-verify-success")).toMatch(/^rows=2500$/m);
        // The local file is not what was read: damaged, the verification of the off-site copy still passes.
        fs.writeFileSync(path.join(dir, file), "damaged local copy");
        expect(backup(["verify"], off).code).toBe(0);
        // A fetched copy that is not the local dump (another checksum) fails.
        fs.writeFileSync(path.join(dir, "offsite-verify", `${file}.sha256`), `${"0".repeat(64)}  ${file}\n`);
        const differs = backup(["verify"], off);
        expect([differs.code, differs.out]).toEqual([1, expect.stringContaining("is not the local one")]);
        // A fetch two days old: the uploader's daily fetch is failing.
        fs.copyFileSync(path.join(dir, `${file}.sha256`), path.join(dir, "offsite-verify", `${file}.sha256`));
        fs.writeFileSync(path.join(dir, "offsite-fetch"), `time=${Math.floor(Date.now() / 1000) - 3 * 86400}\nfile=${file}\n`);
        expect(backup(["verify"], off).out).toContain("daily fetch fails");
    });

    it("fails loudly on a corrupted dump, and the check fails until a verification passes", () => {
        expect(backup(["run"]).code).toBe(0);
        const [file] = dumps();
        const p = path.join(dir, file);
        const bytes = fs.readFileSync(p);
        // Corrupt the data but keep the checksum consistent: only a real restore can tell.
        bytes.fill(0x41, Math.floor(bytes.length / 3), Math.floor(bytes.length / 3) + 4096);
        fs.writeFileSync(p, bytes);
        const sum = spawnSync("sha256sum", [p], { encoding: "utf8" }).stdout.split(" ")[0];
        fs.writeFileSync(`${p}.sha256`, `${sum}  ${file}\n`);
        const r = backup(["verify"]);
        expect(r.code).not.toBe(0);
        expect(r.out).toContain("verification FAILED");
        expect(marker("last-verify-failure")).toContain(`file=${file}`);
        const check = backup(["check"]);
        expect(check.code).toBe(1);
        expect(check.out).toContain("the last verification failed");
        expect(pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'vps_stack_verify_%'")).toBe("0");
    });
});

describe("failures are loud and leave nothing behind", () => {
    it("exits non-zero with the database down, keeps no partial file and leaves the last good marker", () => {
        expect(backup(["run"]).code).toBe(0);
        const good = marker("last-success");
        const before = fs.readdirSync(dir).sort();
        pg.stop();
        try {
            const r = backup(["run"]);
            expect(r.code).not.toBe(0);
            expect(r.out).toContain("backup FAILED");
        } finally {
            pg.start();
        }
        const after = fs.readdirSync(dir).filter((f) => f !== "last-failure").sort();
        expect(after).toEqual(before);
        expect(fs.readdirSync(dir).some((f) => f.includes("partial"))).toBe(false);
        expect(marker("last-success")).toBe(good);
        const check = backup(["check"]);
        expect(check.code).toBe(1);
        expect(check.out).toContain("the last backup failed");
        // The next good backup clears the alarm.
        expect(backup(["run"]).code).toBe(0);
        expect(backup(["check"]).code).toBe(0);
    });

    it("never runs two at once: a second run refuses while the first holds the lock", async () => {
        fs.mkdirSync(dir, { recursive: true });
        // The holder says when it has the lock: on a loaded machine flock can take longer than any fixed
        // wait, and a run that starts first would take the lock itself and pass for the wrong reason.
        const holder = spawn(tool("flock", "util-linux"), [path.join(dir, ".lock"), "sh", "-c", "echo locked; exec sleep 30"], {
            detached: true,
            stdio: ["ignore", "pipe", "ignore"],
        });
        let said = "";
        holder.stdout!.on("data", (d) => (said += d));
        try {
            expect(await eventually(async () => said, (s) => s.includes("locked"))).toContain("locked");
            const r = backup(["run"]);
            expect(r.code).toBe(75);
            expect(r.out).toContain("another backup");
            expect(dumps()).toEqual([]);
        } finally {
            // flock's child holds the lock too: end the whole group.
            process.kill(-holder.pid!, "SIGTERM");
        }
    });
});

describe("max-age check", () => {
    it("passes on a fresh backup and fails once it is older than the limit", () => {
        expect(backup(["run"]).code).toBe(0);
        const now = Math.floor(Date.now() / 1000);
        expect(backup(["check"], { VPS_STACK_NOW: String(now + 25 * 3600) }).code).toBe(0);
        const old = backup(["check"], { VPS_STACK_NOW: String(now + 27 * 3600) });
        expect(old.code).toBe(1);
        expect(old.out).toMatch(/is 27h old; the limit is 26h/);
    });

    it("fails when there never was a backup, after the installation grace period", () => {
        fs.writeFileSync(path.join(dir, ".installed"), `time=${Math.floor(Date.now() / 1000)}\n`);
        expect(backup(["check"]).code).toBe(0);
        expect(backup(["check"], { VPS_STACK_NOW: String(Math.floor(Date.now() / 1000) + 27 * 3600) }).code).toBe(1);
    });
});

describe("retention on a real run", () => {
    it("prunes old backups after a run and keeps foreign files", () => {
        for (const d of ["20200101", "20200102", "20200103"]) {
            fs.writeFileSync(path.join(dir, `test-app-${d}T020000Z.dump`), "old");
            fs.writeFileSync(path.join(dir, `test-app-${d}T020000Z.dump.sha256`), "x");
        }
        fs.writeFileSync(path.join(dir, "README.txt"), "mine");
        expect(backup(["run"], { KEEP_DAILY: "2", KEEP_WEEKLY: "0", KEEP_MONTHLY: "0" }).code).toBe(0);
        const names = fs.readdirSync(dir);
        expect(dumps()).toHaveLength(2);
        expect(names).toContain("test-app-20200103T020000Z.dump");
        expect(names).not.toContain("test-app-20200101T020000Z.dump");
        expect(names).not.toContain("test-app-20200101T020000Z.dump.sha256");
        expect(names).toContain("README.txt");
    });

    it("with OFFSITE=1 deletes only the backups an off-site upload has shipped", () => {
        const now = Math.floor(Date.now() / 1000);
        const dump = (day: string, mtime: number) => {
            for (const f of [`test-app-${day}T020000Z.dump`, `test-app-${day}T020000Z.dump.sha256`]) {
                fs.writeFileSync(path.join(dir, f), "old");
                fs.utimesSync(path.join(dir, f), mtime, mtime);
            }
        };
        dump("20200101", now - 3 * 86400);
        dump("20200102", now - 3 * 86400);
        // Changed after the last upload started: its current content is not off-site.
        dump("20200103", now - 100);
        fs.writeFileSync(path.join(dir, "offsite-last-success"), `started=${now - 1000}\nfinished=${now - 990}\nsnapshot=abcd1234\n`);
        const keepOne = { KEEP_DAILY: "1", KEEP_WEEKLY: "0", KEEP_MONTHLY: "0" };
        const run = backup(["run"], { ...keepOne, OFFSITE: "1" });
        expect(run.code).toBe(0);
        expect(run.out).toContain("retention: deleted test-app-20200101T020000Z.dump");
        expect(run.out).toContain("retention: kept test-app-20200103T020000Z.dump: not off-site yet");
        const names = fs.readdirSync(dir);
        expect(names).not.toContain("test-app-20200101T020000Z.dump");
        expect(names).not.toContain("test-app-20200102T020000Z.dump.sha256");
        expect(names).toContain("test-app-20200103T020000Z.dump");
        expect(names).toContain("test-app-20200103T020000Z.dump.sha256");

        // No upload ever succeeded: nothing goes.
        fs.rmSync(path.join(dir, "offsite-last-success"));
        const before = dumps();
        const none = backup(["run"], { ...keepOne, OFFSITE: "1" });
        expect(none.code).toBe(0);
        expect(dumps()).toEqual(expect.arrayContaining(before));
        expect(dumps()).toHaveLength(before.length + 1);

        // Without OFFSITE, retention is what it always was.
        expect(backup(["run"], keepOne).code).toBe(0);
        expect(dumps()).toHaveLength(1);
    });
});

describe("the scheduler", () => {
    /**
     * Runs the scheduler until `done` holds or `timeoutMs` passes. A run renames the dump into place
     * before it writes last-success, so stopping at the first dump can cut it off before the marker.
     */
    let schedulerLog = "";
    async function runScheduler(schedule: string, done: () => boolean, timeoutMs: number): Promise<string[]> {
        const child = spawn("sh", [SCRIPT, "schedule"], {
            env: { ...pg.env, BACKUP_DIR: dir, BACKUP_PREFIX: "test-app", BACKUP_SCHEDULE: schedule, VERIFY_SCHEDULE: "0 0 1 1 *", TZ: "UTC" },
            detached: true,
            stdio: ["ignore", "ignore", "pipe"],
        });
        schedulerLog = "";
        child.stderr!.on("data", (d) => (schedulerLog += d));
        try {
            await eventually(async () => done(), (v) => v, timeoutMs);
        } finally {
            process.kill(-child.pid!, "SIGTERM");
        }
        return dumps();
    }
    const nowMinute = () => Math.floor(Date.now() / 60_000) * 60;
    /** A schedule that matches neither this minute nor the next few: the scheduler itself never runs it. */
    const notNow = () => `${(new Date().getUTCMinutes() + 30) % 60} * * * *`;
    const ticked = (secondsAgo: number) => fs.writeFileSync(path.join(dir, ".scheduler-tick"), `time=${nowMinute() - secondsAgo}\n`);

    it("runs a backup when its cron expression matches the current minute, and records the installation", async () => {
        expect(await runScheduler("* * * * *", () => marker("last-success").includes("file=test-app-"), 20_000)).toHaveLength(1);
        expect(marker(".installed")).toMatch(/^time=\d+$/m);
        expect(marker("last-success")).toContain("file=test-app-");
    });

    it("does nothing when it does not match", async () => {
        expect(await runScheduler(notNow(), () => dumps().length > 0, 3_000)).toEqual([]);
    });

    // A host rebooted at backup time: PostgreSQL stops first, the dump fails, and without a catch-up the
    // check would fail until the next day's backup.
    it("at its start, takes again a backup that failed, and the check passes", async () => {
        expect(backup(["run"], { PGDATABASE: "no_such_database" }).code).toBe(1);
        expect(backup(["check"]).code).toBe(1);
        expect(await runScheduler(notNow(), () => marker("last-success").includes("file=test-app-"), 30_000)).toHaveLength(1);
        expect(schedulerLog).toMatch(/the last backup failed at .* \(pg_dump failed\): taking a backup now/);
        expect(marker("last-failure")).toBe("");
        expect(backup(["check"]).code).toBe(0);
    });

    it("at its start, takes again a backup that was killed before it could record anything", async () => {
        fs.writeFileSync(path.join(dir, ".run-started"), "time=1\niso=2026-11-30T02:00:01Z\n");
        expect(await runScheduler(notNow(), () => marker("last-success").includes("file=test-app-"), 30_000)).toHaveLength(1);
        expect(schedulerLog).toContain("the backup started at 2026-11-30T02:00:01Z was interrupted: taking a backup now");
        expect(fs.existsSync(path.join(dir, ".run-started"))).toBe(false);
    });

    it("at its start, takes a backup that fell due while it was not running (the host was down)", async () => {
        // The schedule matched a minute of the last two hours, when the scheduler last looked two hours ago.
        ticked(7200);
        expect(await runScheduler(notNow(), () => marker("last-success").includes("file=test-app-"), 30_000)).toHaveLength(1);
        expect(schedulerLog).toContain("a backup fell due while the scheduler was not running: taking a backup now");
        expect(Number(marker(".scheduler-tick").match(/^time=(\d+)$/m)?.[1])).toBeGreaterThanOrEqual(nowMinute() - 60);
    });

    it("at its start, takes nothing when nothing fell due, failed or was cut", async () => {
        ticked(60);
        expect(backup(["run"]).code).toBe(0);
        const before = dumps();
        // A catch-up backup of this small database takes well under a second: five would show one.
        // The schedule matches the minute it last looked at: done then, not missed.
        const tickMinute = new Date((nowMinute() - 60) * 1000).getUTCMinutes();
        expect(await runScheduler(`${tickMinute} * * * *`, () => dumps().length > before.length, 5_000)).toEqual(before);
        expect(schedulerLog).toContain("scheduled:");
        expect(schedulerLog).not.toContain("taking a backup now");
    });
});

describe("the script is clean", () => {
    it.each([
        ["shellcheck", ["-s", "sh", SCRIPT]],
        ["sh", ["-n", SCRIPT]],
        ["bash", ["-n", SCRIPT]],
        ["busybox", ["sh", "-n", SCRIPT]],
    ])("%s %j", (cmd, args) => {
        const r = spawnSync(tool(cmd, cmd === "shellcheck" ? "shellcheck" : cmd === "busybox" ? "busybox" : "bash"), args as string[], { encoding: "utf8" });
        expect(r.stdout + r.stderr).toBe("");
        expect(r.status).toBe(0);
    });

    it("computes the same retention under busybox sh (the alpine images' shell)", () => {
        const input = ["test-app-20261122T020000Z.dump", "test-app-20261121T020000Z.dump", "test-app-20261101T020000Z.dump"].join("\n") + "\n";
        const env = { PATH: process.env.PATH!, BACKUP_PREFIX: "test-app", KEEP_DAILY: "1", KEEP_WEEKLY: "1", KEEP_MONTHLY: "0", VPS_STACK_NOW: "1795500000" };
        const viaSh = spawnSync("sh", [SCRIPT, "retention"], { input, env, encoding: "utf8" }).stdout;
        const viaBusybox = spawnSync(tool("busybox", "busybox"), ["sh", SCRIPT, "retention"], { input, env, encoding: "utf8" }).stdout;
        expect(viaBusybox).toBe(viaSh);
        expect(viaSh).toBe("keep test-app-20261122T020000Z.dump\ndelete test-app-20261121T020000Z.dump\nkeep test-app-20261101T020000Z.dump\n");
    });
});

describe("app volumes", () => {
    it("archives each volume with its sha256, unpacks byte for byte, keeps the retention per volume, and the check follows", () => {
        const vols = tempDir("volumes");
        const files: Record<string, Buffer> = { "a.bin": crypto.randomBytes(50_000), "sub/b.txt": Buffer.from("hello\n") };
        for (const [rel, body] of Object.entries(files)) {
            fs.mkdirSync(path.dirname(path.join(vols, "api-uploads", rel)), { recursive: true });
            fs.writeFileSync(path.join(vols, "api-uploads", rel), body, { mode: 0o640 });
        }
        fs.mkdirSync(path.join(vols, "web-media"));
        fs.mkdirSync(path.join(dir, "volumes"));
        // Just installed: no dump due yet, so the check speaks of the volumes alone.
        fs.writeFileSync(path.join(dir, ".installed"), `time=${Math.floor(Date.now() / 1000)}\n`);
        // Old archives of api-uploads from ten days in a row: the daily retention keeps the newest 2.
        for (let d = 10; d < 20; d++) {
            for (const f of [`api-uploads-202601${d}T023000Z.tar.gz`, `api-uploads-202601${d}T023000Z.tar.gz.sha256`]) fs.writeFileSync(path.join(dir, "volumes", f), "old");
        }
        const env = { VOLUMES: "api-uploads web-media", VOLUMES_DIR: vols, KEEP_DAILY: "3", KEEP_WEEKLY: "0", KEEP_MONTHLY: "0" };
        const run = backup(["volumes"], env);
        expect([run.code, run.out]).toEqual([0, expect.stringContaining("volume api-uploads archived")]);
        const archives = fs.readdirSync(path.join(dir, "volumes")).filter((f) => f.endsWith(".tar.gz")).sort();
        expect(archives.filter((f) => f.startsWith("api-uploads-"))).toEqual(["api-uploads-20260118T023000Z.tar.gz", "api-uploads-20260119T023000Z.tar.gz", expect.stringMatching(/^api-uploads-\d{8}T\d{6}Z\.tar\.gz$/)]);
        expect(archives.filter((f) => f.startsWith("web-media-"))).toHaveLength(1);
        const newest = archives.filter((f) => f.startsWith("api-uploads-")).pop()!;
        const check = spawnSync("sha256sum", ["-c", `${newest}.sha256`], { cwd: path.join(dir, "volumes"), encoding: "utf8" });
        expect(check.status).toBe(0);
        const out = tempDir("unpacked");
        expect(spawnSync("tar", ["-xzf", path.join(dir, "volumes", newest), "-C", out]).status).toBe(0);
        for (const [rel, body] of Object.entries(files)) {
            expect(fs.readFileSync(path.join(out, rel)).equals(body)).toBe(true);
            expect(fs.statSync(path.join(out, rel)).mode & 0o777).toBe(0o640);
        }
        expect(backup(["check"], env).out).toContain("OK: app volumes (api-uploads web-media) archived");

        // A volume that is not mounted: loud, and the check fails until a good run.
        const bad = backup(["volumes"], { ...env, VOLUMES: "api-uploads gone" });
        expect([bad.code, bad.out]).toEqual([1, expect.stringContaining("volume gone is not mounted")]);
        const failing = backup(["check"], env);
        expect([failing.code, failing.out]).toEqual([1, expect.stringContaining("FAIL: the last archive of the app volumes failed")]);
        expect(backup(["volumes"], env).code).toBe(0);
        expect(backup(["check"], env).code).toBe(0);
    });
});
