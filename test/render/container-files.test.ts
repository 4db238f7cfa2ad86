// The files volume's pure parts: its name follows everything in it (and nothing else), the archive is what
// `docker cp` unpacks (root's files, the modes given), and the host commands keep secrets off argv.
import * as tar from "tar";
import { ContainerFile, filesArchive, filesInstallCommand, filesRemoveCommand, filesVolumeName } from "../../render/container-files";

const files: ContainerFile[] = [
    { name: "redis.conf", content: "requirepass s3cr'et\n", mode: 0o444 },
    { name: "pw", content: "é".repeat(300), mode: 0o400 },
];

function unpack(b64: string) {
    const buf = Buffer.from(b64, "base64");
    const out: { path: string; mode: number; uid: number; gid: number; content: string }[] = [];
    for (let off = 0; buf[off] !== 0; ) {
        const h = new tar.Header(buf, off);
        out.push({ path: h.path!, mode: h.mode!, uid: h.uid!, gid: h.gid!, content: buf.subarray(off + 512, off + 512 + h.size!).toString("utf8") });
        off += 512 + Math.ceil(h.size! / 512) * 512;
    }
    return { out, length: buf.length };
}

describe("files volume name", () => {
    const name = (f: ContainerFile[], image = "sha256:aa") => filesVolumeName("vps-stack-prod-redis", image, f);

    it("is the container's name and a digest, the same for the same files in any order", () => {
        expect(name(files)).toMatch(/^vps-stack-prod-redis-files-[0-9a-f]{12}$/);
        expect(name([...files].reverse())).toBe(name(files));
    });

    it("changes with a content, a mode, a file name or the image, and never shows a content", () => {
        const base = name(files);
        expect(name([{ ...files[0], content: "requirepass other\n" }, files[1]])).not.toBe(base);
        expect(name([{ ...files[0], mode: 0o440 }, files[1]])).not.toBe(base);
        expect(name([{ ...files[0], name: "redis2.conf" }, files[1]])).not.toBe(base);
        expect(name(files, "sha256:bb")).not.toBe(base);
        expect(base).not.toContain("s3cr");
    });

    it("refuses a path, a repeated name or a bad mode", () => {
        expect(() => name([{ name: "../x", content: "", mode: 0o444 }])).toThrow(/not a plain file name/);
        expect(() => name([{ name: "a/b", content: "", mode: 0o444 }])).toThrow(/not a plain file name/);
        expect(() => name([files[0], files[0]])).toThrow(/given twice/);
        expect(() => name([{ name: "a", content: "", mode: 0o10000 }])).toThrow(/no valid mode/);
    });
});

describe("files archive", () => {
    it("holds each file, root's, with its mode and its bytes (UTF-8, past one block), and ends the tar", () => {
        const { out, length } = unpack(filesArchive(files));
        expect(out).toEqual([
            { path: "redis.conf", mode: 0o444, uid: 0, gid: 0, content: "requirepass s3cr'et\n" },
            { path: "pw", mode: 0o400, uid: 0, gid: 0, content: "é".repeat(300) },
        ]);
        expect(length % 512).toBe(0);
        // Two zero blocks close it.
        expect(Buffer.from(filesArchive(files), "base64").subarray(-1024).every((b) => b === 0)).toBe(true);
    });

    it("is the same for the same files", () => {
        expect(filesArchive(files)).toBe(filesArchive(files));
    });
});

describe("host commands", () => {
    const volume = filesVolumeName("vps-stack-prod-redis", "redis:7-alpine", files);

    it("creates the volume, copies the archive from stdin through a carrier that never runs, and removes the carrier", () => {
        const cmd = filesInstallCommand({ volume, image: "redis:7-alpine", labels: { "vps-stack.stack": "prod" } });
        expect(cmd).toContain(`docker volume create --label vps-stack.stack=prod ${volume} >/dev/null`);
        expect(cmd).toContain(`docker create --name ${volume}-carrier --network none --entrypoint /vps-stack-never-runs -v ${volume}:/files redis:7-alpine`);
        expect(cmd).toContain(`base64 -d | docker cp - ${volume}-carrier:/files`);
        expect(cmd).toMatch(/trap .*docker rm -f .*-carrier.* EXIT/);
        expect(cmd).not.toContain("s3cr");
    });

    it("quotes what it is given for the shell", () => {
        const cmd = filesInstallCommand({ volume: "v", image: "img; rm -rf /", labels: { "vps-stack.service": "a b" } });
        expect(cmd).toContain("'img; rm -rf /'");
        expect(cmd).toContain("'vps-stack.service=a b'");
    });

    it("removes the volume, succeeds when it is already gone, and fails with Docker's message while it is mounted", () => {
        expect(filesRemoveCommand(volume)).toBe(`docker volume rm ${volume} >/dev/null 2>&1 || ! docker volume inspect ${volume} >/dev/null 2>&1 || docker volume rm ${volume}`);
    });
});
