// The program's invariants as pure functions over plain resource values: the policy pack runs them at
// `pulumi preview` time and the jest suite runs them over every committed stack, so both judge the same way.
// No Pulumi import here: a value the engine does not know yet (a preview) arrives as UNKNOWN and is skipped.

/** Stands for a value Pulumi does not know yet (in a preview); a predicate never judges it. */
export const UNKNOWN: unique symbol = Symbol.for("vps-stack.policy.unknown");

export const CONTAINER = "docker:index/container:Container";
export const NETWORK = "docker:index/network:Network";
export const VOLUME = "docker:index/volume:Volume";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";

/** What every predicate sees of a resource: its type, names and properties, and the options policies judge. */
export interface ResourceView {
    type: string;
    /** The Pulumi resource name (the container's own name, when known, is preferred in messages). */
    name: string;
    props: Record<string, any>;
    protect?: boolean;
}

/** The label the program puts on every container, network and volume, naming its part of the stack. */
export const SERVICE_LABEL = "vps-stack.service";
/** A container that runs to completion (a migration): no restart policy or healthcheck to ask of it. */
export const ONE_SHOT_LABEL = "vps-stack.one-shot";
/** The services that hold or reach the stack's data and must never be published. */
export const DATA_SERVICES = ["postgres", "redis", "backup", "wal"];
/** The reverse proxy: the one service allowed to publish on a public address. */
export const PROXY_SERVICE = "nginx";
/** The network the data services sit on. */
export const DATA_NETWORK_SERVICE = "data";

export const DEFAULT_ALLOWED_PORTS = [80, 443];
export const DEFAULT_PROTECTED_STACKS = ["prod"];
export const DEFAULT_PROTECTED_VOLUME_SERVICES = ["postgres", "redis"];
export const DEFAULT_PINNED_STACKS = ["prod"];
export const RESTART_POLICIES = ["unless-stopped", "always", "on-failure"];

function known<T>(v: T | typeof UNKNOWN | undefined | null): v is T {
    return v !== UNKNOWN && v !== undefined && v !== null;
}

/** The value of a Docker label, from the provider's `[{ label, value }]` list. */
export function label(props: Record<string, any>, key: string): string | undefined {
    const labels = props.labels;
    if (!Array.isArray(labels)) return undefined;
    const found = labels.find((l) => known(l) && l.label === key);
    return found && typeof found.value === "string" ? found.value : undefined;
}

export function serviceOf(r: ResourceView): string | undefined {
    return label(r.props, SERVICE_LABEL);
}

export function isOneShot(r: ResourceView): boolean {
    return label(r.props, ONE_SHOT_LABEL) === "true";
}

/** How messages name a resource: the Docker name when known, else the Pulumi name. */
export function displayName(r: ResourceView): string {
    return typeof r.props.name === "string" ? r.props.name : r.name;
}

/** The stack of a resource, from its URN (`urn:pulumi:<stack>::<project>::…`). */
export function stackOfUrn(urn: string): string | undefined {
    const m = /^urn:pulumi:([^:]+)::/.exec(urn);
    return m ? m[1] : undefined;
}

/** Every string inside a value, however nested; unknowns are left out. */
export function strings(v: unknown): string[] {
    if (typeof v === "string") return [v];
    if (Array.isArray(v)) return v.flatMap(strings);
    if (v !== null && typeof v === "object") return Object.values(v).flatMap(strings);
    return [];
}

interface Port {
    internal?: unknown;
    external?: unknown;
    ip?: unknown;
}

function ports(r: ResourceView): Port[] {
    return Array.isArray(r.props.ports) ? r.props.ports.filter(known) : [];
}

/** Docker binds a port without an address to every interface. */
export function isLoopback(ip: unknown): boolean {
    return typeof ip === "string" && (ip === "::1" || /^127\.\d+\.\d+\.\d+$/.test(ip) || ip === "localhost");
}

function describePort(p: Port): string {
    const ip = typeof p.ip === "string" && p.ip !== "" ? p.ip : "0.0.0.0";
    const external = known(p.external) ? String(p.external) : "?";
    return `${ip}:${external}->${known(p.internal) ? String(p.internal) : "?"}`;
}

// ---- mandatory: security and data safety ----

/** PostgreSQL, Redis, the backup job and the WAL receiver publish nothing, not even on 127.0.0.1. */
export function dataServicePorts(c: ResourceView): string[] {
    const service = serviceOf(c);
    if (c.type !== CONTAINER || !service || !DATA_SERVICES.includes(service)) return [];
    return ports(c).map(
        (p) => `${displayName(c)} (${service}) publishes ${describePort(p)}: ${service} must publish no port; apps reach it over the stack's data network, operators through an SSH tunnel (docker exec)`,
    );
}

/**
 * Only the proxy publishes on a non-loopback address, and only the allowed ports. Ports on 127.0.0.1 are
 * not reachable from outside (the dev stack's proxy, apps behind the host's own nginx).
 */
export function publicPorts(c: ResourceView, allowedPorts: number[]): string[] {
    if (c.type !== CONTAINER) return [];
    const service = serviceOf(c);
    const problems: string[] = [];
    for (const p of ports(c)) {
        if (p.ip === UNKNOWN || isLoopback(p.ip)) continue;
        if (service !== PROXY_SERVICE) {
            problems.push(`${displayName(c)} publishes ${describePort(p)} on a public address: only the proxy (${PROXY_SERVICE}) may; bind it to 127.0.0.1 or route it through the proxy`);
        } else if (known(p.external) && !allowedPorts.includes(Number(p.external))) {
            problems.push(`${displayName(c)} publishes ${describePort(p)}: the proxy may publish only ports ${allowedPorts.join(", ")} (the policy's allowedPorts)`);
        }
    }
    return problems;
}

/** A secret value and the resource it comes from (named in messages instead of the value). */
export interface SecretValue {
    value: string;
    source: string;
}

const GENERATED: Record<string, string[]> = {
    "random:index/randomPassword:RandomPassword": ["result"],
    "random:index/randomString:RandomString": ["result"],
    "tls:index/privateKey:PrivateKey": ["privateKeyPem", "privateKeyOpenssh", "privateKeyPemPkcs8"],
};

/** The secrets the stack generates (random passwords, private keys), from its resources' outputs. */
export function generatedSecrets(resources: ResourceView[]): SecretValue[] {
    const out: SecretValue[] = [];
    for (const r of resources) {
        for (const key of GENERATED[r.type] ?? []) {
            const v = r.props[key];
            // Short values would match by accident; generated secrets are long.
            if (typeof v === "string" && v.trim().length >= 8) out.push({ value: v.trim(), source: `${r.type.split(":").pop()} ${r.name}` });
        }
    }
    return out;
}

/** The container fields `docker inspect` (and `ps` on the host) show to anyone who can run them. */
export const VISIBLE_FIELDS = ["envs", "command", "entrypoints", "labels", "healthcheck"];

/**
 * No secret in a container's environment, command, entrypoint, labels or healthcheck: `docker inspect`
 * shows them. `envAllowedFor` names services whose image can only read secrets from the environment
 * (apps with `secretDelivery: env`). Messages name the secret's source, never its value.
 */
export function secretsInContainer(c: ResourceView, secrets: SecretValue[], envAllowedFor: string[] = []): string[] {
    if (c.type !== CONTAINER) return [];
    const service = serviceOf(c);
    const problems: string[] = [];
    for (const field of VISIBLE_FIELDS) {
        if (field === "envs" && service && envAllowedFor.includes(service)) continue;
        const visible = strings(c.props[field]);
        for (const s of secrets) {
            const forms = [s.value, Buffer.from(s.value).toString("base64")];
            if (visible.some((v) => forms.some((f) => v.includes(f)))) {
                problems.push(`${displayName(c)}: ${field} carries the secret of ${s.source}, which docker inspect shows; deliver it as a file (an upload with mode 0400 and a *_FILE variable)`);
            }
        }
    }
    return problems;
}

/** The stack's data network is internal: nothing on it reaches, or is reached from, outside the host. */
export function dataNetworkInternal(n: ResourceView): string[] {
    if (n.type !== NETWORK || serviceOf(n) !== DATA_NETWORK_SERVICE) return [];
    if (n.props.internal === UNKNOWN || n.props.internal === true) return [];
    return [`network ${displayName(n)} carries the data services but is not internal: set internal: true`];
}

/** PostgreSQL, Redis, the backup job and the WAL receiver are attached to internal networks only. */
export function dataServiceNetworks(c: ResourceView, networks: ResourceView[]): string[] {
    const service = serviceOf(c);
    if (c.type !== CONTAINER || !service || !DATA_SERVICES.includes(service)) return [];
    const attached = Array.isArray(c.props.networksAdvanced) ? c.props.networksAdvanced.filter(known) : [];
    const problems: string[] = [];
    for (const a of attached) {
        if (!known(a.name)) continue;
        const n = networks.find((x) => x.type === NETWORK && (x.props.name === a.name || x.name === a.name));
        if (n && n.props.internal === UNKNOWN) continue;
        if (!n || n.props.internal !== true) {
            problems.push(`${displayName(c)} (${service}) is attached to ${a.name}, which is not an internal network of this stack: data services sit on the internal data network only`);
        }
    }
    if (typeof c.props.networkMode === "string" && c.props.networkMode === "host") {
        problems.push(`${displayName(c)} (${service}) uses the host's network: data services sit on the internal data network only`);
    }
    return problems;
}

/**
 * In the protected stacks, the volumes that hold the stack's data are protected, so `pulumi destroy`
 * (or a change that replaces them) stops before the data goes.
 */
export function volumeProtected(v: ResourceView, stack: string | undefined, protectedStacks: string[], services: string[]): string[] {
    if (v.type !== VOLUME || !stack || !protectedStacks.includes(stack)) return [];
    const service = serviceOf(v);
    if (!service || !services.includes(service) || v.protect === true) return [];
    return [`volume ${displayName(v)} holds ${service}'s data on the ${stack} stack but is not protected: set protect: true (${service}.protectVolume)`];
}

// ---- advisory: hygiene ----

/** Why an image reference is not pinned, or undefined when it is (a digest, or a tag other than latest). */
export function unpinnedImage(ref: string): string | undefined {
    if (/@sha256:[a-f0-9]{64}$/.test(ref) || /^sha256:[a-f0-9]{64}$/.test(ref)) return undefined;
    const lastSegment = ref.slice(ref.lastIndexOf("/") + 1);
    const colon = lastSegment.indexOf(":");
    if (colon < 0) return `${ref} has no tag (Docker reads it as :latest)`;
    const tag = lastSegment.slice(colon + 1);
    if (tag === "latest") return `${ref} is tagged latest`;
    return undefined;
}

/** In the stacks that must be reproducible, images are pinned: a version tag or a digest, never latest. */
export function imagePinned(r: ResourceView, stack: string | undefined, pinnedStacks: string[]): string[] {
    if (!stack || !pinnedStacks.includes(stack)) return [];
    // Containers usually run a pulled image's id (already pinned); a reference there is judged too.
    const ref = r.type === REMOTE_IMAGE ? r.props.name : r.type === CONTAINER ? r.props.image : undefined;
    if (typeof ref !== "string") return [];
    const why = unpinnedImage(ref);
    return why ? [`${displayName(r)}: ${why} on the ${stack} stack: pin a version tag or a digest, so a deploy runs what was reviewed`] : [];
}

/** Every container has a memory limit, so one runaway process cannot take the host down. */
export function memoryLimit(c: ResourceView): string[] {
    if (c.type !== CONTAINER || c.props.memory === UNKNOWN) return [];
    const m = c.props.memory;
    return typeof m === "number" && m > 0 ? [] : [`${displayName(c)} has no memory limit: set memory (MiB)`];
}

/** Logs are rotated: json-file with a max-size, or a driver that rotates or ships them itself. */
export function logRotation(c: ResourceView): string[] {
    if (c.type !== CONTAINER || c.props.logDriver === UNKNOWN) return [];
    const driver = typeof c.props.logDriver === "string" && c.props.logDriver !== "" ? c.props.logDriver : "json-file";
    if (driver !== "json-file") return [];
    const opts = c.props.logOpts;
    if (opts === UNKNOWN) return [];
    const maxSize = opts && typeof opts === "object" ? opts["max-size"] : undefined;
    return typeof maxSize === "string" && maxSize !== "" ? [] : [`${displayName(c)} logs to json-file without max-size: the log grows until the disk is full; set logOpts max-size and max-file`];
}

/** Long-running containers come back after a crash or a reboot. */
export function restartPolicy(c: ResourceView): string[] {
    if (c.type !== CONTAINER || isOneShot(c) || c.props.restart === UNKNOWN) return [];
    const restart = c.props.restart;
    return typeof restart === "string" && RESTART_POLICIES.includes(restart)
        ? []
        : [`${displayName(c)} has restart policy ${JSON.stringify(restart ?? "no")}: it stays down after a crash or a reboot; use unless-stopped`];
}

/** Long-running containers have a healthcheck, so `wait`, releases and operators know they serve. */
export function healthcheck(c: ResourceView): string[] {
    if (c.type !== CONTAINER || isOneShot(c) || c.props.healthcheck === UNKNOWN) return [];
    const tests = c.props.healthcheck?.tests;
    if (tests === UNKNOWN) return [];
    const ok = Array.isArray(tests) && tests.length > 1 && tests[0] !== "NONE";
    return ok ? [] : [`${displayName(c)} has no healthcheck: Docker cannot tell a hung service from a healthy one`];
}

/**
 * Long-running containers have a read-only root (CIS Docker Benchmark 5.13): what a compromised process
 * writes is gone with the container, and nothing of the image can be altered. vps-stack gives every
 * container one; an app opts out with apps[].readOnly false.
 */
export function readOnlyRoot(c: ResourceView): string[] {
    if (c.type !== CONTAINER || isOneShot(c) || c.props.readOnly === UNKNOWN) return [];
    return c.props.readOnly === true ? [] : [`${displayName(c)} has a writable root filesystem: give it a read-only one (apps[].readOnly true, with volumes where it writes)`];
}
