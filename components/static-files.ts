// Reads a built front end (a local directory, or an archive of one such as a CI artifact), checks it, and
// writes it out as one directory per content (materializeSite), which is copied to the host and mounted
// read-only into the site's container. The files never travel in the stack's state; the size limit
// guards against shipping a wrong directory (the site is read into memory to be checked and hashed).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { expandHome } from "./paths";

export interface SiteFile {
    /** Path relative to the site root, with forward slashes. */
    path: string;
    contentBase64: string;
}

/** Larger sites belong in an image (apps[].image with static.root). */
export const MAX_SITE_BYTES = 200 * 1024 * 1024;

const tooLarge = () =>
    `holds more than ${MAX_SITE_BYTES / 1024 / 1024} MB; ship a site this large as an image (apps[].image with static.root)`;

/** A short hash of a site's paths and contents: equal sites, equal directories. */
export function siteFingerprint(files: SiteFile[]): string {
    const h = crypto.createHash("sha256");
    for (const f of files) h.update(`${f.path}\0${f.contentBase64}\0`);
    return h.digest("hex").slice(0, 12);
}

/**
 * Writes the site's files into `dir` (created with its parents), unless `dir` already exists: the caller
 * names it after siteFingerprint, so an existing one holds exactly these files. Written under a
 * temporary name and renamed, so a crash never leaves a half site under the final name.
 */
export function materializeSite(files: SiteFile[], dir: string): void {
    if (fs.existsSync(dir)) return;
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    for (const f of files) {
        const target = path.join(tmp, ...f.path.split("/"));
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, Buffer.from(f.contentBase64, "base64"), { mode: 0o644 });
    }
    fs.mkdirSync(tmp, { recursive: true });
    fs.renameSync(tmp, dir);
}

/** A static app's site from its config (static.dir or static.archive, relative to the project or ~/). */
export function readSite(site: { dir?: string; archive?: string }, base = process.cwd()): SiteFile[] {
    if (site.archive) return readSiteArchive(fs.readFileSync(path.resolve(base, expandHome(site.archive))));
    if (site.dir) return readSiteFiles(path.resolve(base, expandHome(site.dir)));
    return [];
}

export function readSiteFiles(dir: string): SiteFile[] {
    const out: SiteFile[] = [];
    let total = 0;
    const walk = (rel: string) => {
        for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
            const r = rel ? `${rel}/${entry.name}` : entry.name;
            if (entry.isDirectory()) walk(r);
            else if (entry.isFile()) {
                const bytes = fs.readFileSync(path.join(dir, r));
                total += bytes.length;
                if (total > MAX_SITE_BYTES) throw new Error(tooLarge());
                out.push({ path: r, contentBase64: bytes.toString("base64") });
            }
        }
    };
    walk("");
    return out;
}

/** Archive names the config accepts: tar, optionally gzip-compressed. */
export const SITE_ARCHIVE_RE = /\.(tar|tar\.gz|tgz)$/;

const BLOCK = 512;

function cstring(b: Buffer, start: number, len: number): string {
    const raw = b.subarray(start, start + len);
    const nul = raw.indexOf(0);
    return raw.subarray(0, nul === -1 ? len : nul).toString("utf8");
}

function octal(b: Buffer, start: number, len: number): number {
    // GNU tar writes sizes of 8 GiB and more in base-256; no site gets near that, so refuse them.
    if (b[start] & 0x80) throw new Error("has an entry too large for a site");
    const s = cstring(b, start, len).trim();
    return s === "" ? 0 : parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    return sum === octal(h, 148, 8);
}

/** pax extended header records: "<len> key=value\n" … */
function paxPath(data: Buffer): string | undefined {
    let path: string | undefined;
    let at = 0;
    while (at < data.length) {
        const space = data.indexOf(0x20, at);
        if (space === -1) break;
        const len = parseInt(data.subarray(at, space).toString("ascii"), 10);
        if (!(len > 0)) break;
        const record = data.subarray(space + 1, at + len - 1).toString("utf8");
        const eq = record.indexOf("=");
        if (record.slice(0, eq) === "path") path = record.slice(eq + 1);
        at += len;
    }
    return path;
}

/** A member's path as a site path, or an error for one that could land outside the site root. */
function sitePath(name: string): string {
    const parts = name.split("/").filter((p) => p !== "" && p !== ".");
    if (name.startsWith("/") || parts.includes("..")) throw new Error(`has an unsafe path (${name}): members must be relative, without ".."`);
    return parts.join("/");
}

/**
 * The regular files of a tar archive (plain or gzip; ustar, pax and GNU long names), as site files.
 * Links and devices are refused rather than dropped, so the site never silently misses a file. When
 * index.html is not at the top but every file sits under one directory that has it (`tar czf dist.tgz
 * dist`), that directory is the site root. Throws an Error whose message completes "<archive> …".
 */
export function readSiteArchive(bytes: Buffer): SiteFile[] {
    let tar = bytes;
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
        try {
            tar = zlib.gunzipSync(bytes, { maxOutputLength: MAX_SITE_BYTES * 2 });
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw new Error(tooLarge());
            throw new Error(`is not a readable gzip file (${(e as Error).message})`);
        }
    }
    const files = new Map<string, Buffer>();
    let total = 0;
    let longName: string | undefined;
    let at = 0;
    let headers = 0;
    while (at + BLOCK <= tar.length) {
        const h = tar.subarray(at, at + BLOCK);
        if (h.every((x) => x === 0)) break; // end of archive
        if (!checksumOk(h)) throw new Error(headers === 0 ? "is not a tar archive" : `is corrupt (bad header checksum at byte ${at})`);
        headers++;
        const size = octal(h, 124, 12);
        const type = String.fromCharCode(h[156] || 0x30);
        const dataStart = at + BLOCK;
        if (dataStart + size > tar.length) throw new Error("is truncated");
        const data = tar.subarray(dataStart, dataStart + size);
        at = dataStart + Math.ceil(size / BLOCK) * BLOCK;

        if (type === "x") {
            longName = paxPath(data) ?? longName;
            continue;
        }
        if (type === "L") {
            longName = cstring(data, 0, data.length);
            continue;
        }
        if (type === "g" || type === "K") continue; // global pax header, GNU long link name
        const ustar = h.subarray(257, 262).toString("ascii") === "ustar";
        const prefix = ustar ? cstring(h, 345, 155) : "";
        const name = longName ?? (prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
        longName = undefined;
        if (type === "5") continue; // directories come with their files
        if (type === "1" || type === "2") {
            throw new Error(`holds a link (${name} → ${cstring(h, 157, 100)}): archive the files themselves (tar --dereference)`);
        }
        if (type !== "0" && type !== "7") throw new Error(`holds ${name}, which is not a regular file`);
        const p = sitePath(name);
        // macOS tar's AppleDouble companions carry Finder metadata, not site content.
        if (p === "" || path.posix.basename(p).startsWith("._")) continue;
        total += size;
        if (total > MAX_SITE_BYTES) throw new Error(tooLarge());
        files.set(p, Buffer.from(data));
    }
    if (headers === 0) throw new Error("is empty or not a tar archive");

    let names = [...files.keys()];
    let strip = "";
    if (!files.has("index.html")) {
        const tops = new Set(names.map((n) => n.split("/")[0]));
        const [top] = tops;
        if (tops.size === 1 && files.has(`${top}/index.html`)) strip = `${top}/`;
    }
    names = names.sort((a, b) => a.localeCompare(b));
    return names.map((n) => ({ path: n.slice(strip.length), contentBase64: files.get(n)!.toString("base64") }));
}
