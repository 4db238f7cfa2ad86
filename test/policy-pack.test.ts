// The policy pack's own policies (policy/policies.ts), run the way `pulumi preview --policy-pack policy`
// runs them: silent on every committed stack, and each one firing on a stack that breaks its invariant.
import * as path from "path";
import { policies } from "../policy/policies";
import { generatedSecrets, ROOT, stackConfig, withRequiredSecrets } from "./mocks";
import { clone, PolicyInput, policyInputs, runPolicies, runProgram, Violation } from "./policy-harness";

const MANDATORY = ["data-services-publish-nothing", "only-proxy-publishes", "no-secrets-in-containers", "data-network-internal", "data-services-on-internal-networks", "data-volumes-protected"];
const ADVISORY = ["images-pinned", "memory-limit", "log-rotation", "restart-policy", "healthcheck", "read-only-root"];

const fired = (vs: Violation[]) => [...new Set(vs.map((v) => v.policy))].sort();

/** No message may show a secret: the preview's output is posted to the pull request. */
function expectNoSecretIn(vs: Violation[]): void {
    for (const v of vs) for (const s of generatedSecrets) expect(v.message.includes(s) ? v.message : "").toBe("");
}

it("declares each invariant at its enforcement level", () => {
    const levels = Object.fromEntries(policies.map((p) => [p.name, p.enforcementLevel]));
    expect(Object.keys(levels).sort()).toEqual([...MANDATORY, ...ADVISORY].sort());
    for (const name of MANDATORY) expect([name, levels[name]]).toEqual([name, "mandatory"]);
    for (const name of ADVISORY) expect([name, levels[name]]).toEqual([name, "advisory"]);
});

describe.each(["dev", "preprod", "prod"])("the committed %s stack", (stack) => {
    it("passes every policy, in pulumi up and in pulumi preview", async () => {
        for (const preview of [false, true]) {
            await runProgram(stack, withRequiredSecrets(stackConfig(stack)), undefined, { preview });
            const violations = await runPolicies(stack, policyInputs());
            expect(violations).toEqual([]);
        }
    });
});

it("passes prod with the host's own nginx (apps on 127.0.0.1 only)", async () => {
    const raw: any = withRequiredSecrets(stackConfig("prod"));
    raw.nginx = { ...raw.nginx, mode: "host" };
    raw.apps = raw.apps.map((a: any, i: number) => ({ ...a, hostPort: 8000 + i * 10 }));
    await runProgram("prod", raw);
    expect(await runPolicies("prod", policyInputs())).toEqual([]);
});

describe("a deliberately bad prod stack", () => {
    let good: PolicyInput[];

    beforeAll(async () => {
        await runProgram("prod", withRequiredSecrets(stackConfig("prod")));
        good = policyInputs();
    });

    const TYPE = {
        container: "docker:index/container:Container",
        network: "docker:index/network:Network",
        volume: "docker:index/volume:Volume",
        image: "docker:index/remoteImage:RemoteImage",
        password: "random:index/randomPassword:RandomPassword",
    };

    /** The resource of `type` whose Docker name (or Pulumi name) is `name`, in a copy of the good stack. */
    function pick(resources: PolicyInput[], type: string, name: string | RegExp): PolicyInput {
        const r = resources.find((x) => x.type === type && [x.inputs.name, x.name].some((n) => (typeof name === "string" ? n === name : name.test(n ?? ""))));
        if (!r) throw new Error(`no ${type} named ${name}`);
        return r;
    }

    /** Sets a property on both the inputs (resource policies) and the outputs (stack policies). */
    function set(r: PolicyInput, key: string, value: unknown): void {
        if (value === undefined) {
            delete r.inputs[key];
            delete r.outputs[key];
        } else {
            r.inputs[key] = clone(value);
            r.outputs[key] = clone(value);
        }
    }

    const API = /^vps-stack-prod-api-[0-9a-f]{10}-1$/;

    const breakages: [string, string, (rs: PolicyInput[]) => void][] = [
        [
            "data-services-publish-nothing",
            "vps-stack-prod-postgres (postgres) publishes 127.0.0.1:5432->5432",
            (rs) => set(pick(rs, TYPE.container, "vps-stack-prod-postgres"), "ports", [{ internal: 5432, external: 5432, ip: "127.0.0.1", protocol: "tcp" }]),
        ],
        [
            "only-proxy-publishes",
            "publishes 0.0.0.0:3001->3001 on a public address: only the proxy (nginx) may",
            (rs) => set(pick(rs, TYPE.container, API), "ports", [{ internal: 3001, external: 3001, ip: "0.0.0.0", protocol: "tcp" }]),
        ],
        [
            "no-secrets-in-containers",
            "envs carries the secret of RandomPassword",
            (rs) => {
                const password = rs.find((r) => r.type === TYPE.password)!.outputs.result;
                const api = pick(rs, TYPE.container, API);
                set(api, "envs", [...(api.inputs.envs ?? []), `LEAKED=${password}`]);
            },
        ],
        [
            "data-network-internal",
            "network vps-stack-prod-data carries the data services but is not internal",
            // Only the network's inputs: its outputs would also make every data service's attachment wrong.
            (rs) => {
                pick(rs, TYPE.network, "vps-stack-prod-data").inputs.internal = false;
            },
        ],
        [
            "data-services-on-internal-networks",
            "vps-stack-prod-redis (redis) is attached to vps-stack-prod-edge, which is not an internal network",
            (rs) => {
                const redis = pick(rs, TYPE.container, "vps-stack-prod-redis");
                set(redis, "networksAdvanced", [...redis.inputs.networksAdvanced, { name: "vps-stack-prod-edge" }]);
            },
        ],
        [
            "data-volumes-protected",
            "volume vps-stack-prod-postgres-data holds postgres's data on the prod stack but is not protected",
            (rs) => {
                pick(rs, TYPE.volume, "vps-stack-prod-postgres-data").opts.protect = false;
            },
        ],
        ["images-pinned", "ghcr.io/example/orchestr-a-api:latest is tagged latest on the prod stack", (rs) => set(pick(rs, TYPE.image, "ghcr.io/example/orchestr-a-api:2.0.0"), "name", "ghcr.io/example/orchestr-a-api:latest")],
        ["memory-limit", "vps-stack-prod-redis has no memory limit", (rs) => set(pick(rs, TYPE.container, "vps-stack-prod-redis"), "memory", undefined)],
        ["log-rotation", "vps-stack-prod-nginx logs to json-file without max-size", (rs) => set(pick(rs, TYPE.container, "vps-stack-prod-nginx"), "logOpts", undefined)],
        ["restart-policy", 'vps-stack-prod-backup has restart policy "no"', (rs) => set(pick(rs, TYPE.container, "vps-stack-prod-backup"), "restart", "no")],
        ["healthcheck", "vps-stack-prod-acme has no healthcheck", (rs) => set(pick(rs, TYPE.container, "vps-stack-prod-acme"), "healthcheck", undefined)],
        ["read-only-root", "vps-stack-prod-redis has a writable root filesystem", (rs) => set(pick(rs, TYPE.container, "vps-stack-prod-redis"), "readOnly", false)],
    ];

    it("covers every policy of the pack", () => {
        expect(breakages.map(([p]) => p).sort()).toEqual(policies.map((p) => p.name).sort());
    });

    it.each(breakages)("%s fires, and only it", async (policy, message, breakIt) => {
        const bad = clone(good);
        breakIt(bad);
        const violations = await runPolicies("prod", bad);
        expect(fired(violations)).toEqual([policy]);
        expect(violations.map((v) => v.message)).toEqual([expect.stringContaining(message)]);
        expect(violations[0].enforcementLevel).toBe(MANDATORY.includes(policy) ? "mandatory" : "advisory");
        expect(violations[0].urn).toMatch(/^urn:pulumi:prod::vps-stack::/);
        expectNoSecretIn(violations);
    });

    it("fires every policy when all of it is wrong at once", async () => {
        const bad = clone(good);
        for (const [, , breakIt] of breakages) breakIt(bad);
        const violations = await runPolicies("prod", bad);
        expect(fired(violations)).toEqual([...MANDATORY, ...ADVISORY].sort());
        expectNoSecretIn(violations);
    });

    it("keeps judging what a preview knows: an unknown value is skipped, not a reason to give up", async () => {
        // The engine's own markers for values a preview does not know yet, from the pack's copy of @pulumi/policy.
        const unknowns = require(require.resolve("@pulumi/policy/proxy", { paths: [path.join(ROOT, "policy")] }));
        const bad = clone(good);
        set(pick(bad, TYPE.container, "vps-stack-prod-postgres"), "ports", [{ internal: 5432, external: unknowns.unknownNumberValue, ip: "127.0.0.1" }]);
        set(pick(bad, TYPE.container, "vps-stack-prod-nginx"), "ports", [{ internal: 443, external: unknowns.unknownNumberValue, ip: "0.0.0.0" }]);
        for (const r of bad.filter((x) => x.type === TYPE.password)) r.outputs.result = unknowns.unknownStringValue;
        set(pick(bad, TYPE.network, "vps-stack-prod-data"), "internal", unknowns.unknownBooleanValue);
        const violations = await runPolicies("prod", bad);
        // PostgreSQL publishes something, whatever its number; the proxy's unknown port and the rest are not judged.
        expect(violations.map((v) => [v.policy, v.message])).toEqual([["data-services-publish-nothing", expect.stringContaining("vps-stack-prod-postgres (postgres) publishes 127.0.0.1:?->5432")]]);
    });
});

describe("stacks made wrong through their config", () => {
    it("an unprotected prod data volume (postgres.protectVolume: false) is refused", async () => {
        const raw: any = withRequiredSecrets(stackConfig("prod"));
        raw.postgres = { ...raw.postgres, protectVolume: false };
        await runProgram("prod", raw);
        const violations = await runPolicies("prod", policyInputs());
        expect(violations.map((v) => [v.policy, v.enforcementLevel])).toEqual([["data-volumes-protected", "mandatory"]]);
        // The same config elsewhere is the stack's own business; the stacks are configurable.
        expect(await runPolicies("prod", policyInputs(), { "data-volumes-protected": { stacks: ["production"] } })).toEqual([]);
    });

    it("an unprotected prod Redis volume (redis.protectVolume: false) is refused too: its AOF holds sessions and queues", async () => {
        const raw: any = withRequiredSecrets(stackConfig("prod"));
        raw.redis = { ...raw.redis, protectVolume: false };
        await runProgram("prod", raw);
        const violations = await runPolicies("prod", policyInputs());
        expect(violations.map((v) => [v.policy, v.enforcementLevel, v.message])).toEqual([
            ["data-volumes-protected", "mandatory", expect.stringContaining("vps-stack-prod-redis-data holds redis's data on the prod stack but is not protected")],
        ]);
    });

    // An image tagged latest (or untagged) never gets this far: the config loader refuses it outside dev.
    // images-pinned guards the program itself, for a change that would pass such a reference through.

    it("secrets delivered in the environment (secretDelivery: env) are refused unless the policy's config allows that app", async () => {
        const raw: any = withRequiredSecrets(stackConfig("preprod"));
        raw.apps = raw.apps.map((a: any) => ({ ...a, secretDelivery: "env" }));
        await runProgram("preprod", raw);
        const violations = await runPolicies("preprod", policyInputs());
        expect(fired(violations)).toEqual(["no-secrets-in-containers"]);
        expect(violations.every((v) => /^vps-stack-preprod-api-[0-9a-f]{10}-1: envs carries the secret of /.test(v.message))).toBe(true);
        expectNoSecretIn(violations);
        expect(await runPolicies("preprod", policyInputs(), { "no-secrets-in-containers": { envAllowedFor: ["api"] } })).toEqual([]);
    });

    it("a proxy on another public port is refused until the policy's config allows that port", async () => {
        const raw: any = withRequiredSecrets(stackConfig("preprod"));
        raw.nginx = { ...raw.nginx, httpsPort: 8443 };
        await runProgram("preprod", raw);
        const violations = await runPolicies("preprod", policyInputs());
        expect(violations.map((v) => [v.policy, v.message])).toEqual([["only-proxy-publishes", expect.stringContaining("the proxy may publish only ports 80, 443")]]);
        expect(await runPolicies("preprod", policyInputs(), { "only-proxy-publishes": { allowedPorts: [80, 8443] } })).toEqual([]);
    });
});
