// The sinks: property-based tests (fast-check) throw arbitrary strings — quotes, backslashes, `$(…)`,
// newlines, unicode — at each escaping rule and read the result back with the target's own rules: a real
// sh for shell words, nginx's tokenizer rules for nginx arguments (a real nginx serves them in the
// integration suite), PostgreSQL's quoting rules for SQL, Docker's bind syntax, and cron-parser for cron.
import { spawnSync } from "child_process";
import * as path from "path";
import * as fc from "fast-check";
import { CronExpressionParser } from "cron-parser";
import { cronForScheduler, matchesDay, maxGapMinutes, parseCron, unwrapRanges } from "../../sinks/cron";
import { bindHostPathProblem, bindSpec, dockerEnv, HTTP_CHECK_SCRIPT, httpHealthTest } from "../../sinks/docker";
import { nginxString, nginxToken, nginxValueProblem, readNginxArgument } from "../../sinks/nginx";
import { shellCommand, shellWord } from "../../sinks/shell";
import { sqlIdentifier, sqlLiteral } from "../../sinks/sql";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-backup.sh");

/** Any unicode text, weighted towards the characters each sink treats specially. */
const nasty = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.string({ unit: fc.constantFrom("'", '"', "\\", "$", "(", ")", "`", ";", "&", "|", "{", "}", "#", " ", "\t", "\n", "\r", "*", "?", "~", "!", "a", "é", "😀", ":", ",", "-", "/", "%") }),
);
const noNul = nasty.filter((s) => !s.includes("\0"));

describe("shell sink", () => {
    it("reads back every word exactly, through a real sh (batches of words per run)", () => {
        fc.assert(
            fc.property(fc.array(noNul, { minLength: 1, maxLength: 20 }), (words) => {
                const r = spawnSync("sh", ["-c", `printf '%s\\0' ${shellCommand(words)}`], { encoding: "utf8" });
                expect(r.status).toBe(0);
                expect(r.stdout.split("\0").slice(0, -1)).toEqual(words);
            }),
            { numRuns: 150 },
        );
    });

    it("is the same under dash, bash and busybox sh", () => {
        const words = ["a b", "it's", "$(touch x)", "`id`", "back\\slash", "new\nline", "", "-n", "*", "~", "é😀"];
        for (const shell of [["dash"], ["bash"], ["busybox", "sh"]]) {
            const r = spawnSync(shell[0], [...shell.slice(1), "-c", `printf '%s\\0' ${shellCommand(words)}`], { encoding: "utf8" });
            expect(r.stdout.split("\0").slice(0, -1)).toEqual(words);
        }
    });

    it("leaves plain words bare (ordinary commands render as they always did) and refuses NUL", () => {
        expect(shellCommand(["pg_isready", "-h", "127.0.0.1", "-U", "app"])).toBe("pg_isready -h 127.0.0.1 -U app");
        expect(shellWord("")).toBe("''");
        expect(() => shellWord("a\0b")).toThrow(/NUL/);
    });
});

describe("nginx sink", () => {
    const acceptable = nasty.filter((s) => nginxValueProblem(s) === undefined);

    it("quotes any acceptable value into one argument that nginx's tokenizer reads back unchanged", () => {
        fc.assert(
            fc.property(acceptable, (v) => {
                const q = nginxString(v);
                expect(readNginxArgument(q)).toBe(v);
                expect(readNginxArgument(nginxToken(v))).toBe(v);
            }),
            { numRuns: 2000 },
        );
    });

    it("never lets a trailing backslash escape the closing quote (the header injection)", () => {
        const q = nginxString("x\\");
        expect(q).toBe('"x\\\\"');
        expect(readNginxArgument(q)).toBe("x\\");
    });

    it("refuses $ and control characters, which nginx would expand or cannot carry", () => {
        fc.assert(
            fc.property(nasty, (v) => {
                const bad = /[$\x00-\x1f\x7f]/.test(v);
                expect(nginxValueProblem(v) !== undefined).toBe(bad);
                if (bad) expect(() => nginxString(v)).toThrow(/nginx sink/);
            }),
            { numRuns: 1000 },
        );
    });

    it("writes ordinary paths, sizes and URLs bare", () => {
        for (const v of ["/usr/share/nginx/html", "100M", "60s", "10r/s", "http://app_api/health?deep=1&db=1", "api.example.com"]) expect(nginxToken(v)).toBe(v);
        expect(nginxToken("/srv/my site")).toBe('"/srv/my site"');
        expect(nginxToken("/usr/share/nginx/html; autoindex on")).toBe('"/usr/share/nginx/html; autoindex on"');
    });
});

describe("SQL sink", () => {
    /** PostgreSQL's lexer for one quoted token: the quote character doubled is the quote itself. */
    function unquote(token: string, q: "'" | '"'): string {
        expect(token.startsWith(q) && token.endsWith(q) && token.length >= 2).toBe(true);
        const body = token.slice(1, -1);
        expect(body.replace(new RegExp(`${q}${q}`, "g"), "")).not.toContain(q);
        return body.replace(new RegExp(`${q}${q}`, "g"), q);
    }

    it("round-trips literals and identifiers", () => {
        fc.assert(
            fc.property(noNul, (v) => {
                expect(unquote(sqlLiteral(v), "'")).toBe(v);
                if (v !== "" && Buffer.byteLength(v) <= 63) expect(unquote(sqlIdentifier(v), '"')).toBe(v);
            }),
            { numRuns: 1000 },
        );
    });

    it("refuses NUL, empty identifiers and identifiers PostgreSQL would truncate", () => {
        expect(() => sqlLiteral("a\0")).toThrow(/NUL/);
        expect(() => sqlIdentifier("")).toThrow(/empty/);
        expect(() => sqlIdentifier("é".repeat(32))).toThrow(/63 bytes/);
    });
});

describe("Docker sink", () => {
    it("builds bind specs that split back into exactly the two paths given", () => {
        fc.assert(
            fc.property(nasty, (tail) => {
                const host = `/var/backups/${tail}`;
                if (bindHostPathProblem(host)) {
                    expect(() => bindSpec(host, "/backups")).toThrow(/docker sink/);
                    return;
                }
                expect(bindSpec(host, "/backups").split(":")).toEqual([host, "/backups"]);
                expect(bindSpec(host, "/backups", true).split(":")).toEqual([host, "/backups", "ro"]);
            }),
            { numRuns: 1000 },
        );
    });

    it("names what breaks a bind spec", () => {
        expect(bindHostPathProblem("/srv/backups:rw")).toMatch(/":"/);
        expect(bindHostPathProblem("/srv/a,b")).toMatch(/","/);
        expect(bindHostPathProblem("/srv/../etc")).toMatch(/"\.\."/);
        expect(bindHostPathProblem("/srv/x\n")).toMatch(/control/);
        expect(bindHostPathProblem("/var/backups/vps-stack/prod")).toBeUndefined();
    });

    it("passes the health URL as sh's $1: any URL reaches curl as one argument, and nothing in it runs", () => {
        fc.assert(
            fc.property(noNul, (tail) => {
                const url = `http://127.0.0.1:8000/${tail}`;
                const test = httpHealthTest(url);
                expect(test.slice(0, 4)).toEqual(["CMD", "sh", "-c", HTTP_CHECK_SCRIPT]);
                // Docker runs test[1..] as argv; a stand-in curl prints what it was given.
                const script = test[3].replace("curl", "printf '%s\\0'").replace(/ \|\| .*/, "");
                const r = spawnSync(test[1], [test[2], script, ...test.slice(4)], { encoding: "utf8" });
                expect(r.stdout.split("\0").slice(0, -1)).toEqual(["-fsS", "-o", "/dev/null", url]);
            }),
            { numRuns: 150 },
        );
    });

    it("refuses environment entries Docker cannot carry", () => {
        expect(dockerEnv("A_B", "x=y z")).toBe("A_B=x=y z");
        expect(() => dockerEnv("A-B", "x")).toThrow(/not an environment variable name/);
        expect(() => dockerEnv("A", "x\0")).toThrow(/NUL/);
    });
});

describe("cron sink", () => {
    // Random 5-field expressions in the syntax we accept: lists of *, values, ranges and steps.
    const field = (lo: number, hi: number) =>
        fc
            .array(
                fc.oneof(
                    fc.constant("*"),
                    fc.integer({ min: lo, max: hi }).map(String),
                    fc.tuple(fc.integer({ min: lo, max: hi }), fc.integer({ min: lo, max: hi })).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
                    fc.tuple(fc.constantFrom("*", `${lo}-${hi}`), fc.integer({ min: 1, max: 8 })).map(([r, s]) => `${r}/${s}`),
                ),
                { minLength: 1, maxLength: 3 },
            )
            .map((items) => (items.includes("*") && items.length > 1 ? items.filter((i) => i !== "*").join(",") || "*" : items.join(",")));
    const expression = fc.tuple(field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 6)).map((f) => f.join(" "));
    const minute = fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2040-12-31T23:59:00Z"), noInvalidDate: true }).map((d) => new Date(Math.floor(d.getTime() / 60000) * 60000));

    function valid(expr: string) {
        try {
            CronExpressionParser.parse(expr, { tz: "UTC" });
            return "schedule" in parseCron(expr);
        } catch {
            return false;
        }
    }

    it("matches exactly the minutes cron-parser matches (the expanded lists carry the library's semantics)", () => {
        fc.assert(
            fc.property(expression.filter(valid), minute, (expr, at) => {
                const lib = CronExpressionParser.parse(expr, { tz: "UTC" }).includesDate(at);
                const r = parseCron(expr);
                if (!("schedule" in r)) throw new Error(r.problem);
                const s = r.schedule;
                const ours = s.minute.includes(at.getUTCMinutes()) && s.hour.includes(at.getUTCHours()) && matchesDay(s, at.getUTCDate(), at.getUTCMonth() + 1, at.getUTCDay());
                expect(ours).toBe(lib);
            }),
            { numRuns: 800 },
        );
    });

    it("the shell scheduler agrees with cron-parser on the expanded lists", () => {
        fc.assert(
            fc.property(expression.filter(valid), minute, (expr, at) => {
                const lib = CronExpressionParser.parse(expr, { tz: "UTC" }).includesDate(at);
                const args = [at.getUTCMinutes(), at.getUTCHours(), at.getUTCDate(), at.getUTCMonth() + 1, at.getUTCDay()].map(String);
                const r = spawnSync("sh", [SCRIPT, "cron-match", cronForScheduler(expr), ...args], { encoding: "utf8" });
                expect(r.status === 0).toBe(lib);
            }),
            { numRuns: 200 },
        );
    });

    it("measures the longest gap between runs as cron-parser's own iteration does", () => {
        for (const expr of ["0 2 * * *", "0 2 * * 0", "30 1,13 * * *", "0 2 1 * *", "0 0 */2 * *", "0 2 * * 1-5", "0 2 1 * 1", "15 3 * 2 *"]) {
            const r = parseCron(expr);
            if (!("schedule" in r)) throw new Error(r.problem);
            const it = CronExpressionParser.parse(expr, { tz: "UTC", currentDate: new Date("2001-01-01T00:00:00Z") });
            let prev = it.next().getTime();
            let gap = 0;
            for (let i = 0; i < 900; i++) {
                const t = it.next().getTime();
                gap = Math.max(gap, (t - prev) / 60000);
                prev = t;
            }
            expect([expr, maxGapMinutes(r.schedule)]).toEqual([expr, gap]);
        }
    });

    it("rewrites a range across midnight into one every cron accepts, meaning the same hours", () => {
        expect(unwrapRanges("0 22-4 * * *")).toBe("0 22-23,0-4 * * *");
        expect(unwrapRanges("0 22-4/2 * * *")).toBe("0 22,0,2,4 * * *");
        expect(unwrapRanges("0 2 * * fri-mon")).toBe("0 2 * * 5-6,0-1");
        expect(unwrapRanges("0 2 * nov-feb *")).toBe("0 2 * 11-12,1-2 *");
        const r = parseCron("0 22-4 * * *");
        expect("suggestion" in r && r.suggestion).toBe("0 22-23,0-4 * * *");
        expect(cronForScheduler("0 22-23,0-4 * * *")).toBe("0 0,1,2,3,4,22,23 * * *");
    });

    it("refuses what the scheduler cannot run, with the reason", () => {
        expect(parseCron("0 2 L * *")).toEqual({ problem: expect.stringMatching(/only numbers, names/) });
        expect(parseCron("0 0 2 * * *")).toEqual({ problem: expect.stringMatching(/5-field/) });
        expect(parseCron("0 0 30 2 *")).toEqual({ problem: expect.stringMatching(/not a valid cron expression|never runs/) });
        expect(parseCron("0 25 * * *")).toEqual({ problem: expect.stringMatching(/0-23/) });
    });
});
