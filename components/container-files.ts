// A container's files (config, scripts, secret files) in a read-only volume of their own, so its root can
// be read-only: see render/container-files.ts for why and how.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { STACK_LABEL } from "../plan/container-defaults";
import { ContainerFile, filesArchive, filesInstallCommand, filesRemoveCommand, filesVolumeName } from "../render/container-files";
import type { VpsHost } from "./vps-host";

export interface ContainerFileInput {
    name: string;
    content: pulumi.Input<string>;
    mode: number;
}

export interface ContainerFiles {
    /** The mount to give the container (read-only at `dir`). */
    mount: docker.types.input.ContainerVolume;
    /** What the container must be created after. */
    ready: pulumi.Resource;
}

/**
 * Puts `files` in a volume mounted read-only at `dir` of the container (nothing else of the image is at
 * `dir` any more). `image` is the container's own image (it carries the files and is never started), so a
 * new image is a new volume exactly when it is a new container anyway.
 */
export function containerFiles(
    host: VpsHost,
    name: string,
    a: { container: string; stack: string; service: string; image: pulumi.Input<string>; dir: string; files: ContainerFileInput[] },
    opts?: pulumi.CustomResourceOptions,
): ContainerFiles {
    const files = pulumi.all([pulumi.output(a.image), ...a.files.map((f) => pulumi.output(f.content))]).apply(([image, ...contents]) => ({
        image,
        files: a.files.map((f, i): ContainerFile => ({ name: f.name, content: contents[i], mode: f.mode })),
    }));
    const volume = files.apply(({ image, files }) => filesVolumeName(a.container, image, files));
    const command = host.run(
        name,
        {
            create: pulumi.all([volume, files]).apply(([v, f]) => filesInstallCommand({ volume: v, image: f.image, labels: { [STACK_LABEL]: a.stack, "vps-stack.service": a.service } })),
            delete: volume.apply(filesRemoveCommand),
            // The archive (secrets included) travels on stdin, never in argv.
            stdin: pulumi.secret(files.apply((f) => filesArchive(f.files))),
            // A new name is a new command (the provider only replaces on triggers): the new volume is made
            // beside the old one, which the old command removes once its containers are gone. Any other
            // change (vps-stack's own command) writes the same files into the same volume again.
            triggers: [volume],
        },
        opts,
    );
    return {
        mount: { volumeName: volume, containerPath: a.dir, readOnly: true },
        ready: command,
    };
}

/**
 * Files at absolute paths: one read-only volume per directory (a script on the image's PATH, secret files
 * under /run/secrets), each named after its directory's last part.
 */
export function containerFilesAt(
    host: VpsHost,
    name: string,
    a: { container: string; stack: string; service: string; image: pulumi.Input<string> },
    files: { path: string; content: pulumi.Input<string>; mode: number }[],
    opts?: pulumi.CustomResourceOptions,
): { mounts: docker.types.input.ContainerVolume[]; ready: pulumi.Resource[] } {
    const dirs = [...new Set(files.map((f) => path.posix.dirname(f.path)))];
    const slugs = dirs.map((d) => path.posix.basename(d).toLowerCase().replace(/[^a-z0-9]+/g, "-"));
    if (new Set(slugs).size !== slugs.length) throw new Error(`container files: two directories end in the same name (${dirs.join(", ")})`);
    const made = dirs.map((dir, i) =>
        containerFiles(
            host,
            `${name}-${slugs[i]}`,
            {
                ...a,
                container: `${a.container}-${slugs[i]}`,
                dir,
                files: files.filter((f) => path.posix.dirname(f.path) === dir).map((f) => ({ name: path.posix.basename(f.path), content: f.content, mode: f.mode })),
            },
            opts,
        ),
    );
    return { mounts: made.map((m) => m.mount), ready: made.map((m) => m.ready) };
}
