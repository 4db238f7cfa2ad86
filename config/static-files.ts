// Reads a built front end (a local directory, or an archive of one such as a CI artifact), checks it, and
// writes it out as one directory per content (materializeSite), which is copied to the host and mounted
// read-only into the site's container. The files never travel in the stack's state; the size limit
// guards against shipping a wrong directory (the site is read into memory to be checked and hashed).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as tar from "tar";
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

/** The sites of a stack's static apps that upload one (static.dir or static.archive), by app name. */
export function readAppSites(apps: { name: string; kind: string; static?: { dir?: string; archive?: string } }[]): Record<string, SiteFile[]> {
    return Object.fromEntries(apps.flatMap((a) => (a.kind === "static" && a.static && (a.static.dir || a.static.archive) ? [[a.name, readSite(a.static)]] : [])));
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

/** A member's path as a site path, or an error for one that could land outside the site root. */
function sitePath(name: string): string {
    const parts = name.split("/").filter((p) => p !== "" && p !== ".");
    if (name.startsWith("/") || parts.includes("..")) throw new Error(`has an unsafe path (${name}): members must be relative, without ".."`);
    return parts.join("/");
}

/** What a node-tar warning means for a site archive, as the end of "<archive> …". */
function tarProblem(code: string, message: string, at: number): string {
    if (code === "TAR_BAD_ARCHIVE") return message.startsWith("Truncated") ? "is truncated" : "is empty or not a tar archive";
    if (code === "TAR_ENTRY_INVALID") {
        if (at === 0) return "is not a tar archive";
        return `is corrupt (${message === "checksum failure" ? "bad header checksum" : message} at byte ${at})`;
    }
    return `is not a readable tar archive (${message})`;
}

/**
 * The regular files of a tar archive (plain or gzip; ustar, pax and GNU long names, read by node-tar), as
 * site files. Links and devices are refused rather than dropped, so the site never silently misses a file.
 * When index.html is not at the top but every file sits under one directory that has it (`tar czf dist.tgz
 * dist`), that directory is the site root. Throws an Error whose message completes "<archive> …".
 */
export function readSiteArchive(bytes: Buffer): SiteFile[] {
    let archive = bytes;
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
        // Inflated here rather than by node-tar: zlib stops at maxOutputLength, so a gzip bomb costs at most
        // twice the limit (a site's tar adds headers and padding to its files) instead of all it expands to.
        try {
            archive = zlib.gunzipSync(bytes, { maxOutputLength: MAX_SITE_BYTES * 2 });
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw new Error(tooLarge());
            throw new Error(`is not a readable gzip file (${(e as Error).message})`);
        }
        // node-tar would inflate a second layer itself, without that bound.
        if (archive[0] === 0x1f && archive[1] === 0x8b) throw new Error("is not a tar archive (it is compressed twice)");
    }

    const files = new Map<string, Buffer[]>();
    let total = 0;
    let at = 0; // the offset of the block being parsed: node-tar's warnings do not say where they are
    const parser = new tar.Parser({
        brotli: false,
        zstd: false,
        // Every warning is an error: a skipped header would silently drop or misplace the files after it.
        onwarn: (code, message) => {
            throw new Error(tarProblem(code, message, at));
        },
        onReadEntry: (entry) => {
            const name = entry.path;
            switch (entry.type) {
                case "Directory": // directories come with their files
                    entry.resume();
                    return;
                case "Link":
                case "SymbolicLink":
                    throw new Error(`holds a link (${name} → ${entry.linkpath}): archive the files themselves (tar --dereference)`);
                case "File":
                case "OldFile":
                case "ContiguousFile":
                    break;
                default:
                    throw new Error(`holds ${name}, which is not a regular file`);
            }
            const p = sitePath(name);
            // macOS tar's AppleDouble companions carry Finder metadata, not site content.
            if (p === "" || path.posix.basename(p).startsWith("._")) {
                entry.resume();
                return;
            }
            total += entry.size;
            if (total > MAX_SITE_BYTES) throw new Error(tooLarge());
            const chunks: Buffer[] = [];
            files.set(p, chunks);
            entry.on("data", (c: Buffer) => chunks.push(c));
        },
    });
    // Types node-tar does not know, and pax headers over its 1 MB limit, are skipped without an entry.
    parser.on("ignoredEntry", (entry: tar.ReadEntry) => {
        throw new Error(entry.meta ? `has an extended header over 1 MB (${entry.path})` : `holds ${entry.path}, which is not a regular file`);
    });
    // One block per write, so `at` is the offset of the header a warning is about. Synchronous throughout:
    // node-tar's parser and its entries emit as they are written.
    for (at = 0; at < archive.length; at += BLOCK) parser.write(archive.subarray(at, at + BLOCK));
    parser.end();

    let names = [...files.keys()];
    let strip = "";
    if (!files.has("index.html")) {
        const tops = new Set(names.map((n) => n.split("/")[0]));
        const [top] = tops;
        if (tops.size === 1 && files.has(`${top}/index.html`)) strip = `${top}/`;
    }
    names = names.sort((a, b) => a.localeCompare(b));
    return names.map((n) => ({ path: n.slice(strip.length), contentBase64: Buffer.concat(files.get(n)!).toString("base64") }));
}
