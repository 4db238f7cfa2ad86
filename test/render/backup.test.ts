// The backup script's pure parts (render/scripts/vps-stack-backup.sh), run for real through sh with
// table-driven inputs: retention, and cron matching fed what cron-parser expands. The BackupJob component:
// test/components/backup-job.test.ts; the script against a real PostgreSQL: test/integration.
import { spawnSync } from "child_process";
import * as fc from "fast-check";
import * as path from "path";
import { cronForScheduler } from "../../sinks/cron";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-backup.sh");

function script(args: string[], env: Record<string, string> = {}, input = "") {
    const r = spawnSync("sh", [SCRIPT, ...args], { input, env: { PATH: process.env.PATH!, ...env }, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------------
// retention
// ---------------------------------------------------------------------------------------------------

const iso = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
const name = (d: Date, prefix = "prod-app") => `${prefix}-${iso(d)}.dump`;
const at = (s: string) => new Date(s);

function daily(from: string, to: string, hour = "02:00:00"): Date[] {
    const out: Date[] = [];
    for (let d = at(`${from}T${hour}Z`); d <= at(`${to}T${hour}Z`); d = new Date(d.getTime() + 86400000)) out.push(d);
    return out;
}

function retention(names: string[], now: Date, keep: [number, number, number], prefix = "prod-app") {
    const input = [...names].sort().reverse().join("\n") + (names.length ? "\n" : "");
    const r = script(["retention"], {
        BACKUP_PREFIX: prefix,
        VPS_STACK_NOW: String(Math.floor(now.getTime() / 1000)),
        KEEP_DAILY: String(keep[0]),
        KEEP_WEEKLY: String(keep[1]),
        KEEP_MONTHLY: String(keep[2]),
    }, input);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim() === "" ? [] : r.stdout.trim().split("\n");
    const kept = lines.filter((l) => l.startsWith("keep ")).map((l) => l.slice(5)).sort();
    const deleted = lines.filter((l) => l.startsWith("delete ")).map((l) => l.slice(7)).sort();
    return { kept, deleted, lines };
}

const days = (...ds: string[]) => ds.map((d) => name(at(`${d}T02:00:00Z`))).sort();

describe("retention (pure, through sh)", () => {
    it("keeps exactly the expected set from a year of daily backups (7 daily, 4 weekly, 6 monthly)", () => {
        const year = daily("2026-01-01", "2026-12-31").map((d) => name(d));
        const { kept, deleted } = retention(year, at("2027-01-01T00:00:00Z"), [7, 4, 6]);
        expect(kept).toEqual(
            days(
                // daily: the last 7 days
                "2026-12-25", "2026-12-26", "2026-12-27", "2026-12-28", "2026-12-29", "2026-12-30", "2026-12-31",
                // weekly: the newest backup of the 4 ISO weeks before those (Sundays), borg-style
                "2026-12-20", "2026-12-13", "2026-12-06", "2026-11-29",
                // monthly: the newest backup of the 6 months before December
                "2026-11-30", "2026-10-31", "2026-09-30", "2026-08-31", "2026-07-31", "2026-06-30",
            ),
        );
        expect(kept.length + deleted.length).toBe(365);
    });

    it("expresses a long-retention plan: 30 daily, 12 weekly, 12 monthly", () => {
        const twoYears = daily("2025-01-01", "2026-12-31").map((d) => name(d));
        const { kept } = retention(twoYears, at("2027-01-01T00:00:00Z"), [30, 12, 12]);
        expect(kept).toHaveLength(30 + 12 + 12);
        expect(kept).toContain(name(at("2026-12-02T02:00:00Z"))); // 30th newest day
        expect(kept).not.toContain(name(at("2026-12-01T02:00:00Z"))); // a Tuesday: neither weekly nor monthly
        // December is covered by the daily rule, so the 12 monthly ones are Nov 2026 back to Dec 2025.
        expect(kept[0]).toBe(name(at("2025-12-31T02:00:00Z")));
        expect(kept).toContain(name(at("2026-09-13T02:00:00Z"))); // the 12th weekly: a Sunday
    });

    it("keeps only the newest backup of each day", () => {
        const names = [name(at("2026-11-22T02:00:00Z")), name(at("2026-11-22T14:30:00Z")), name(at("2026-11-21T02:00:00Z"))];
        const { kept, deleted } = retention(names, at("2026-11-23T00:00:00Z"), [7, 0, 0]);
        expect(kept).toEqual([name(at("2026-11-21T02:00:00Z")), name(at("2026-11-22T14:30:00Z"))]);
        expect(deleted).toEqual([name(at("2026-11-22T02:00:00Z"))]);
    });

    it("does nothing on an empty directory", () => {
        expect(retention([], at("2026-11-23T00:00:00Z"), [7, 4, 6]).lines).toEqual([]);
    });

    it("keeps files from the future and does not count them", () => {
        const names = [name(at("2099-01-01T00:00:00Z")), ...daily("2026-11-01", "2026-11-10").map((d) => name(d))];
        const { kept } = retention(names, at("2026-11-11T00:00:00Z"), [2, 0, 0]);
        expect(kept).toEqual([name(at("2026-11-09T02:00:00Z")), name(at("2026-11-10T02:00:00Z")), name(at("2099-01-01T00:00:00Z"))]);
    });

    it("never deletes foreign files, other stacks' backups or safety dumps", () => {
        const ours = daily("2026-11-01", "2026-11-10").map((d) => name(d));
        const foreign = [
            "notes.txt",
            name(at("2026-11-01T02:00:00Z"), "preprod-app"),
            "prod-app-pre-restore-20261101T020000Z.dump",
            "prod-app-20261101T020000Z.dump.sha256",
            "prod-app-2026110T020000Z.dump",
        ];
        const { kept, deleted, lines } = retention([...ours, ...foreign], at("2026-11-11T00:00:00Z"), [1, 0, 0]);
        expect(kept).toEqual([name(at("2026-11-10T02:00:00Z"))]);
        expect(deleted).toHaveLength(9);
        for (const f of foreign) expect(lines.join("\n")).not.toContain(f);
    });

    it("always keeps the newest backup", () => {
        const { kept } = retention([name(at("2026-01-01T02:00:00Z"))], at("2026-11-11T00:00:00Z"), [1, 0, 0]);
        expect(kept).toEqual([name(at("2026-01-01T02:00:00Z"))]);
    });

    it("for any backups and plan: decides each once, keeps the newest and at most daily+weekly+monthly, and is idempotent", () => {
        const now = at("2027-01-01T00:00:00Z");
        const DAY = 86400000;
        // Backups over two years (several a day possible) and a few from the future (a clock set wrong).
        const backup = fc.oneof(
            { weight: 9, arbitrary: fc.integer({ min: 1, max: 730 * 24 * 60 }).map((min) => new Date(now.getTime() - min * 60000)) },
            { weight: 1, arbitrary: fc.integer({ min: 1, max: 60 * DAY / 60000 }).map((min) => new Date(now.getTime() + min * 60000)) },
        );
        // The config asks for daily ≥ 1; the script also holds without it (the newest is kept regardless).
        const plan = fc.oneof(fc.tuple(fc.nat(40), fc.nat(15), fc.nat(15)), fc.constant<[number, number, number]>([0, 0, 0]));
        fc.assert(
            fc.property(fc.uniqueArray(backup, { maxLength: 120, selector: (d) => iso(d) }), plan, (dates, keep) => {
                const names = dates.map((d) => name(d));
                const { kept, deleted } = retention(names, now, keep);
                expect([...kept, ...deleted].sort()).toEqual([...names].sort());
                const past = dates.filter((d) => d <= now).sort((a, b) => a.getTime() - b.getTime());
                if (past.length > 0) expect(kept).toContain(name(past[past.length - 1]));
                // Future files are kept and not counted.
                for (const d of dates.filter((x) => x > now)) expect(kept).toContain(name(d));
                expect(kept.filter((n) => past.some((d) => name(d) === n)).length).toBeLessThanOrEqual(Math.max(1, keep[0] + keep[1] + keep[2]));
                // Run again on what is left (the next night, same clock): nothing more goes.
                expect(retention(kept, now, keep).deleted).toEqual([]);
            }),
            { numRuns: 60 },
        );
    });

    it("counts ISO weeks across a year boundary", () => {
        // 2026-12-31 (Thu) and 2027-01-03 (Sun) are both in ISO week 2026-W53.
        const names = [name(at("2026-12-31T02:00:00Z")), name(at("2027-01-03T02:00:00Z")), name(at("2027-01-04T02:00:00Z"))];
        const { kept } = retention(names, at("2027-01-05T00:00:00Z"), [1, 2, 0]);
        expect(kept).toEqual([name(at("2027-01-03T02:00:00Z")), name(at("2027-01-04T02:00:00Z"))]);
    });
});

// ---------------------------------------------------------------------------------------------------
// cron
// ---------------------------------------------------------------------------------------------------

describe("cron-match (pure, through sh), fed the lists cron-parser expands", () => {
    // [expression, minute, hour, day of month, month, day of week, matches]
    const cases: [string, number, number, number, number, number, boolean][] = [
        ["0 2 * * *", 0, 2, 15, 6, 3, true],
        ["0 2 * * *", 1, 2, 15, 6, 3, false],
        ["0 2 * * *", 0, 3, 15, 6, 3, false],
        ["*/15 * * * *", 30, 7, 1, 1, 0, true],
        ["*/15 * * * *", 31, 7, 1, 1, 0, false],
        ["0 4 * * 0", 0, 4, 5, 1, 0, true],
        ["0 4 * * 7", 0, 4, 5, 1, 0, true],
        ["0 4 * * 1-5", 0, 4, 5, 1, 0, false],
        ["0 4 * * 1-5", 0, 4, 6, 1, 1, true],
        ["30 1,13 * * *", 30, 13, 6, 1, 1, true],
        ["0 0 1 * *", 0, 0, 1, 6, 3, true],
        ["0 0 1 * *", 0, 0, 2, 6, 3, false],
        ["0 0 1 * 1", 0, 0, 2, 6, 1, true], // day of month OR day of week when both are set
        ["0 0 1 * 1", 0, 0, 2, 6, 2, false],
        ["0 0 * 2 *", 0, 0, 10, 2, 2, true],
        ["0 0 * 2 *", 0, 0, 10, 3, 2, false],
        ["5-10/5 * * * *", 10, 0, 1, 1, 1, true],
        ["5-10/5 * * * *", 7, 0, 1, 1, 1, false],
    ];
    it.each(cases)("%s at %i:%i dom=%i mon=%i dow=%i → %s", (expr, m, h, dom, mon, dow, expected) => {
        expect(script(["cron-match", cronForScheduler(expr), String(m), String(h), String(dom), String(mon), String(dow)]).code === 0).toBe(expected);
    });

    it.each(["*/15 * * * *", "0 22-4 * * *", "0 2 * * mon", "1-5 * * * *", "0 2 * *", "0 2 L * *"])("refuses an unexpanded expression (%s) instead of guessing", (expr) => {
        expect(script(["cron-match", expr, "0", "2", "1", "1", "1"]).code).toBe(2);
    });
});
