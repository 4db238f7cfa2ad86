// A static app's site, read as it will be uploaded: from a directory, or from an archive in the formats
// CI jobs produce (fixtures made by GNU tar, see test/fixtures/site-archives/make.sh).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as fc from "fast-check";
import * as tar from "tar";
import * as zlib from "zlib";
import { materializeSite, MAX_SITE_BYTES, readSite, readSiteArchive, readSiteFiles, siteFingerprint } from "../../config/static-files";

const FIXTURES = path.join(__dirname, "..", "fixtures", "site-archives");
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name));
const LONG = `assets/vendor/${"a".repeat(60)}/${"b".repeat(40)}/chunk-3f9a1c2b.js`;
const content = (files: { path: string; contentBase64: string }[]) =>
    Object.fromEntries(files.map((f) => [f.path, Buffer.from(f.contentBase64, "base64").toString("latin1")]));

/** What make.sh puts in every full archive, as latin1 strings (binary-safe). */
const SITE = {
    "assets/app-3f9a1c2b.js": "\x00\x01\x02\xff",
    "assets/menu-café.txt": Buffer.from("café").toString("latin1"),
    [LONG]: "long",
    "index.html": "<!doctype html><title>fixture</title>",
};

describe("readSiteArchive", () => {
    it.each([
        ["dist-gnu.tgz", "gzip, GNU format, one top-level directory (tar czf dist.tgz dist), GNU long names"],
        ["site-pax.tar", 'pax format, "./" names, long and non-ASCII names in pax records'],
    ])("reads %s (%s): every regular file, byte for byte, at the site root", (name) => {
        const files = readSiteArchive(fixture(name));
        expect(content(files)).toEqual(SITE);
        // Sorted, so the uploads (and the stack's diff) do not depend on the archive's order.
        expect(files.map((f) => f.path)).toEqual([...files.map((f) => f.path)].sort((a, b) => a.localeCompare(b)));
    });

    it("joins ustar's prefix field to the name", () => {
        expect(readSiteArchive(fixture("site-ustar.tar")).map((f) => f.path)).toEqual([LONG, "index.html"]);
    });

    it("strips no directory when none holds index.html alone at the top", () => {
        expect(readSiteArchive(fixture("no-index.tar")).map((f) => f.path)).toEqual(["assets/app-3f9a1c2b.js"]);
    });

    it.each([
        ["symlink.tar", /holds a link \(home\.html → index\.html\): archive the files themselves/],
        ["traversal.tar", /has an unsafe path \(\.\.\/index\.html\)/],
    ])("refuses %s", (name, message) => {
        expect(() => readSiteArchive(fixture(name))).toThrow(message);
    });

    it("refuses what is not a tar archive, a truncated one and broken gzip", () => {
        expect(() => readSiteArchive(Buffer.from("<!doctype html>".padEnd(1024, " ")))).toThrow("is not a tar archive");
        expect(() => readSiteArchive(Buffer.alloc(0))).toThrow("is empty or not a tar archive");
        const tar = fixture("site-ustar.tar");
        expect(() => readSiteArchive(tar.subarray(0, 512 + 10))).toThrow("is truncated");
        const gz = fixture("dist-gnu.tgz");
        expect(() => readSiteArchive(gz.subarray(0, gz.length - 20))).toThrow("is not a readable gzip file");
        const corrupt = Buffer.from(tar);
        corrupt[512 * 2 + 5] ^= 0xff; // the second member's header
        expect(() => readSiteArchive(corrupt)).toThrow(/is corrupt \(bad header checksum at byte 1024\)/);
    });

    it("refuses a site over the size limit, even when gzip makes it small", () => {
        const big = Buffer.alloc(MAX_SITE_BYTES + 1024);
        const header = Buffer.alloc(512);
        header.write("index.html", 0);
        header.write("0000644\0", 100);
        header.write(`${(MAX_SITE_BYTES + 1).toString(8).padStart(11, "0")}\0`, 124);
        header.write("00000000000\0", 136);
        header.write("0", 156);
        header.write("ustar\x0000", 257);
        let sum = 0;
        for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
        header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
        header.copy(big);
        expect(() => readSiteArchive(zlib.gzipSync(Buffer.concat([big, Buffer.alloc(1024 + 512)])))).toThrow(`holds more than ${MAX_SITE_BYTES / 1024 / 1024} MB`);
        // A gzip bomb stops at twice the limit instead of filling the deploying machine's memory.
        expect(() => readSiteArchive(zlib.gzipSync(Buffer.alloc(MAX_SITE_BYTES * 2 + 1)))).toThrow(`holds more than ${MAX_SITE_BYTES / 1024 / 1024} MB`);
    });
});

/** A tar archive of the given members, headers written by node-tar, for types GNU tar will not make unprivileged. */
function archive(members: { path: string; type?: tar.types.EntryTypeName; body?: string; linkpath?: string }[]): Buffer {
    const blocks: Buffer[] = [];
    for (const m of members) {
        const body = Buffer.from(m.body ?? "");
        const h = new tar.Header({ path: m.path, type: m.type ?? "File", size: body.length, mode: 0o644, mtime: new Date(0), linkpath: m.linkpath });
        h.encode();
        blocks.push(h.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
    return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

describe("readSiteArchive refuses what is not a plain file and skips what is not content", () => {
    it.each([
        [{ path: "index.html", type: "Link" as const, linkpath: "a.html" }, /holds a link \(index\.html → a\.html\)/],
        [{ path: "tty", type: "CharacterDevice" as const }, /holds tty, which is not a regular file/],
        [{ path: "sda", type: "BlockDevice" as const }, /holds sda, which is not a regular file/],
        [{ path: "pipe", type: "FIFO" as const }, /holds pipe, which is not a regular file/],
        [{ path: "/etc/passwd" }, /has an unsafe path \(\/etc\/passwd\)/],
        [{ path: "assets/../../index.html" }, /has an unsafe path \(assets\/\.\.\/\.\.\/index\.html\)/],
    ])("refuses %o", (member, message) => {
        expect(() => readSiteArchive(archive([{ path: "index.html", body: "x" }, member]))).toThrow(message);
    });

    it("refuses a member type node-tar does not know instead of dropping it", () => {
        const a = archive([{ path: "index.html", body: "x" }, { path: "sparse.bin" }]);
        a[512 * 2 + 156] = "S".charCodeAt(0); // GNU sparse file
        let sum = 0;
        for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : a[512 * 2 + i];
        a.write(`${sum.toString(8).padStart(6, "0")}\0 `, 512 * 2 + 148);
        expect(() => readSiteArchive(a)).toThrow(/holds sparse\.bin, which is not a regular file/);
    });

    it("skips macOS AppleDouble companions and directory members; directories are implied by their files", () => {
        const files = readSiteArchive(archive([
            { path: "dist/", type: "Directory" },
            { path: "dist/._index.html", body: "finder" },
            { path: "dist/index.html", body: "x" },
            { path: "dist/assets/", type: "Directory" },
            { path: "dist/assets/._app.js", body: "finder" },
            { path: "dist/assets/app.js", body: "y" },
        ]));
        expect(content(files)).toEqual({ "index.html": "x", "assets/app.js": "y" });
    });

    it("refuses an archive compressed twice rather than inflating the inner layer without a bound", () => {
        expect(() => readSiteArchive(zlib.gzipSync(fixture("dist-gnu.tgz")))).toThrow("is not a tar archive (it is compressed twice)");
    });

    // Any site a CI job can write, packed by node-tar (as npm packs) with or without gzip, reads back
    // exactly as the directory does.
    it("reads back any site node-tar packs, as the directory reads", () => {
        const segment = fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._é-]{0,40}$/).filter((s) => s !== "." && s !== ".." && !s.startsWith("._"));
        const site = fc.dictionary(fc.array(segment, { minLength: 1, maxLength: 4 }).map((p) => p.join("/")), fc.uint8Array({ maxLength: 2000 }), { maxKeys: 8 })
            // A path cannot be both a file and a directory.
            .filter((d) => Object.keys(d).every((a) => !Object.keys(d).some((b) => b.startsWith(`${a}/`))));
        fc.assert(
            fc.property(site, fc.boolean(), (files, gzip) => {
                const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-prop-"));
                try {
                    for (const [p, c] of Object.entries({ ...files, "index.html": new Uint8Array([60]) })) {
                        fs.mkdirSync(path.dirname(path.join(dir, "site", p)), { recursive: true });
                        fs.writeFileSync(path.join(dir, "site", p), c);
                    }
                    tar.c({ sync: true, cwd: dir, file: path.join(dir, "a.tar"), gzip, portable: true }, ["site"]);
                    // Compared as maps: readSiteFiles orders by directory level, readSiteArchive by whole path.
                    expect(content(readSiteArchive(fs.readFileSync(path.join(dir, "a.tar"))))).toEqual(content(readSiteFiles(path.join(dir, "site"))));
                } finally {
                    fs.rmSync(dir, { recursive: true });
                }
            }),
            { numRuns: 40 },
        );
    });
});

describe("readSite", () => {
    it("reads static.dir and static.archive to the same uploads", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-site-"));
        for (const [p, c] of Object.entries(SITE)) {
            fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
            fs.writeFileSync(path.join(dir, p), Buffer.from(c, "latin1"));
        }
        const fromDir = readSite({ dir });
        const fromArchive = readSite({ archive: "dist-gnu.tgz" }, FIXTURES);
        expect(content(fromDir)).toEqual(content(fromArchive));
        expect(readSiteFiles(dir)).toEqual(fromDir);
        expect(readSite({})).toEqual([]);
        fs.rmSync(dir, { recursive: true });
    });

    it("resolves a relative archive against the project, and ~/ against the deploying user's home", () => {
        expect(() => readSite({ archive: "missing.tgz" }, FIXTURES)).toThrow(expect.objectContaining({ code: "ENOENT" }));
        const inHome = path.join(os.homedir(), "vps-stack-no-such-site.tgz");
        expect(() => readSite({ archive: "~/vps-stack-no-such-site.tgz" }, "/project")).toThrow(expect.objectContaining({ code: "ENOENT", path: inHome }));
        expect(() => readSite({ dir: "~/vps-stack-no-such-dist" }, "/project")).toThrow(expect.objectContaining({ code: "ENOENT", path: path.join(os.homedir(), "vps-stack-no-such-dist") }));
    });
});

describe("materializeSite and siteFingerprint", () => {
    const files = [
        { path: "index.html", contentBase64: Buffer.from("<!doctype html>").toString("base64") },
        { path: "assets/app-3f9a1c2b.js", contentBase64: Buffer.from([0, 1, 2, 255]).toString("base64") },
    ];

    it("writes the files under their relative paths, once per directory", () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-materialize-"));
        const dir = path.join(root, "site-web-x", "site");
        materializeSite(files, dir);
        expect(fs.readFileSync(path.join(dir, "index.html"), "utf8")).toBe("<!doctype html>");
        expect([...fs.readFileSync(path.join(dir, "assets", "app-3f9a1c2b.js"))]).toEqual([0, 1, 2, 255]);
        // An existing directory is left as it is: its name already says what it holds.
        fs.writeFileSync(path.join(dir, "index.html"), "kept");
        materializeSite(files, dir);
        expect(fs.readFileSync(path.join(dir, "index.html"), "utf8")).toBe("kept");
        expect(fs.readdirSync(path.dirname(dir))).toEqual(["site"]);
        fs.rmSync(root, { recursive: true });
    });

    it("fingerprints paths and contents: the same site, the same name; any change, another", () => {
        expect(siteFingerprint(files)).toMatch(/^[0-9a-f]{12}$/);
        expect(siteFingerprint(files)).toBe(siteFingerprint(files.map((f) => ({ ...f }))));
        expect(siteFingerprint([files[0]])).not.toBe(siteFingerprint(files));
        expect(siteFingerprint([{ ...files[0], path: "other.html" }, files[1]])).not.toBe(siteFingerprint(files));
        expect(siteFingerprint([{ ...files[0], contentBase64: "eA==" }, files[1]])).not.toBe(siteFingerprint(files));
    });
});
