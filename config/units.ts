// Sizes and durations as the config writes them ("512m", "90s"), in the units the program needs. One
// parser each: the schema checks the format with the same patterns.

export const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|m|mb|g|gb)$/i;
export const DURATION_RE = /^(\d+)(ms|s|m|h)$/;

/** Parses "512m", "1g", "2GB", "256MB" into mebibytes. Returns NaN when malformed. */
export function sizeToMiB(size: string): number {
    const m = SIZE_RE.exec(size.trim());
    if (!m) return NaN;
    const n = Number(m[1]);
    switch (m[2].toLowerCase()) {
        case "b": return n / (1024 * 1024);
        case "k": case "kb": return n / 1024;
        case "m": case "mb": return n;
        default: return n * 1024;
    }
}

/** A duration's number and unit; throws on a format the config would have refused. */
export function parseDuration(d: string, who: string): { n: number; unit: "ms" | "s" | "m" | "h" } {
    const m = DURATION_RE.exec(d);
    if (!m) throw new Error(`${who}: unsupported duration ${d}`);
    return { n: Number(m[1]), unit: m[2] as "ms" | "s" | "m" | "h" };
}

/** "90s", "5m", "12h" in whole seconds, at least 1 (the config checked the format). */
export function durationSeconds(d: string): number {
    const { n, unit } = parseDuration(d, "durationSeconds");
    return Math.max(1, Math.round(n * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit]));
}
