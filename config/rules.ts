// Cross-field rules of the config that need more than one key, or a fix built from what the user wrote:
// pure functions, exported for tests.
import { maxGapMinutes, parseCron } from "../sinks/cron";
import { shellWord } from "../sinks/shell";
import { ConfigProblem, fixFor } from "./problems";
import { MAX_AGE_HOURS_LIMIT, Parsed, PROJECT } from "./schema";

/** True when the image reference names a tag other than `latest`, or a digest. */
export function isPinnedImage(ref: string): boolean {
    if (/@sha256:[a-f0-9]{64}$/.test(ref)) return true;
    const lastSlash = ref.lastIndexOf("/");
    const colon = ref.indexOf(":", lastSlash + 1);
    if (colon < 0) return false;
    const tag = ref.slice(colon + 1);
    return /^[\w][\w.-]{0,127}$/.test(tag) && tag !== "latest";
}

export const IMAGE_RE = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

/** Route keys ("host + path") used to find two apps claiming the same traffic. */
export function routeKeys(app: { hosts: string[]; paths: string[] }): string[] {
    return app.hosts.flatMap((h) => app.paths.map((p) => `${h}${p === "/" ? "/" : p.replace(/\/$/, "")}`));
}

/** Names the stack's own services use as network aliases and container names. */
export const RESERVED_APP_NAMES = ["postgres", "redis", "nginx", "backup", "acme", "edge", "data"];

/** Settings of the Nginx container that the host's own nginx (nginx.mode "host") has no use for. */
export const CONTAINER_ONLY_NGINX_KEYS = ["image", "memory", "cpus"] as const;

/** A name for a renamed duplicate app that no app uses and the schema accepts. */
export function freeAppName(name: string, taken: Set<string>): string {
    for (let n = 2; ; n++) {
        const candidate = `${name.slice(0, 32 - String(n).length - 1).replace(/-+$/, "")}-${n}`;
        if (!taken.has(candidate) && !RESERVED_APP_NAMES.includes(candidate)) return candidate;
    }
}

/** A path prefix for app `name` that no app serves on any of `hosts` (nor claims further on). */
export function freeRoute(name: string, hosts: string[], routes: Map<string, unknown>, apps: { paths: string[] }[]): string {
    const claimed = new Set(apps.flatMap((a) => a.paths.map((p) => (p === "/" ? "/" : p.replace(/\/+$/, "")))));
    for (let n = 1; ; n++) {
        const candidate = n === 1 ? `/${name}` : `/${name}-${n}`;
        if (!claimed.has(candidate) && hosts.every((h) => !routes.has(`${h}${candidate}`))) return candidate;
    }
}

/**
 * The time zone as the container's tz database spells it (its file names are case-sensitive, and an
 * unknown name silently means UTC), or a problem with the right spelling.
 */
export function timeZoneProblem(tz: string): { message: string; suggestion?: string } | undefined {
    const known = Intl.supportedValuesOf("timeZone");
    if (known.includes(tz) || tz === "UTC" || tz === "Etc/UTC") return undefined;
    const sameLetters = known.find((k) => k.toLowerCase() === tz.toLowerCase()) ?? (tz.toLowerCase() === "utc" ? "UTC" : undefined);
    if (sameLetters) return { message: `("${tz}") must be spelt "${sameLetters}": the tz database is case-sensitive, and an unknown name silently means UTC`, suggestion: sameLetters };
    let resolved: string;
    try {
        resolved = new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
    } catch {
        return { message: `("${tz}") is not an IANA time zone such as Europe/Paris` };
    }
    // A link such as Asia/Kolkata or Europe/Kyiv: accepted when written with the database's capitals.
    const titled = tz.replace(/[A-Za-z]+/g, (w) => (w.length <= 3 && w === w.toUpperCase() ? w : w[0].toUpperCase() + w.slice(1).toLowerCase()));
    if (tz === titled || tz === tz.toUpperCase()) return undefined;
    return { message: `("${tz}") must be spelt as in the tz database (e.g. "${resolved}"); an unknown name silently means UTC`, suggestion: resolved };
}

/** PIDs PostgreSQL needs beyond one per connection: its own processes (about 20), healthchecks, psql. */
export const POSTGRES_PIDS_MARGIN = 64;

/** Margin over the longest gap between backups: the backup's own run time and a DST change. */
export const BACKUP_AGE_MARGIN_HOURS = 2;

export function checkBackup(b: Parsed["backup"], add: (p: ConfigProblem) => void): void {
    const crons = [
        { key: "schedule", value: b.schedule, example: "0 2 * * *" },
        { key: "verifySchedule", value: b.verifySchedule, example: "0 4 * * 0" },
        { key: "pitr.baseSchedule", value: b.pitr.baseSchedule, example: "0 1 * * *" },
        { key: "volumeSchedule", value: b.volumeSchedule, example: "30 2 * * *" },
    ];
    for (const { key, value, example } of crons) {
        const r = parseCron(value);
        if ("problem" in r) add({ path: `backup.${key}`, message: `("${value}") ${r.problem}`, fix: fixFor(`backup.${key}`, { value: r.suggestion ?? example }) });
    }
    const tz = timeZoneProblem(b.timezone);
    if (tz) add({ path: "backup.timezone", message: tz.message, fix: fixFor("backup.timezone", { value: tz.suggestion ?? "Europe/Paris" }) });
    if (!b.enabled) return;
    checkMaxAge({ scheduleKey: "schedule", schedule: b.schedule, ageKey: "maxAgeHours", maxAge: b.maxAgeHours, what: "backups", example: "0 2 * * *" }, add);
    if (b.pitr.enabled) {
        checkMaxAge(
            { scheduleKey: "pitr.baseSchedule", schedule: b.pitr.baseSchedule, ageKey: "pitr.baseMaxAgeHours", maxAge: b.pitr.baseMaxAgeHours, what: "base backups", example: "0 1 * * *" },
            add,
        );
    }
}

/** A max-age check must tolerate the longest gap its schedule leaves, or it fails between two good runs. */
export function checkMaxAge(
    c: { scheduleKey: string; schedule: string; ageKey: string; maxAge: number; what: string; example: string },
    add: (p: ConfigProblem) => void,
): void {
    const schedule = parseCron(c.schedule);
    if (!("schedule" in schedule)) return;
    const gapHours = Math.ceil(maxGapMinutes(schedule.schedule) / 60);
    const needed = gapHours + BACKUP_AGE_MARGIN_HOURS;
    if (c.maxAge >= needed) return;
    const why = `the schedule "${c.schedule}" leaves up to ${gapHours}h between ${c.what}, so the backup check would fail between two good ${c.what}`;
    if (needed <= MAX_AGE_HOURS_LIMIT) {
        add({ path: `backup.${c.ageKey}`, message: `(${c.maxAge}) must be at least ${needed}: ${why}`, fix: fixFor(`backup.${c.ageKey}`, { value: String(needed) }) });
    } else {
        add({
            path: `backup.${c.scheduleKey}`,
            message: `("${c.schedule}") runs too rarely: ${why}, and backup.${c.ageKey} is at most ${MAX_AGE_HOURS_LIMIT}`,
            fix: fixFor(`backup.${c.scheduleKey}`, { value: c.example }),
        });
    }
}

function editDistance(a: string, b: string): number {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    return d[a.length][b.length];
}

/**
 * Keys of other namespaces that look like a typo of ours (`vps-stak:backup`, `vps_stack:backup`): Pulumi
 * keeps them, the program never reads them, and the stack would silently run on defaults.
 * `otherKeys` are full keys (`namespace:key`) as pulumi.runtime.allConfig() lists them.
 */
export function namespaceProblems(otherKeys: string[], ownKeys: string[], stack: string): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    for (const full of otherKeys) {
        const idx = full.indexOf(":");
        if (idx < 0) continue;
        const ns = full.slice(0, idx);
        const key = full.slice(idx + 1);
        if (ns === PROJECT) continue;
        const squashed = ns.toLowerCase().replace(/[^a-z0-9]/g, "");
        if (squashed !== PROJECT.replace(/-/g, "") && editDistance(ns.toLowerCase(), PROJECT) > 2) continue;
        const top = key.split(/[.[]/)[0];
        const clash = ownKeys.includes(top);
        out.push({
            namespace: ns,
            path: key,
            message: `looks like a typo of ${PROJECT}:${key}; the program only reads ${PROJECT}:* keys, so this value is ignored${clash ? ` (${PROJECT}:${top} is also set: move what you need into it)` : ""}`,
            fix: clash
                ? `pulumi config rm ${shellWord(full)}`
                : `sed -i ${shellWord(`s/^  ${ns.replace(/[.*[\]^$\\/]/g, "\\$&")}:${key.replace(/[.*[\]^$\\/]/g, "\\$&")}:/  ${PROJECT}:${key.replace(/[&\\/]/g, "\\$&")}:/`)} Pulumi.${stack}.yaml`,
        });
    }
    return out;
}
