// Runs the whole program under mocks, and runs the policy pack's own policies over what it recorded, the
// way the engine calls them: resource policies on each resource's inputs, stack policies on every
// resource's outputs, properties behind @pulumi/policy's unknown-checking proxy.
import * as pulumi from "@pulumi/pulumi";
import { ResourceView } from "../policy/predicates";
import { policies, PolicyResource, ResourceValidationPolicy, StackValidationPolicy, unknownCheckingProxy } from "../policy/policies";
import { MockOptions, Recorded, recorded, resetRecorded, settled, setupMocks, tempStateDir } from "./mocks";

export type Program = Record<string, any>;
export type RawConfig = Record<string, unknown>;

export async function runProgram(
    stack: string,
    raw: RawConfig,
    env: { sshAuthSock?: string } = { sshAuthSock: "/tmp/test-agent.sock" },
    options: MockOptions = {},
): Promise<Program> {
    resetRecorded();
    if (env.sshAuthSock) process.env.SSH_AUTH_SOCK = env.sshAuthSock;
    else delete process.env.SSH_AUTH_SOCK;
    process.env.VPS_STACK_STATE_DIR = tempStateDir();
    const config = Object.fromEntries(Object.entries(raw).map(([k, v]) => [`vps-stack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
    pulumi.runtime.setAllConfig(config, ["vps-stack:secrets"]);
    setupMocks(stack, undefined, options);
    let program: Program = {};
    jest.isolateModules(() => {
        program = require("../index");
    });
    await settled();
    return program;
}

/** A recorded resource as the predicates see it: its inputs (what a resource policy gets), or its outputs. */
export function viewOf(r: Recorded, of: "inputs" | "outputs" = "inputs"): ResourceView {
    return { type: r.type, name: r.name, props: r[of], protect: r.opts.protect };
}

export function views(of: "inputs" | "outputs" = "inputs"): ResourceView[] {
    return recorded.map((r) => viewOf(r, of));
}

/** A resource to hand to the policies: a recorded one, possibly changed, or one made up. */
export interface PolicyInput {
    type: string;
    name: string;
    inputs: any;
    outputs: any;
    opts: { protect: boolean };
}

/**
 * A deep copy made in the test's own realm. structuredClone builds its objects in Node's main realm, where
 * `instanceof Object` is false inside jest's sandbox, and @pulumi/policy's proxy then leaves them unchecked.
 */
export function clone<T>(v: T): T {
    if (Array.isArray(v)) return v.map(clone) as T;
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)])) as T;
    return v;
}

export function policyInputs(): PolicyInput[] {
    return recorded.map((r) => ({ type: r.type, name: r.name, inputs: clone(r.inputs), outputs: clone(r.outputs), opts: { protect: r.opts.protect } }));
}

export interface Violation {
    policy: string;
    enforcementLevel: string;
    message: string;
    urn?: string;
}

const urnOf = (stack: string, r: PolicyInput) => `urn:pulumi:${stack}::vps-stack::${r.type}::${r.name}`;

const options = (r: PolicyInput) => ({ protect: r.opts.protect, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [] });

/** Runs every policy of the pack over `resources` of `stack`, with `config` as a policy config file would set it. */
export async function runPolicies(stack: string, resources: PolicyInput[], config: Record<string, Record<string, unknown>> = {}): Promise<Violation[]> {
    const found: Violation[] = [];
    const getConfig = (name: string) => <T extends object>() => (config[name] ?? {}) as T;
    const notApplicable = (reason?: string): never => {
        throw new Error(`not applicable: ${reason}`);
    };
    for (const policy of policies) {
        const level = policy.enforcementLevel ?? "advisory";
        const record = (message: string, urn?: string) => found.push({ policy: policy.name, enforcementLevel: level, message, urn });
        if ("validateResource" in policy && policy.validateResource) {
            const validations = ([] as NonNullable<ResourceValidationPolicy["validateResource"]>[]).concat(policy.validateResource).flat();
            for (const r of resources) {
                const urn = urnOf(stack, r);
                for (const validate of validations) {
                    await validate(
                        {
                            type: r.type,
                            name: r.name,
                            urn,
                            props: unknownCheckingProxy(r.inputs),
                            opts: options(r),
                            stackTags: new Map(),
                            isType: () => false,
                            asType: () => undefined,
                            getConfig: getConfig(policy.name),
                            notApplicable,
                        },
                        (message) => record(message, urn),
                    );
                }
            }
        }
        if ("validateStack" in policy) {
            const stackResources: PolicyResource[] = resources.map((r) => ({
                type: r.type,
                name: r.name,
                urn: urnOf(stack, r),
                props: unknownCheckingProxy(r.outputs),
                opts: options(r),
                dependencies: [],
                propertyDependencies: {},
                isType: () => false,
                asType: () => undefined,
            }));
            await (policy as StackValidationPolicy).validateStack(
                { resources: stackResources, stackTags: new Map(), getConfig: getConfig(policy.name), notApplicable },
                record,
            );
        }
    }
    return found;
}
