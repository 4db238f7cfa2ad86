// Reads a built front end (a local directory) into upload entries for its container. Kept small on
// purpose: the files travel in the stack's state, so a size limit guards against uploading a wrong dir.
import * as fs from "fs";
import * as path from "path";

export interface SiteFile {
    /** Path relative to the site root, with forward slashes. */
    path: string;
    contentBase64: string;
}

/** Larger sites belong in an image (apps[].image with static.root). */
export const MAX_SITE_BYTES = 50 * 1024 * 1024;

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
                if (total > MAX_SITE_BYTES) throw new Error(`${dir} holds more than ${MAX_SITE_BYTES / 1024 / 1024} MB; ship a site this large as an image (apps[].image with static.root)`);
                out.push({ path: r, contentBase64: bytes.toString("base64") });
            }
        }
    };
    walk("");
    return out;
}
