// The cron sink: a 5-field cron expression is parsed by cron-parser (the one source of cron semantics
// here) and handed to the in-container scheduler as explicit value lists, so the shell only compares
// numbers against lists and cannot disagree with the library about ranges, steps, names or Sunday = 7.
// Rule: the scheduler's text is "<minutes> <hours> <days of month> <months> <days of week>", each field "*"
// or a comma-separated list of integers; "*" in the day fields means unrestricted, which decides whether
// day-of-month and day-of-week combine with OR (both restricted) or AND (as cron-parser and Vixie cron do).
import { CronExpressionParser } from "cron-parser";

export interface CronSchedule {
    minute: number[];
    hour: number[];
    /** "*" when unrestricted. */
    dayOfMonth: number[] | "*";
    month: number[];
    /** 0-6 (Sunday 0); "*" when unrestricted. */
    dayOfWeek: number[] | "*";
}

export type CronParse = { schedule: CronSchedule } | { problem: string; suggestion?: string };

const FIELD_NAMES = ["minute", "hour", "day of month", "month", "day of week"];
const BOUNDS: [number, number][] = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 6]];
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

function numberOf(token: string, field: number): number {
    const t = token.toLowerCase();
    if (field === 3 && MONTHS.includes(t)) return MONTHS.indexOf(t) + 1;
    if (field === 4 && DAYS.includes(t)) return DAYS.indexOf(t);
    return /^\d+$/.test(t) ? Number(t) : NaN;
}

/**
 * A range that wraps (e.g. hours 22-4, "22:00 to 04:00") rewritten as what the user meant, in a form every
 * cron accepts: 22-23,0-4. With a step, the values are listed. Undefined when no field has such a range.
 */
export function unwrapRanges(expr: string): string | undefined {
    const fields = expr.trim().split(/\s+/);
    if (fields.length !== 5) return undefined;
    let changed = false;
    const out = fields.map((f, i) =>
        f
            .split(",")
            .map((item) => {
                const m = /^([A-Za-z0-9]+)-([A-Za-z0-9]+)(?:\/(\d+))?$/.exec(item);
                if (!m) return item;
                const [lo, hi] = BOUNDS[i];
                let a = numberOf(m[1], i);
                let b = numberOf(m[2], i);
                // Day of week: 7 is Sunday, and in a wrapped range it is the same day as 0.
                if (i === 4) [a, b] = [a % 7, b % 7];
                if (!(a > b) || a < lo || a > hi || b < lo || b > hi) return item;
                changed = true;
                const step = m[3] ? Number(m[3]) : 1;
                if (step === 1) return [a === hi ? `${hi}` : `${a}-${hi}`, b === lo ? `${lo}` : `${lo}-${b}`].join(",");
                // Count upwards through the wrap: b is reached one full span above a.
                const values: number[] = [];
                const span = hi - lo + 1;
                for (let v = a; v <= b + span; v += step) values.push(v > hi ? v - span : v);
                return values.join(",");
            })
            .join(","),
    );
    return changed ? out.join(" ") : undefined;
}

export function parseCron(expr: string): CronParse {
    const fields = expr.trim().split(/\s+/);
    if (fields.length !== 5 || expr.trim() === "") return { problem: `must be a 5-field cron expression (minute hour day-of-month month day-of-week) such as "0 2 * * *"` };
    // Letters only as month or day names: L, W, # and ? have no list form the scheduler could match.
    const token = (t: string, i: number) => t === "*" || /^\d+$/.test(t) || (i >= 3 && !Number.isNaN(numberOf(t, i)));
    const bad = fields.findIndex((f, i) => !/^[A-Za-z0-9*,/-]+$/.test(f) || !f.split(/[,/-]/).every((t) => token(t, i)));
    if (bad >= 0) {
        return { problem: `has "${fields[bad]}" as its ${FIELD_NAMES[bad]}: only numbers, names (mon, jan), *, lists (,), ranges (-) and steps (/) are supported` };
    }
    let parsed;
    try {
        parsed = CronExpressionParser.parse(fields.join(" "), { strict: false });
    } catch (e) {
        const suggestion = unwrapRanges(expr);
        if (suggestion) {
            return { problem: `has a range that wraps around (e.g. 22-4): cron ranges run upwards; write it as "${suggestion}"`, suggestion };
        }
        return { problem: `is not a valid cron expression: ${(e as Error).message}` };
    }
    const f = parsed.fields;
    const nums = (vs: readonly (number | string)[]) => [...new Set(vs.filter((v): v is number => typeof v === "number"))].sort((x, y) => x - y);
    const schedule: CronSchedule = {
        minute: nums(f.minute.values),
        hour: nums(f.hour.values),
        dayOfMonth: f.dayOfMonth.isWildcard ? "*" : nums(f.dayOfMonth.values),
        month: nums(f.month.values),
        dayOfWeek: f.dayOfWeek.isWildcard ? "*" : nums(f.dayOfWeek.values.map((d) => (d === 7 ? 0 : d))),
    };
    if (maxGapMinutes(schedule) === Infinity) return { problem: "never runs (no such day in the calendar)" };
    return { schedule };
}

/** The scheduler's text for a parsed schedule (see the rule at the top). */
export function schedulerFields(s: CronSchedule): string {
    const list = (v: number[] | "*", all: number) => (v === "*" || v.length === all ? "*" : v.join(","));
    // Day fields keep "*" only when unrestricted: a full list is restricted, and that changes OR/AND.
    const day = (v: number[] | "*") => (v === "*" ? "*" : v.join(","));
    return [list(s.minute, 60), list(s.hour, 24), day(s.dayOfMonth), list(s.month, 12), day(s.dayOfWeek)].join(" ");
}

/** cron-parser's own day rule: OR when both day fields are restricted, else both must match. */
export function matchesDay(s: CronSchedule, dom: number, month: number, dow: number): boolean {
    if (!s.month.includes(month)) return false;
    const domOk = s.dayOfMonth === "*" || s.dayOfMonth.includes(dom);
    const dowOk = s.dayOfWeek === "*" || s.dayOfWeek.includes(dow);
    return s.dayOfMonth !== "*" && s.dayOfWeek !== "*" ? domOk || dowOk : domOk && dowOk;
}

/**
 * The longest wall-clock wait between two consecutive runs, in minutes (Infinity when it never runs). Eight
 * years of days cover every weekday/leap-year combination of the Gregorian calendar's 400-year cycle that a
 * 5-field cron can tell apart, so a schedule on 29 February shows its four-year gap.
 */
export function maxGapMinutes(s: CronSchedule): number {
    const times = s.hour.flatMap((h) => s.minute.map((m) => h * 60 + m)).sort((x, y) => x - y);
    if (times.length === 0) return Infinity;
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
    const start = Date.UTC(2000, 0, 1);
    let previous: number | undefined;
    for (let day = 0; day < 8 * 366; day++) {
        const d = new Date(start + day * 86400000);
        if (!matchesDay(s, d.getUTCDate(), d.getUTCMonth() + 1, d.getUTCDay())) continue;
        if (previous !== undefined) gap = Math.max(gap, (day - previous) * 1440 - times[times.length - 1] + times[0]);
        previous = day;
    }
    return previous === undefined ? Infinity : gap;
}

/** The scheduler's text for an expression that loadConfig accepted; throws on anything else. */
export function cronForScheduler(expr: string): string {
    const r = parseCron(expr);
    if ("problem" in r) throw new Error(`cron sink: ${JSON.stringify(expr)} ${r.problem}`);
    return schedulerFields(r.schedule);
}
