// The pack's policies: each one adapts what the engine passes (a resource, or the whole stack) to the shared
// predicates in predicates.ts and reports what they find. Kept apart from index.ts, which serves the pack,
// so the jest suite can run these very functions without starting a policy server.
import {
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
    UnknownValueError,
} from "@pulumi/policy";
import * as p from "./predicates";

/**
 * Copies the engine's properties into plain values. The engine's proxy throws on a value a preview does
 * not know; here it becomes UNKNOWN, which the predicates skip, so one unknown field does not silence a
 * whole policy.
 */
export function plain(v: any): any {
    if (v === null || typeof v !== "object") return v;
    const out: any = Array.isArray(v) ? [] : {};
    for (const key of Object.keys(v)) {
        let field: any;
        try {
            field = v[key];
        } catch (e) {
            if (e instanceof UnknownValueError || (e as Error)?.name === "UnknownValueError") {
                out[key] = p.UNKNOWN;
                continue;
            }
            throw e;
        }
        out[key] = plain(field);
    }
    return out;
}

function view(r: ResourceValidationArgs | PolicyResource): p.ResourceView {
    return { type: r.type, name: r.name, props: plain(r.props), protect: r.opts?.protect };
}

function report(problems: string[], reportViolation: ReportViolation, urn?: string): void {
    for (const problem of problems) reportViolation(problem, urn);
}

function resourcePolicy(
    policy: Omit<ResourceValidationPolicy, "validateResource">,
    check: (r: p.ResourceView, args: ResourceValidationArgs) => string[],
): ResourceValidationPolicy {
    return { ...policy, validateResource: (args, reportViolation) => report(check(view(args), args), reportViolation) };
}

function stackPolicy(
    policy: Omit<StackValidationPolicy, "validateStack">,
    check: (resources: { view: p.ResourceView; urn: string }[], args: StackValidationArgs) => { problems: string[]; urn: string }[],
): StackValidationPolicy {
    return {
        ...policy,
        validateStack: (args, reportViolation) => {
            const resources = args.resources.map((r) => ({ view: view(r), urn: r.urn }));
            for (const found of check(resources, args)) report(found.problems, reportViolation, found.urn);
        },
    };
}

/** Policy config with its schema's defaults: the engine passes only what a config file sets. */
function config<T extends object>(args: { getConfig<C extends object>(): C }, defaults: T): T {
    return { ...defaults, ...args.getConfig<Partial<T>>() };
}

const stringList = (description: string, defaults: string[]) => ({ type: "array" as const, items: { type: "string" as const }, default: defaults, description });

export const dataServicesPublishNothing = resourcePolicy(
    {
        name: "data-services-publish-nothing",
        description: "PostgreSQL, Redis and the backup job publish no port, not even on 127.0.0.1.",
        enforcementLevel: "mandatory",
        severity: "critical",
    },
    (r) => p.dataServicePorts(r),
);

export const onlyProxyPublishes = resourcePolicy(
    {
        name: "only-proxy-publishes",
        description: "Only the proxy publishes on a public address, and only the allowed ports (80 and 443 unless configured).",
        enforcementLevel: "mandatory",
        severity: "high",
        configSchema: {
            properties: {
                allowedPorts: {
                    type: "array",
                    items: { type: "integer", minimum: 1, maximum: 65535 },
                    default: p.DEFAULT_ALLOWED_PORTS,
                    description: "Ports the proxy may publish on a public address (the stack's nginx.httpPort and nginx.httpsPort).",
                },
            },
        },
    },
    (r, args) => p.publicPorts(r, config(args, { allowedPorts: p.DEFAULT_ALLOWED_PORTS }).allowedPorts),
);

export const noSecretsInContainers = stackPolicy(
    {
        name: "no-secrets-in-containers",
        description: "No generated secret (random password, private key) in a container's environment, command, entrypoint, labels or healthcheck.",
        enforcementLevel: "mandatory",
        severity: "critical",
        configSchema: {
            properties: {
                envAllowedFor: stringList("Services (the vps-stack.service label: an app's name) whose image reads secrets from the environment only (apps[].secretDelivery: env).", []),
            },
        },
    },
    (resources, args) => {
        const { envAllowedFor } = config(args, { envAllowedFor: [] as string[] });
        const secrets = p.generatedSecrets(resources.map((r) => r.view));
        return resources.map((r) => ({ urn: r.urn, problems: p.secretsInContainer(r.view, secrets, envAllowedFor) }));
    },
);

export const dataNetworkInternal = resourcePolicy(
    {
        name: "data-network-internal",
        description: "The stack's data network (PostgreSQL, Redis, the backup job) is internal.",
        enforcementLevel: "mandatory",
        severity: "high",
    },
    (r) => p.dataNetworkInternal(r),
);

export const dataServicesOnInternalNetworks = stackPolicy(
    {
        name: "data-services-on-internal-networks",
        description: "PostgreSQL, Redis and the backup job are attached to internal networks of the stack only.",
        enforcementLevel: "mandatory",
        severity: "high",
    },
    (resources) => {
        const networks = resources.map((r) => r.view).filter((v) => v.type === p.NETWORK);
        return resources.map((r) => ({ urn: r.urn, problems: p.dataServiceNetworks(r.view, networks) }));
    },
);

export const dataVolumesProtected = resourcePolicy(
    {
        name: "data-volumes-protected",
        description: "On prod, the volumes holding the stack's data are protected from deletion.",
        enforcementLevel: "mandatory",
        severity: "high",
        configSchema: {
            properties: {
                stacks: stringList("Stacks whose data volumes must be protected.", p.DEFAULT_PROTECTED_STACKS),
                services: stringList("Services (the vps-stack.service label) whose volumes hold data.", p.DEFAULT_PROTECTED_VOLUME_SERVICES),
            },
        },
    },
    (r, args) => {
        const c = config(args, { stacks: p.DEFAULT_PROTECTED_STACKS, services: p.DEFAULT_PROTECTED_VOLUME_SERVICES });
        return p.volumeProtected(r, p.stackOfUrn(args.urn), c.stacks, c.services);
    },
);

export const imagesPinned = resourcePolicy(
    {
        name: "images-pinned",
        description: "On prod, images are pinned: a version tag or a digest, never latest.",
        enforcementLevel: "advisory",
        severity: "medium",
        configSchema: { properties: { stacks: stringList("Stacks whose images must be pinned.", p.DEFAULT_PINNED_STACKS) } },
    },
    (r, args) => p.imagePinned(r, p.stackOfUrn(args.urn), config(args, { stacks: p.DEFAULT_PINNED_STACKS }).stacks),
);

export const memoryLimit = resourcePolicy(
    { name: "memory-limit", description: "Every container has a memory limit.", enforcementLevel: "advisory", severity: "medium" },
    (r) => p.memoryLimit(r),
);

export const logRotation = resourcePolicy(
    { name: "log-rotation", description: "Every container's logs are rotated.", enforcementLevel: "advisory", severity: "medium" },
    (r) => p.logRotation(r),
);

export const restartPolicy = resourcePolicy(
    { name: "restart-policy", description: "Every long-running container restarts after a crash or a reboot.", enforcementLevel: "advisory", severity: "medium" },
    (r) => p.restartPolicy(r),
);

export const healthcheck = resourcePolicy(
    { name: "healthcheck", description: "Every long-running container has a healthcheck.", enforcementLevel: "advisory", severity: "low" },
    (r) => p.healthcheck(r),
);

export const readOnlyRoot = resourcePolicy(
    { name: "read-only-root", description: "Every long-running container has a read-only root filesystem.", enforcementLevel: "advisory", severity: "low" },
    (r) => p.readOnlyRoot(r),
);

export const policies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
    dataServicesPublishNothing,
    onlyProxyPublishes,
    noSecretsInContainers,
    dataNetworkInternal,
    dataServicesOnInternalNetworks,
    dataVolumesProtected,
    imagesPinned,
    memoryLimit,
    logRotation,
    restartPolicy,
    healthcheck,
    readOnlyRoot,
];

// The tests drive these policies the way the engine does, through this pack's own copy of @pulumi/policy
// (the root project does not depend on it).
export { unknownCheckingProxy } from "@pulumi/policy";
export type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
