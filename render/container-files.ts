// The files a container reads (its config, scripts and secret files), in a volume of their own mounted
// read-only, so that the container's root filesystem can be read-only too. The Docker provider's uploads
// cannot do it: Docker refuses them on a read-only root (see READ_ONLY_ROOT in plan/container-defaults.ts).
//
// The volume is named after everything in it (and the image that carries it), so a change is a new
// volume beside the old one: the running container keeps reading its own files until it is replaced, a
// release's containers never see another release's secrets, and the old volume goes with the command that
// made it, after the containers that mounted it.
import * as crypto from "crypto";
import * as tar from "tar";
import { shellCommand, shellWord } from "../sinks/shell";

/** One file of the volume: a plain name (no directory), its content and its mode (always root's). */
export interface ContainerFile {
    name: string;
    content: string;
    mode: number;
}

/** Bumped when the way files are written changes: every files volume (and container) is then new. */
export const FILES_FORMAT = 1;

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

function checkFiles(files: ContainerFile[]): void {
    const seen = new Set<string>();
    for (const f of files) {
        if (!NAME_RE.test(f.name)) throw new Error(`container files: ${JSON.stringify(f.name)} is not a plain file name`);
        if (seen.has(f.name)) throw new Error(`container files: ${f.name} is given twice`);
        if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) throw new Error(`container files: ${f.name} has no valid mode (${f.mode})`);
        seen.add(f.name);
    }
}

/**
 * The volume's name: the container's, then 12 hex characters of a SHA-256 over the files and the image.
 * The files may hold secrets, so only this digest leaves the program; never the values themselves.
 */
export function filesVolumeName(container: string, image: string, files: ContainerFile[]): string {
    checkFiles(files);
    const h = crypto.createHash("sha256").update(`vps-stack container files\0${FILES_FORMAT}\0${image}`);
    for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) h.update(`\0${f.name}\0${f.mode.toString(8)}\0${f.content}`);
    return `${container}-files-${h.digest("hex").slice(0, 12)}`;
}

/**
 * The files as a tar archive in base64 (what `docker cp -` reads, decoded on the host): owned by root, the
 * modes given, a fixed date so the same files always make the same archive.
 */
export function filesArchive(files: ContainerFile[]): string {
    checkFiles(files);
    const blocks: Buffer[] = [];
    for (const f of files) {
        const body = Buffer.from(f.content, "utf8");
        const header = Buffer.alloc(512);
        new tar.Header({ path: f.name, mode: f.mode, uid: 0, gid: 0, uname: "root", gname: "root", size: body.length, mtime: new Date(0), type: "File" }).encode(header, 0);
        blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
    blocks.push(Buffer.alloc(1024));
    return Buffer.concat(blocks).toString("base64");
}

/**
 * Creates the volume and copies the archive (base64 on stdin) into it through a container of `image` that
 * is created and never started: `docker cp` needs no shell in the image, so any image carries its own
 * files. Re-running it writes the same files again.
 */
export function filesInstallCommand(a: { volume: string; image: string; labels: Record<string, string> }): string {
    const carrier = `${a.volume}-carrier`;
    const labels = Object.entries(a.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
    return [
        "set -e",
        `${shellCommand(["docker", "volume", "create", ...labels, a.volume])} >/dev/null`,
        // A carrier left by an interrupted run is not ours to keep.
        `docker rm -f ${shellWord(carrier)} >/dev/null 2>&1 || true`,
        `${shellCommand(["docker", "create", "--name", carrier, "--network", "none", "--entrypoint", "/vps-stack-never-runs", "-v", `${a.volume}:/files`, a.image])} >/dev/null`,
        `trap ${shellWord(`docker rm -f ${shellWord(carrier)} >/dev/null 2>&1`)} EXIT`,
        `base64 -d | docker cp - ${shellWord(`${carrier}:/files`)}`,
    ].join("\n");
}

/** Removes the volume; a volume still mounted fails with Docker's message (the next `pulumi up` retries). */
export function filesRemoveCommand(volume: string): string {
    const v = shellWord(volume);
    return `docker volume rm ${v} >/dev/null 2>&1 || ! docker volume inspect ${v} >/dev/null 2>&1 || docker volume rm ${v}`;
}
