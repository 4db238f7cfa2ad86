// Shared Pulumi mocks: record every resource the program registers (with its resolved inputs), return
// realistic state per resource type, and refuse invokes we do not expect.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vm from "vm";
import * as pulumi from "@pulumi/pulumi";
import YAML from "yaml";
import { RawConfigMap } from "../config";

export interface Recorded {
    type: string;
    name: string;
    /** Inputs with secrets unwrapped (provider inputs JSON-decoded). */
    inputs: any;
    /** Inputs as the engine received them: secrets still wrapped in their signature object. */
    raw: any;
    provider?: string;
    /** The resource's state as the mocks returned it (inputs plus computed values such as a password's result). */
    outputs: any;
    /** Resource options the engine would see; the mock API does not pass them, so setupMocks reads them off the request. */
    opts: { protect: boolean; retainOnDelete: boolean };
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** True when `v` is a value the engine received marked secret. */
export function isWrappedSecret(v: any): boolean {
    return v !== null && typeof v === "object" && SECRET_SIG in v;
}

/** Removes secret wrappers, so tests can read values. */
export function unwrapSecrets(v: any): any {
    if (isWrappedSecret(v)) return unwrapSecrets(v.value);
    if (Array.isArray(v)) return v.map(unwrapSecrets);
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
    return v;
}

/** Provider inputs arrive JSON-encoded; decode the structured ones. */
function decodeProviderInputs(inputs: any): any {
    const out: any = {};
    for (const [k, v] of Object.entries<any>(inputs)) {
        out[k] = typeof v === "string" && /^[[{]/.test(v) ? JSON.parse(v) : v;
    }
    return out;
}

export const recorded: Recorded[] = [];
/** Every secret value the mocks generated (random passwords, private keys). */
export const generatedSecrets = new Set<string>();

export const CONTAINER = "docker:index/container:Container";
export const NETWORK = "docker:index/network:Network";
export const VOLUME = "docker:index/volume:Volume";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
export const DOCKER_PROVIDER = "pulumi:providers:docker";
export const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";
export const REMOTE_COMMAND = "command:remote:Command";
export const LOCAL_COMMAND = "command:local:Command";

function digest(s: string): string {
    return crypto.createHash("sha256").update(s).digest("hex");
}

function state(type: string, name: string, inputs: any): Record<string, any> {
    switch (type) {
        case RANDOM_PASSWORD: {
            // Alphanumeric and unique per resource, like the real thing.
            const value = (digest(name) + digest(name + "2")).replace(/[^a-z0-9]/g, "").slice(0, inputs.length);
            const result = "Aa1" + value.slice(3);
            generatedSecrets.add(result);
            return { ...inputs, result };
        }
        case "tls:index/privateKey:PrivateKey": {
            const pem = `-----BEGIN PRIVATE KEY-----\nMOCK${digest(name).slice(0, 40)}\n-----END PRIVATE KEY-----\n`;
            generatedSecrets.add(pem.trim());
            return { ...inputs, privateKeyPem: pem, publicKeyPem: `-----BEGIN PUBLIC KEY-----\n${name}\n-----END PUBLIC KEY-----\n` };
        }
        case "tls:index/selfSignedCert:SelfSignedCert":
        case "tls:index/locallySignedCert:LocallySignedCert":
            return { ...inputs, certPem: `-----BEGIN CERTIFICATE-----\nMOCK-${name}\n-----END CERTIFICATE-----\n` };
        case "tls:index/certRequest:CertRequest":
            return { ...inputs, certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\n${name}\n-----END CERTIFICATE REQUEST-----\n` };
        case REMOTE_IMAGE:
            return { ...inputs, imageId: `sha256:${digest(inputs.name)}`, repoDigest: `${inputs.name}@sha256:${digest(inputs.name)}` };
        case REMOTE_COMMAND:
        case LOCAL_COMMAND: {
            // VpsHost.dataDir's command prints the directory it made, as the real shell would.
            const dataDir = /d="\$HOME\/\.local\/share\/vps-stack\/([^"]+)"/.exec(String(inputs.create ?? ""));
            return { ...inputs, stdout: dataDir ? `/home/deploy/.local/share/vps-stack/${dataDir[1]}\n` : "", stderr: "" };
        }
        case CONTAINER: {
            // Without a name input, Pulumi auto-names the container after the resource, with a random suffix.
            const named = { ...inputs, name: inputs.name ?? `${name}-${digest(name).slice(0, 7)}` };
            // A container run to completion (attach) reports how it exited, as the Docker provider does; in a
            // preview it has not run, and its exit code is unknown.
            return inputs.attach && !pulumi.runtime.isDryRun() ? { ...named, exitCode: exitCodes.get(name) ?? 0 } : named;
        }
        default:
            return { ...inputs };
    }
}

/** Exit codes for containers run to completion (migrations), by resource name; 0 when not set. */
const exitCodes = new Map<string, number>();

/** Makes the container run to completion under resource name `name` exit with `code`. */
export function setExitCode(name: string, code: number): void {
    exitCodes.set(name, code);
}

export interface MockOptions {
    /** Runs the program as `pulumi preview` does (pulumi.runtime.isDryRun() is true). Default false: `pulumi up`. */
    preview?: boolean;
}

export function setupMocks(stack: string, project = "vps-stack", options: MockOptions = {}): void {
    const resourceOptions = new Map<string, Recorded["opts"]>();
    pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                let inputs = unwrapSecrets(args.inputs);
                if (args.type.startsWith("pulumi:providers:")) inputs = decodeProviderInputs(inputs);
                const outputs = state(args.type, args.name, inputs);
                const opts = resourceOptions.get(`${args.type}::${args.name}`) ?? { protect: false, retainOnDelete: false };
                recorded.push({ type: args.type, name: args.name, inputs, raw: args.inputs, provider: args.provider, outputs, opts });
                return { id: `${args.name}-id`, state: outputs };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                if (args.token === "docker:index/getRegistryImage:getRegistryImage") {
                    return { name: args.inputs.name, sha256Digest: `sha256:${digest("registry:" + args.inputs.name)}` };
                }
                throw new Error(`unexpected invoke ${args.token}`);
            },
        },
        project,
        stack,
        options.preview ?? false,
    );
    // Policies judge options too (a protected volume): take them from the request before the mock sees it.
    const monitor = pulumi.runtime.getMonitor() as any;
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: any) => {
        resourceOptions.set(`${req.getType()}::${req.getName()}`, { protect: req.getProtect() === true, retainOnDelete: req.getRetainondelete() === true });
        return register(req, callback);
    };
}

export function resetRecorded(): void {
    recorded.length = 0;
    exitCodes.clear();
}

/**
 * Runs `body` and returns the errors Pulumi raised as unhandled rejections meanwhile: that is how a resource
 * that fails to register (e.g. an input that rejects) fails `pulumi up`. Jest gives each test file its own
 * `process`, and fails the running test on any such rejection; the real process is reached through vm.
 */
export async function programFailures(body: () => Promise<void>): Promise<Error[]> {
    const real: NodeJS.Process = vm.runInThisContext("process");
    const saved = real.listeners("unhandledRejection");
    const failures: Error[] = [];
    const onFailure = (e: unknown) => failures.push(e as Error);
    real.removeAllListeners("unhandledRejection");
    real.on("unhandledRejection", onFailure);
    try {
        await body();
        await new Promise((r) => setImmediate(r));
    } finally {
        real.off("unhandledRejection", onFailure);
        for (const l of saved) real.on("unhandledRejection", l);
    }
    return failures;
}

export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => output.apply(resolve));
}

/** Waits until the program has stopped registering resources. */
export async function settled(): Promise<void> {
    let last = -1;
    let stable = 0;
    while (stable < 30) {
        await new Promise((r) => setImmediate(r));
        if (recorded.length === last) stable++;
        else {
            stable = 0;
            last = recorded.length;
        }
    }
}

export function ofType(type: string): Recorded[] {
    return recorded.filter((r) => r.type === type);
}

export function byName(name: string): Recorded {
    const r = recorded.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}; have: ${recorded.map((x) => x.name).join(", ")}`);
    return r;
}

export const ROOT = path.join(__dirname, "..");

/** A committed stack file as a RawConfigMap; `secure:` values become recognisable placeholders. */
export function stackConfig(stack: string): RawConfigMap {
    const doc = YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) ?? {};
    const out: RawConfigMap = {};
    for (const [k, v] of Object.entries<any>(doc.config ?? {})) {
        const [ns, key] = k.split(":");
        if (ns === "vps-stack") out[key] = v;
    }
    return out;
}

/** Values for every secret the stack's apps mark "required", as an operator would set them. */
export function withRequiredSecrets(raw: RawConfigMap): RawConfigMap {
    const secrets: Record<string, string> = { ...((raw.secrets as Record<string, string>) ?? {}) };
    for (const app of (raw.apps as any[]) ?? []) {
        for (const [n, spec] of Object.entries(app.secrets ?? {})) if (spec === "required") secrets[n] = `provided-${n.toLowerCase()}-value`;
    }
    return { ...raw, secrets };
}

const stateDirs: string[] = [];
export function tempStateDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-test-"));
    stateDirs.push(dir);
    return dir;
}
// Each test file that imports this module removes the state directories it made: a run of the unit tests
// makes hundreds, and they would pile up in /tmp from one run to the next.
if (typeof afterAll === "function") afterAll(() => stateDirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
