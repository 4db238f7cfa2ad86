// Program-wide policies: run the whole program (index.ts) under mocks for every committed stack and
// assert invariants over every resource it creates and every output it exports. Where an invariant is also
// one of the policy pack's, the assertion is the pack's own predicate (policy/predicates.ts).
import * as pulumi from "@pulumi/pulumi";
import * as predicates from "../policy/predicates";
import {
    CONTAINER,
    DOCKER_PROVIDER,
    generatedSecrets,
    isWrappedSecret,
    LOCAL_COMMAND,
    NETWORK,
    ofType,
    RANDOM_PASSWORD,
    recorded,
    REMOTE_COMMAND,
    resetRecorded,
    stackConfig,
    VOLUME,
    withRequiredSecrets,
} from "./mocks";
import { Program, RawConfig, runProgram, viewOf, views } from "./policy-harness";

function resolve<T>(o: pulumi.Input<T>): Promise<T> {
    return new Promise((r) => pulumi.output(o).apply((v) => r(v as T)));
}

const strings = predicates.strings;

/** The secrets of a run as the pack's predicates take them; the source names the value without showing it. */
function secretValues(provided: string[]): predicates.SecretValue[] {
    return [...generatedSecrets, ...provided].map((value, i) => ({ value, source: `secret #${i}` }));
}

const STACKS: [string, number, number][] = [
    ["dev", 8080, 8443],
    ["preprod", 80, 443],
    ["prod", 80, 443],
];

describe.each(STACKS)("stack %s", (stack, httpPort, httpsPort) => {
    let program: Program;
    let providedSecrets: string[];

    beforeAll(async () => {
        const raw = withRequiredSecrets(stackConfig(stack));
        providedSecrets = Object.values((raw.secrets as Record<string, string>) ?? {});
        program = await runProgram(stack, raw);
    });

    const longRunning = () => ofType(CONTAINER).filter((c) => !(c.inputs.labels ?? []).some((l: any) => l.label === "vps-stack.one-shot"));

    const acme = (stackConfig(stack).tls as { mode?: string } | undefined)?.mode === "acme";

    it("creates containers for postgres, redis, the backup job, the WAL receiver, every app replica and nginx (and certbot with ACME)", () => {
        const names = longRunning().map((c) => c.inputs.name);
        const services = ["postgres", "redis", "backup", "wal", "nginx", ...(acme ? ["acme"] : [])];
        expect(names).toEqual(expect.arrayContaining(services.map((s) => `vps-stack-${stack}-${s}`)));
        const apps = stackConfig(stack).apps as any[];
        const replicas = apps.reduce((n, a) => n + (a.replicas ?? 1), 0);
        expect(names).toHaveLength(services.length + replicas);
    });

    it(`publishes ports only on the proxy, and only ${httpPort}/${httpsPort}`, () => {
        for (const c of ofType(CONTAINER)) {
            const v = viewOf(c);
            expect([...predicates.dataServicePorts(v), ...predicates.publicPorts(v, [httpPort, httpsPort])]).toEqual([]);
            const ports = c.inputs.ports ?? [];
            if (c.inputs.name === `vps-stack-${stack}-nginx`) {
                expect(ports.map((p: any) => p.external).sort()).toEqual([httpPort, httpsPort].sort());
            } else {
                expect(ports).toEqual([]);
            }
        }
    });

    it("gives every container a restart policy, healthcheck, memory limit and log rotation", () => {
        for (const c of longRunning()) {
            const v = viewOf(c);
            expect([...predicates.restartPolicy(v), ...predicates.healthcheck(v), ...predicates.memoryLimit(v), ...predicates.logRotation(v)]).toEqual([]);
            // The program's own choices, stricter than the pack asks.
            const i = c.inputs;
            expect([i.name, i.restart]).toEqual([i.name, "unless-stopped"]);
            expect(i.healthcheck?.tests?.length).toBeGreaterThan(1);
            expect(i.memory).toBeGreaterThan(0);
            expect(i.logDriver).toBe("json-file");
            expect(i.logOpts).toEqual({ "max-size": "10m", "max-file": "5" });
            expect(i.securityOpts).toContain("no-new-privileges:true");
        }
    });

    it("gives every container a PIDs limit applied on its host, a read-only root (unless an app opts out), and no provider upload", () => {
        const commands = [...ofType(REMOTE_COMMAND), ...ofType(LOCAL_COMMAND)];
        for (const c of longRunning()) {
            const i = c.inputs;
            const declared = (i.labels ?? []).find((l: any) => l.label === "vps-stack.pids-limit")?.value;
            expect([i.name, Number(declared)]).toEqual([i.name, expect.any(Number)]);
            expect(Number(declared)).toBeGreaterThanOrEqual(16);
            // The provider has no pids_limit: a host command sets it once the container exists.
            const update = commands.filter((cmd) => cmd.inputs.create === `docker update --pids-limit ${declared} ${i.name} >/dev/null`);
            expect([i.name, update.length]).toEqual([i.name, 1]);
            // Docker refuses the provider's uploads into a read-only root (READ_ONLY_ROOT): files come in
            // read-only volumes of their own instead.
            expect([i.name, i.uploads ?? []]).toEqual([i.name, []]);
            const optedOut = ((stackConfig(stack).apps as any[]) ?? []).some((a) => a.readOnly === false && i.name.startsWith(`vps-stack-${stack}-${a.name}-`));
            if (!optedOut) expect([i.name, i.readOnly]).toEqual([i.name, true]);
            if (i.readOnly) expect(i.tmpfs?.["/tmp"]).toBe("rw,noexec,nosuid,size=64m");
            for (const v of (i.volumes ?? []).filter((v: any) => /-files-[0-9a-f]{12}$/.test(v.volumeName ?? ""))) {
                expect([i.name, v.containerPath, v.readOnly]).toEqual([i.name, v.containerPath, true]);
            }
        }
        const nginx = longRunning().find((c) => c.inputs.name === `vps-stack-${stack}-nginx`)!.inputs;
        expect([nginx.readOnly, nginx.removeVolumes, nginx.uploads ?? []]).toEqual([true, true, []]);
    });

    it("runs one-shot containers (migrations) to completion, limited and log-rotated, never restarted", () => {
        const oneShots = ofType(CONTAINER).filter((c) => !longRunning().includes(c));
        // Each release runs its own migration: vps-stack-<stack>-<app>-<release>-migrate.
        const migrating = ((stackConfig(stack).apps as any[]) ?? []).filter((a) => a.migrate).map((a) => `vps-stack-${stack}-${a.name}-${program.releases[a.name].release}-migrate`);
        expect(oneShots.map((c) => c.name)).toEqual(migrating);
        for (const c of oneShots) {
            const v = viewOf(c);
            expect([...predicates.memoryLimit(v), ...predicates.logRotation(v), ...predicates.publicPorts(v, [])]).toEqual([]);
            expect(predicates.isOneShot(v)).toBe(true);
            expect(c.inputs).toMatchObject({ restart: "no", mustRun: false, attach: true, logDriver: "json-file", logOpts: { "max-size": "10m", "max-file": "5" } });
            expect(c.inputs.memory).toBeGreaterThan(0);
            expect(c.inputs.ports ?? []).toEqual([]);
        }
    });

    it("releases every app: containers, gate and drain named after its release, exported with its history command", async () => {
        const apps = stackConfig(stack).apps as any[];
        const releases = await resolve(program.releases);
        expect(Object.keys(releases).sort()).toEqual(apps.map((a) => a.name).sort());
        for (const [index, a] of apps.entries()) {
            const r = releases[a.name];
            expect(r).toMatchObject({ index, image: expect.any(String) });
            expect(r.release).toMatch(/^[0-9a-f]{10}$/);
            expect(r.history).toMatch(new RegExp(`(^|\\s)cat \\S*\\.local/state/vps-stack/${stack}/releases-${a.name}\\.log$`));
            const names = longRunning().map((c) => c.inputs.name).filter((n: string) => n.startsWith(`vps-stack-${stack}-${a.name}-`));
            expect(names.sort()).toEqual(Array.from({ length: a.replicas ?? 1 }, (_, i) => `vps-stack-${stack}-${a.name}-${r.release}-${i + 1}`));
            const commands = [...ofType(REMOTE_COMMAND), ...ofType(LOCAL_COMMAND)].map((c) => c.name);
            expect(commands).toContain(`vps-stack-app-${a.name}-${r.release}-gate`);
            expect(commands).toContain(`vps-stack-app-${a.name}-${r.release}-drain`);
        }
    });

    it("marks every host command input that carries a secret (even base64-encoded) as secret", () => {
        const secrets = [...generatedSecrets, ...providedSecrets];
        const forms = secrets.flatMap((s) => [s, Buffer.from(s).toString("base64"), Buffer.from(`${s}\n`).toString("base64")]);
        let carrying = 0;
        for (const c of [...ofType(REMOTE_COMMAND), ...ofType(LOCAL_COMMAND)]) {
            for (const [key, value] of Object.entries<any>(c.inputs)) {
                if (key === "connection") continue; // the whole connection is secret (test/components/vps-host.test.ts)
                if (!strings(value).some((v) => forms.some((f) => v.includes(f)))) continue;
                carrying++;
                expect([c.name, key, isWrappedSecret(c.raw[key])]).toEqual([c.name, key, true]);
            }
        }
        // At least the proxy's key (CA and provided TLS) or PostgreSQL's password.
        expect(carrying).toBeGreaterThan(0);
    });

    it("attaches PostgreSQL, Redis, the backup job and the WAL receiver to the internal data network only", () => {
        const networks = ofType(NETWORK).map((n) => viewOf(n));
        expect(networks.flatMap(predicates.dataNetworkInternal)).toEqual([]);
        const dataServices = ofType(CONTAINER).filter((c) => predicates.DATA_SERVICES.includes(predicates.serviceOf(viewOf(c)) ?? ""));
        expect(dataServices).toHaveLength(4);
        for (const c of dataServices) expect(predicates.dataServiceNetworks(viewOf(c), networks)).toEqual([]);
        const internal = ofType(NETWORK).filter((n) => n.inputs.internal).map((n) => n.inputs.name);
        expect(internal).toEqual([`vps-stack-${stack}-data`]);
        for (const svc of ["postgres", "redis", "backup", "wal"]) {
            const c = ofType(CONTAINER).find((x) => x.inputs.name === `vps-stack-${stack}-${svc}`)!;
            expect(c.inputs.networksAdvanced.map((n: any) => n.name)).toEqual(internal);
        }
    });

    it("never puts a secret value in a container's environment, command, labels or healthcheck", () => {
        const secrets = secretValues(providedSecrets);
        expect(secrets.length).toBeGreaterThan(3);
        for (const c of ofType(CONTAINER)) expect(predicates.secretsInContainer(viewOf(c), secrets)).toEqual([]);
    });

    it("finds every secret it generates in the resources' outputs, as the policy pack does", () => {
        const found = predicates.generatedSecrets(views("outputs")).map((s) => s.value);
        const generators = recorded.filter((r) => r.type === RANDOM_PASSWORD || r.type === "tls:index/privateKey:PrivateKey");
        expect(found.length).toBeGreaterThanOrEqual(generators.length);
        expect(generators.length).toBeGreaterThan(1);
        for (const s of found) expect(generatedSecrets.has(s)).toBe(true);
    });

    it(`protects the data volume ${stack === "prod" ? "" : "only "}on prod, and pins every image there`, () => {
        const volumes = ofType(VOLUME).map((v) => viewOf(v));
        const postgres = volumes.find((v) => predicates.serviceOf(v) === "postgres")!;
        expect(postgres.protect).toBe(stack === "prod");
        expect(volumes.flatMap((v) => predicates.volumeProtected(v, stack, ["prod"], predicates.DEFAULT_PROTECTED_VOLUME_SERVICES))).toEqual([]);
        expect(views().flatMap((r) => predicates.imagePinned(r, stack, ["prod"]))).toEqual([]);
    });

    it("creates every docker resource through the stack's own provider", () => {
        const providers = ofType(DOCKER_PROVIDER);
        expect(providers).toHaveLength(1);
        for (const r of recorded.filter((x) => x.type.startsWith("docker:index/"))) {
            expect(r.provider).toContain("pulumi:providers:docker::vps-stack-host-docker::");
        }
    });

    it("marks every output that carries a secret as secret", async () => {
        const secrets = [...generatedSecrets, ...providedSecrets];
        let checked = 0;
        for (const [name, value] of Object.entries(program)) {
            const leaves: [string, any][] =
                value === null || pulumi.Output.isInstance(value) || typeof value !== "object" ? [[name, value]] : Object.entries(value).map(([k, v]) => [`${name}.${k}`, v]);
            for (const [key, leaf] of leaves) {
                const resolved = await resolve(leaf);
                const carries = strings(resolved).some((s) => secrets.some((x) => s.includes(x)));
                if (carries) {
                    checked++;
                    expect([key, await pulumi.isSecret(pulumi.output(leaf))]).toEqual([key, true]);
                }
            }
        }
        // postgres.password, postgresConnectionString, redisUrl at least
        expect(checked).toBeGreaterThanOrEqual(3);
        expect(await pulumi.isSecret(program.postgresConnectionString)).toBe(true);
        expect(await pulumi.isSecret(program.redisUrl)).toBe(true);
    });

    it("exports URLs, health URLs, the CA certificate (or the ACME commands), network and container names", async () => {
        const urls = await resolve(program.urls);
        const health = await resolve(program.healthUrls);
        const port = httpsPort === 443 ? "" : `:${httpsPort}`;
        for (const app of Object.keys(urls)) {
            expect(urls[app]).toMatch(new RegExp(`^https://[a-z.]+${port}/`));
            expect(health[app]).toMatch(new RegExp(`^https://[a-z.]+${port}/`));
        }
        if (acme) {
            // null, not undefined: Pulumi warns about every undefined output.
            expect(program.caCertificate).toBeNull();
            const out = await resolve(program.acme);
            expect(out.directoryUrl).toBe("https://acme-v02.api.letsencrypt.org/directory");
            expect(out.certificateName).toMatch(/^vps-stack-[0-9a-f]{10}$/);
            expect(out.commands.status).toContain(`docker exec vps-stack-${stack}-acme `);
            expect((await resolve(program.containers)).acme).toBe(`vps-stack-${stack}-acme`);
        } else {
            expect(await resolve(program.caCertificate)).toContain("BEGIN CERTIFICATE");
        }
        expect(await resolve(program.networks)).toEqual({ edge: `vps-stack-${stack}-edge`, data: `vps-stack-${stack}-data` });
        expect((await resolve(program.containers)).nginx).toBe(`vps-stack-${stack}-nginx`);
    });
});

describe("pulumi preview", () => {
    // A preview runs the program with unknowns where `up` has values (a migration's exit code among them);
    // it must plan the same resources, or the preview does not show what `up` will do.
    const resources = () => recorded.map((r) => `${r.type}::${r.name}`).sort();

    it.each(STACKS.map(([s]) => s))("plans the same resources as up for the %s stack", async (stack) => {
        const raw = withRequiredSecrets(stackConfig(stack));
        await runProgram(stack, raw);
        const up = resources();
        await runProgram(stack, raw, undefined, { preview: true });
        expect(pulumi.runtime.isDryRun()).toBe(true);
        expect(resources()).toEqual(up);
        // prod's api has a migration: in a preview the replicas cannot wait for its exit code.
        if ((stackConfig(stack).apps as any[]).some((a) => a.migrate)) {
            const migrations = ofType(CONTAINER).filter((c) => c.name.endsWith("-migrate"));
            expect(migrations.length).toBeGreaterThan(0);
        }
    });
});

describe("bad config", () => {
    it("fails before any resource when there is no way to authenticate over SSH", async () => {
        let error: unknown;
        try {
            await runProgram("preprod", withRequiredSecrets(stackConfig("preprod")), {});
        } catch (e) {
            error = e;
        }
        expect(pulumi.RunError.isInstance(error)).toBe(true);
        expect((error as Error).message).toContain("vps-stack:host.privateKeyPath is not set and no SSH agent is running");
        expect(recorded).toHaveLength(0);
    });

    it("fails before any resource is registered, with every problem in one message", async () => {
        const raw: RawConfig = { ...stackConfig("prod"), domain: "bad..domain" };
        let error: unknown;
        resetRecorded();
        try {
            await runProgram("prod", raw);
        } catch (e) {
            error = e;
        }
        // isolateModules loads its own copy of @pulumi/pulumi, so compare by brand, not by class.
        expect(pulumi.RunError.isInstance(error)).toBe(true);
        const message = (error as Error).message;
        expect(message).toContain("vps-stack:domain ");
        expect(message).toContain("vps-stack:secrets.WHATSAPP_API_KEY ");
        expect(message).toContain("pulumi config set --secret --path 'secrets.WHATSAPP_API_KEY' <value>");
        expect(recorded).toHaveLength(0);
    });
});

describe("prod with the host's own nginx (nginx.mode host)", () => {
    beforeAll(async () => {
        const raw: any = withRequiredSecrets(stackConfig("prod"));
        raw.nginx = { ...raw.nginx, mode: "host" };
        raw.apps = raw.apps.map((a: any, i: number) => ({ ...a, hostPort: 8000 + i * 10 }));
        await runProgram("prod", raw);
    });

    it("publishes nothing on a public address: apps on 127.0.0.1 only, no proxy container", () => {
        const published = ofType(CONTAINER).flatMap((c) => (c.inputs.ports ?? []).map((p: any) => ({ name: c.inputs.name, ...p })));
        expect(published.map((p) => p.external).sort()).toEqual([8000, 8001, 8010]);
        // Loopback only: the pack lets no container publish on a public address here.
        expect(ofType(CONTAINER).flatMap((c) => predicates.publicPorts(viewOf(c), []))).toEqual([]);
        for (const p of published) expect(p.ip).toBe("127.0.0.1");
        expect(ofType(CONTAINER).map((c) => c.inputs.name)).not.toContain("vps-stack-prod-nginx");
    });

    it("keeps data services on the internal network and every secret out of container environments", () => {
        const networks = ofType(NETWORK).map((n) => viewOf(n));
        for (const svc of ["postgres", "redis", "backup"]) {
            const c = ofType(CONTAINER).find((x) => x.inputs.name === `vps-stack-prod-${svc}`)!;
            expect(c.inputs.networksAdvanced.map((n: any) => n.name)).toEqual(["vps-stack-prod-data"]);
            expect(predicates.dataServiceNetworks(viewOf(c), networks)).toEqual([]);
        }
        const secrets = secretValues([]);
        for (const c of ofType(CONTAINER)) expect(predicates.secretsInContainer(viewOf(c), secrets)).toEqual([]);
    });
});
