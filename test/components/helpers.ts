// Shared by the component tests (one file per ComponentResource beside this one): a preprod config, the
// whole stack built under Pulumi mocks with its raw props captured, and lookups into what it recorded.
import * as crypto from "crypto";
import * as path from "path";
import * as tar from "tar";
import * as pulumi from "@pulumi/pulumi";
import { loadConfig, StackConfig } from "../../config";
import { VpsStack } from "../../components/vps-stack";
import { CONTAINER, isWrappedSecret, LOCAL_COMMAND, ofType, recorded, REMOTE_COMMAND, resetRecorded, settled, setupMocks, tempStateDir } from "../mocks";

export const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";

/** Raw props as the program passed them (Outputs intact), to check which are secret. */
export const rawProps = new Map<string, { type: string; props: any; opts: pulumi.ResourceOptions }>();
const capture: pulumi.ResourceTransformation = (a) => {
    // By name, and by type and name: the proxy's config volume and config command share a name.
    rawProps.set(a.name, { type: a.type, props: a.props, opts: a.opts });
    rawProps.set(`${a.type}::${a.name}`, { type: a.type, props: a.props, opts: a.opts });
    return undefined;
};

export function preprodConfig(extra: (c: any) => void = () => {}): StackConfig {
    const raw: any = {
        host: { address: "203.0.113.10", port: 2222, hostKey: KEY, privateKeyPath: "/dev/null" },
        domain: "app.example.com",
        apps: [
            { name: "api", image: "ghcr.io/acme/api:1.4.2", port: 3001, paths: ["/api"], healthPath: "/api/health", replicas: 2, secrets: { JWT_SECRET: "generate", WHATSAPP_API_KEY: "required" } },
            { name: "web", image: "ghcr.io/acme/web:2.0.0", port: 3000, database: false, redis: false, secrets: {}, healthPath: "/" },
        ],
        secrets: { WHATSAPP_API_KEY: "provided-whatsapp-key" },
    };
    extra(raw);
    return loadConfig(raw, "preprod");
}

/** preprodConfig's edit for the host's own nginx (nginx.mode host): each app published on its own port. */
export const hostMode = (c: any) => {
    c.nginx = { mode: "host" };
    c.apps[0].hostPort = 8000;
    c.apps[1].hostPort = 8010;
};

export async function build(cfg: StackConfig): Promise<VpsStack> {
    setupMocks(cfg.stack);
    const stack = new VpsStack("vps-stack", cfg, { stateDir: tempStateDir(), transformations: [capture] });
    await settled();
    return stack;
}

export function container(name: string) {
    const c = ofType(CONTAINER).find((r) => r.inputs.name === name);
    if (!c) throw new Error(`no container ${name}; have ${ofType(CONTAINER).map((r) => r.inputs.name).join(", ")}`);
    return c.inputs;
}

/** A recorded resource by type and name (names may repeat across types). */
export function byTypeName(type: string, name: string) {
    const r = recorded.find((x) => x.type === type && x.name === name);
    if (!r) throw new Error(`no ${type} named ${name}`);
    return r;
}

/** The release id of an app as the stack resolved it; fails the test in host mode (no releases). */
export function rel(stack: VpsStack, app: string): string {
    const id = stack.apps[app].release;
    if (!id) throw new Error(`app ${app} has no release`);
    return id;
}

/** The image id the mocks give a pulled image (see mocks.ts). */
export const mockImageId = (ref: string) => `sha256:${crypto.createHash("sha256").update(ref).digest("hex")}`;

/** The arguments of vps_proxy_install in the proxy config command's stdin, base64-decoded. */
export function proxyInstallArgs(stdin: string): string[] {
    const m = stdin.match(/\nvps_proxy_install (.*)\n$/);
    if (!m) throw new Error("no vps_proxy_install call at the end of the stdin");
    const [dir, ...b64] = m[1].split(" ");
    return [dir, ...b64.map((b) => Buffer.from(b, "base64").toString())];
}

/**
 * `actual` holds exactly `expected`, in order, by identity. (toEqual on resources would print whole
 * resource graphs on failure and run out of memory.)
 */
export function expectSameResources(actual: unknown, expected: unknown[]) {
    const list = (actual ?? []) as unknown[];
    expect(list.map((r) => expected.indexOf(r))).toEqual(expected.map((_, i) => i));
}

/** The files of a files volume, read back from its command's archive (as `docker cp` would unpack it). */
export function filesOfCommand(cmd: { inputs: any }): Map<string, { content: string; mode: number; uid: number; gid: number }> {
    const buf = Buffer.from(cmd.inputs.stdin, "base64");
    const out = new Map<string, { content: string; mode: number; uid: number; gid: number }>();
    for (let off = 0; off + 512 <= buf.length && buf[off] !== 0; ) {
        const h = new tar.Header(buf, off);
        const size = h.size ?? 0;
        out.set(h.path!, { content: buf.subarray(off + 512, off + 512 + size).toString("utf8"), mode: h.mode!, uid: h.uid!, gid: h.gid! });
        off += 512 + Math.ceil(size / 512) * 512;
    }
    return out;
}

/** The command that fills the files volume a container mounts at `dir` (read-only). */
export function filesCommand(inputs: any, dir: string) {
    const mount = (inputs.volumes ?? []).find((v: any) => v.containerPath === dir);
    if (!mount) throw new Error(`no volume at ${dir}; have ${(inputs.volumes ?? []).map((v: any) => v.containerPath).join(", ")}`);
    if (mount.readOnly !== true) throw new Error(`the files volume at ${dir} is not read-only`);
    const cmd = recorded.find((r) => (r.type === REMOTE_COMMAND || r.type === LOCAL_COMMAND) && r.inputs.triggers?.[0] === mount.volumeName);
    if (!cmd) throw new Error(`no command fills ${mount.volumeName}`);
    return cmd;
}

/** A file a container reads from its files volume: content and permissions ("0444"). */
export function upload(inputs: any, file: string) {
    const f = filesOfCommand(filesCommand(inputs, path.posix.dirname(file))).get(path.posix.basename(file));
    if (!f) throw new Error(`no file ${file}`);
    return { content: f.content, permissions: `0${f.mode.toString(8)}`, uid: f.uid, gid: f.gid };
}

/** Whether the archive with `file` reached the engine as a secret. */
export async function uploadIsSecret(resourceName: string, file: string): Promise<boolean> {
    const inputs = recorded.find((r) => r.type === CONTAINER && r.name === resourceName)!.inputs;
    return isWrappedSecret(filesCommand(inputs, path.posix.dirname(file)).raw.stdin);
}

/** For beforeEach: forget the previous test's resources and raw props. */
export function resetCaptured(): void {
    resetRecorded();
    rawProps.clear();
}
