// Component tests under Pulumi mocks: every child resource and the inputs that matter (names, networks,
// healthchecks, uploads and their modes, limits, log options, ports, replacement behaviour).
import * as fc from "fast-check";
import * as pulumi from "@pulumi/pulumi";
import { loadConfig, StackConfig } from "../config";
import { LOG_OPTS } from "../plan/container-defaults";
import { POSTGRES_INIT_FILE, POSTGRES_PASSWORD_FILE } from "../components/postgres-service";
import { REDIS_CONF_FILE } from "../components/redis-service";
import * as crypto from "crypto";
import { NGINX_CONF_FILE, PROXY_CONFIG_DIR, proxyScript, upstreamWatcher } from "../render/proxy";
import { ACME_SCRIPT, ACME_SERVED_FILE } from "../render/acme";
import { acmeCertName } from "../plan/tls";
import { drainScript, gateScript } from "../render/release";
import { appRelease } from "../plan/release";
import { appUrls } from "../plan/routes";
import { durationSeconds } from "../config";
import { VpsStack } from "../components/vps-stack";
import {
    byName,
    CONTAINER,
    DOCKER_PROVIDER,
    generatedSecrets,
    isWrappedSecret,
    LOCAL_COMMAND,
    NETWORK,
    ofType,
    programFailures,
    promiseOf,
    RANDOM_PASSWORD,
    recorded,
    REMOTE_COMMAND,
    REMOTE_IMAGE,
    resetRecorded,
    setExitCode,
    settled,
    setupMocks,
    tempStateDir,
    VOLUME,
} from "./mocks";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";

/** Raw props as the program passed them (Outputs intact), to check which are secret. */
const rawProps = new Map<string, { type: string; props: any; opts: pulumi.ResourceOptions }>();
const capture: pulumi.ResourceTransformation = (a) => {
    // By name, and by type and name: the proxy's config volume and config command share a name.
    rawProps.set(a.name, { type: a.type, props: a.props, opts: a.opts });
    rawProps.set(`${a.type}::${a.name}`, { type: a.type, props: a.props, opts: a.opts });
    return undefined;
};

function preprodConfig(extra: (c: any) => void = () => {}): StackConfig {
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

async function build(cfg: StackConfig): Promise<VpsStack> {
    setupMocks(cfg.stack);
    const stack = new VpsStack("vps-stack", cfg, { stateDir: tempStateDir(), transformations: [capture] });
    await settled();
    return stack;
}

function container(name: string) {
    const c = ofType(CONTAINER).find((r) => r.inputs.name === name);
    if (!c) throw new Error(`no container ${name}; have ${ofType(CONTAINER).map((r) => r.inputs.name).join(", ")}`);
    return c.inputs;
}

/** A recorded resource by type and name (names may repeat across types). */
function byTypeName(type: string, name: string) {
    const r = recorded.find((x) => x.type === type && x.name === name);
    if (!r) throw new Error(`no ${type} named ${name}`);
    return r;
}

/** The release id of an app as the stack resolved it; fails the test in host mode (no releases). */
function rel(stack: VpsStack, app: string): string {
    const id = stack.apps[app].release;
    if (!id) throw new Error(`app ${app} has no release`);
    return id;
}

/** The image id the mocks give a pulled image (see mocks.ts). */
const mockImageId = (ref: string) => `sha256:${crypto.createHash("sha256").update(ref).digest("hex")}`;

/** The arguments of vps_proxy_install in the proxy config command's stdin, base64-decoded. */
function proxyInstallArgs(stdin: string): string[] {
    const m = stdin.match(/\nvps_proxy_install (.*)\n$/);
    if (!m) throw new Error("no vps_proxy_install call at the end of the stdin");
    const [dir, ...b64] = m[1].split(" ");
    return [dir, ...b64.map((b) => Buffer.from(b, "base64").toString())];
}

/**
 * `actual` holds exactly `expected`, in order, by identity. (toEqual on resources would print whole
 * resource graphs on failure and run out of memory.)
 */
function expectSameResources(actual: unknown, expected: unknown[]) {
    const list = (actual ?? []) as unknown[];
    expect(list.map((r) => expected.indexOf(r))).toEqual(expected.map((_, i) => i));
}

function upload(inputs: any, file: string) {
    const u = (inputs.uploads ?? []).find((x: any) => x.file === file);
    if (!u) throw new Error(`no upload ${file}`);
    return u;
}

async function uploadIsSecret(resourceName: string, file: string): Promise<boolean> {
    const props = rawProps.get(resourceName)!.props;
    const uploads = await new Promise<any[]>((resolve) => pulumi.output(props.uploads).apply(resolve));
    const idx = uploads.findIndex((u) => u.file === file);
    const raw = props.uploads[idx];
    return pulumi.isSecret(pulumi.output(raw.content));
}

beforeEach(() => {
    resetRecorded();
    rawProps.clear();
});

describe("VpsHost", () => {
    it("reaches Docker over SSH with a pinned host key, batch mode and a shared master connection", async () => {
        await build(preprodConfig());
        const [provider] = ofType(DOCKER_PROVIDER);
        expect(provider.inputs.host).toBe("ssh://deploy@203.0.113.10:2222");
        const opts: string[] = provider.inputs.sshOpts;
        const joined = opts.join(" ");
        expect(joined).toContain("BatchMode=yes");
        expect(joined).toContain("StrictHostKeyChecking=yes");
        expect(joined).toMatch(/UserKnownHostsFile=\S+known_hosts/);
        expect(joined).toContain("ControlMaster=auto");
        expect(joined).toMatch(/ControlPath=\S+\/%C/);
        expect(joined).toContain("ControlPersist=10m");
        expect(joined).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/);
    });

    it("writes the pinned key to the known_hosts file ssh is told to use", async () => {
        await build(preprodConfig());
        const opts: string[] = ofType(DOCKER_PROVIDER)[0].inputs.sshOpts;
        const file = opts.find((o) => o.startsWith("UserKnownHostsFile="))!.split("=")[1];
        const fs = await import("fs");
        expect(fs.readFileSync(file, "utf8")).toBe(`[203.0.113.10]:2222 ${KEY}\n`);
    });

    it("runs host commands over SSH with the host key set", async () => {
        await build(preprodConfig());
        const cmds = ofType(REMOTE_COMMAND);
        expect(cmds.length).toBeGreaterThan(0);
        expect(ofType(LOCAL_COMMAND)).toHaveLength(0);
        for (const c of cmds) {
            expect(c.inputs.connection).toMatchObject({ host: "203.0.113.10", port: 2222, user: "deploy", hostKey: KEY });
            // The connection carries the private key: the whole of it is stored as a secret.
            expect(isWrappedSecret(c.raw.connection)).toBe(true);
        }
    });

    it("uses the local engine and local commands on dev", async () => {
        await build(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"));
        const [provider] = ofType(DOCKER_PROVIDER);
        expect(provider.inputs.host).toBeUndefined();
        expect(provider.inputs.sshOpts).toBeUndefined();
        expect(ofType(REMOTE_COMMAND)).toHaveLength(0);
        expect(ofType(LOCAL_COMMAND).length).toBeGreaterThan(0);
    });

    it("passes private registry credentials to the provider as a secret", async () => {
        await build(
            preprodConfig((c) => {
                c.apps[0].registry = { server: "ghcr.io", username: "bot" };
                c.secrets.REGISTRY_PASSWORD = "registry-token";
            }),
        );
        const [provider] = ofType(DOCKER_PROVIDER);
        expect(isWrappedSecret(provider.raw.registryAuth)).toBe(true);
        expect(provider.inputs.registryAuth).toEqual([expect.objectContaining({ address: "ghcr.io", username: "bot", password: "registry-token" })]);
    });
});

describe("StackNetworks", () => {
    it("creates an edge network and an internal data network named after the stack", async () => {
        await build(preprodConfig());
        const nets = ofType(NETWORK).map((n) => n.inputs);
        expect(nets).toEqual(
            expect.arrayContaining([
                expect.objectContaining({ name: "vps-stack-preprod-edge" }),
                expect.objectContaining({ name: "vps-stack-preprod-data", internal: true }),
            ]),
        );
        expect(nets.find((n) => n.name.endsWith("-edge")).internal).toBeFalsy();
    });
});

describe("StackSecrets", () => {
    it("generates Postgres and Redis passwords of at least 32 chars and JWT_SECRET of 64", async () => {
        await build(preprodConfig());
        const pw = ofType(RANDOM_PASSWORD);
        expect(byName("vps-stack-secrets-postgres-password").inputs.length).toBeGreaterThanOrEqual(32);
        expect(byName("vps-stack-secrets-redis-password").inputs.length).toBeGreaterThanOrEqual(32);
        expect(byName("vps-stack-secrets-secret-jwt-secret").inputs.length).toBeGreaterThanOrEqual(64);
        for (const p of pw) expect(p.inputs.special).toBe(false);
    });

    it("rotates through keepers", async () => {
        await build(preprodConfig((c) => (c.rotate = { postgres: "2026-11-22", JWT_SECRET: "r2" })));
        expect(byName("vps-stack-secrets-postgres-password").inputs.keepers).toEqual({ rotation: "2026-11-22" });
        expect(byName("vps-stack-secrets-secret-jwt-secret").inputs.keepers).toEqual({ rotation: "r2" });
        expect(byName("vps-stack-secrets-redis-password").inputs.keepers).toEqual({ rotation: "initial" });
    });
});

describe("StackCertificates", () => {
    it("makes a CA and a server certificate for every host name", async () => {
        await build(preprodConfig((c) => (c.apps[1].hosts = ["www.example.com"])));
        const ca = ofType("tls:index/selfSignedCert:SelfSignedCert")[0].inputs;
        expect(ca.isCaCertificate).toBe(true);
        expect(ca.allowedUses).toContain("cert_signing");
        const csr = ofType("tls:index/certRequest:CertRequest")[0].inputs;
        expect(csr.dnsNames.sort()).toEqual(["app.example.com", "www.example.com"]);
        const cert = ofType("tls:index/locallySignedCert:LocallySignedCert")[0].inputs;
        expect(cert.allowedUses).toContain("server_auth");
        expect(cert.earlyRenewalHours).toBeGreaterThan(0);
    });

    it("covers localhost and 127.0.0.1 on dev", async () => {
        await build(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"));
        const csr = ofType("tls:index/certRequest:CertRequest")[0].inputs;
        expect(csr.dnsNames).toEqual(["localhost"]);
        expect(csr.ipAddresses).toEqual(["127.0.0.1"]);
    });
});

describe("PostgresService", () => {
    it("runs the pinned image on the data network only, with its alias", async () => {
        await build(preprodConfig());
        const pg = container("vps-stack-preprod-postgres");
        expect(byName("vps-stack-postgres-image").inputs).toMatchObject({ name: "postgres:16-alpine", keepLocally: true });
        expect(pg.networksAdvanced).toEqual([{ name: "vps-stack-preprod-data", aliases: ["postgres"] }]);
        expect(pg.ports ?? []).toEqual([]);
    });

    it("takes its password from a 0400 file, never from the environment", async () => {
        await build(preprodConfig());
        const pg = container("vps-stack-preprod-postgres");
        expect(pg.envs).toContain(`POSTGRES_PASSWORD_FILE=${POSTGRES_PASSWORD_FILE}`);
        expect(pg.envs.some((e: string) => e.startsWith("POSTGRES_PASSWORD="))).toBe(false);
        const pw = upload(pg, POSTGRES_PASSWORD_FILE);
        expect(pw.permissions).toBe("0400");
        expect(generatedSecrets.has(pw.content)).toBe(true);
        expect(await uploadIsSecret("vps-stack-postgres", POSTGRES_PASSWORD_FILE)).toBe(true);
    });

    it("creates the extensions at first start and tunes the server", async () => {
        await build(preprodConfig((c) => (c.postgres = { extensions: ["uuid-ossp", "pgcrypto", "vector"], maxConnections: 150 })));
        const pg = container("vps-stack-preprod-postgres");
        const init = upload(pg, POSTGRES_INIT_FILE);
        expect(init.permissions).toBe("0444");
        expect(init.content).toContain('CREATE EXTENSION IF NOT EXISTS "uuid-ossp";');
        expect(init.content).toContain('CREATE EXTENSION IF NOT EXISTS "pgcrypto";');
        expect(init.content).toContain('CREATE EXTENSION IF NOT EXISTS "vector";');
        expect(pg.command).toEqual(expect.arrayContaining(["max_connections=150", "shared_buffers=256MB", "effective_cache_size=1GB"]));
    });

    it("has a pg_isready healthcheck, restart policy, limits, shm and log rotation", async () => {
        await build(preprodConfig());
        const pg = container("vps-stack-preprod-postgres");
        expect(pg.healthcheck.tests.join(" ")).toContain("pg_isready");
        expect(pg.restart).toBe("unless-stopped");
        expect(pg.memory).toBe(2048);
        expect(pg.cpus).toBe("2.0");
        expect(pg.shmSize).toBe(256);
        expect(pg.logDriver).toBe("json-file");
        expect(pg.logOpts).toEqual(LOG_OPTS);
        expect(pg.volumes).toEqual([{ volumeName: "vps-stack-preprod-postgres-data", containerPath: "/var/lib/postgresql/data" }]);
    });

    it("is replaced delete-first and protects its volume on prod only", async () => {
        await build(preprodConfig());
        expect((rawProps.get("vps-stack-postgres")!.opts as pulumi.CustomResourceOptions).deleteBeforeReplace).toBe(true);
        expect(rawProps.get("vps-stack-postgres-data")!.opts.protect).toBe(false);
        resetRecorded();
        rawProps.clear();
        const prod = loadConfig(
            { host: { address: "203.0.113.10", hostKey: KEY }, domain: "app.example.com", apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0" }] },
            "prod",
        );
        await build(prod);
        expect(rawProps.get("vps-stack-postgres-data")!.opts.protect).toBe(true);
        expect(ofType(VOLUME).map((v) => v.inputs.name)).toContain("vps-stack-prod-postgres-data");
    });

    it("re-applies the generated password through stdin, not argv", async () => {
        await build(preprodConfig());
        const cmd = byName("vps-stack-postgres-password").inputs;
        expect(cmd.create).toBe("docker exec -i vps-stack-preprod-postgres psql -v ON_ERROR_STOP=1 -q -U app -d app");
        const pw = upload(container("vps-stack-preprod-postgres"), POSTGRES_PASSWORD_FILE).content;
        expect(cmd.create).not.toContain(pw);
        expect(cmd.stdin).toContain(`ALTER ROLE "app" WITH PASSWORD '${pw}';`);
    });
});

describe("RedisService", () => {
    it("keeps password, persistence and memory policy in a 0400 config file", async () => {
        await build(preprodConfig((c) => (c.redis = { maxmemory: "128mb", maxmemoryPolicy: "volatile-lru" })));
        const r = container("vps-stack-preprod-redis");
        const conf = upload(r, REDIS_CONF_FILE);
        expect(conf.permissions).toBe("0400");
        expect(conf.content).toMatch(/^requirepass [A-Za-z0-9]{32}$/m);
        expect(conf.content).toContain("appendonly yes");
        expect(conf.content).toContain("maxmemory 128mb");
        expect(conf.content).toContain("maxmemory-policy volatile-lru");
        expect(await uploadIsSecret("vps-stack-redis", REDIS_CONF_FILE)).toBe(true);
        const password = /^requirepass (\S+)$/m.exec(conf.content)![1];
        expect([...(r.entrypoints ?? []), ...(r.command ?? []), ...(r.envs ?? []), ...r.healthcheck.tests].join(" ")).not.toContain(password);
    });

    it("checks health with REDISCLI_AUTH, on the data network only", async () => {
        await build(preprodConfig());
        const r = container("vps-stack-preprod-redis");
        expect(r.healthcheck.tests[1]).toContain("REDISCLI_AUTH=");
        expect(r.healthcheck.tests[1]).toContain("redis-cli");
        expect(r.networksAdvanced).toEqual([{ name: "vps-stack-preprod-data", aliases: ["redis"] }]);
        expect(r.volumes).toEqual([{ volumeName: "vps-stack-preprod-redis-data", containerPath: "/data" }]);
        expect(r.command).toEqual(["redis-server", REDIS_CONF_FILE]);
    });
});

describe("ApiService", () => {
    it("runs each replica on edge (with its release's alias) and data networks, never published", async () => {
        const stack = await build(preprodConfig());
        const r = rel(stack, "api");
        for (const n of [1, 2]) {
            const api = container(`vps-stack-preprod-api-${r}-${n}`);
            expect(api.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge", aliases: [`api-${r}`] }, { name: "vps-stack-preprod-data" }]);
            expect(api.ports ?? []).toEqual([]);
        }
        expect(() => container(`vps-stack-preprod-api-${r}-3`)).toThrow();
        expect(stack.apps.api.containerNames).toEqual([`vps-stack-preprod-api-${r}-1`, `vps-stack-preprod-api-${r}-2`]);
        expect(stack.apps.api.upstreamHost).toBe(`api-${r}`);
    });

    it("keeps an app without database or cache off the data network", async () => {
        const stack = await build(preprodConfig());
        const web = container(`vps-stack-preprod-web-${rel(stack, "web")}-1`);
        expect(web.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge", aliases: [`web-${rel(stack, "web")}`] }]);
        expect(web.envs.join(" ")).not.toMatch(/DATABASE_URL|REDIS_URL/);
    });

    it("delivers DATABASE_URL, REDIS_URL and app secrets as files, with *_FILE variables", async () => {
        const stack = await build(preprodConfig());
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        for (const n of ["DATABASE_URL", "REDIS_URL", "JWT_SECRET", "WHATSAPP_API_KEY"]) {
            expect(api.envs).toContain(`${n}_FILE=/run/secrets/${n}`);
            expect(await uploadIsSecret(`vps-stack-app-api-${rel(stack, "api")}-1`, `/run/secrets/${n}`)).toBe(true);
        }
        expect(upload(api, "/run/secrets/DATABASE_URL").content).toMatch(/^postgresql:\/\/app:[A-Za-z0-9]{32}@postgres:5432\/app$/);
        expect(upload(api, "/run/secrets/REDIS_URL").content).toMatch(/^redis:\/\/default:[A-Za-z0-9]{32}@redis:6379\/0$/);
        expect(upload(api, "/run/secrets/WHATSAPP_API_KEY").content).toBe("provided-whatsapp-key");
        expect(upload(api, "/run/secrets/JWT_SECRET").content).toHaveLength(64);
    });

    it("puts secrets in the environment only when the app asks for it, and then as secrets", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].secretDelivery = "env")));
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        expect(api.envs.find((e: string) => e.startsWith("WHATSAPP_API_KEY="))).toBe("WHATSAPP_API_KEY=provided-whatsapp-key");
        const envs = rawProps.get(`vps-stack-app-api-${rel(stack, "api")}-1`)!.props.envs as pulumi.Input<string>[];
        const secretFlags = await Promise.all(envs.map((e) => pulumi.isSecret(pulumi.output(e))));
        const secretCount = secretFlags.filter(Boolean).length;
        expect(secretCount).toBe(4);
    });

    it("has a healthcheck on the health path, restart policy, limits, log rotation and hardening", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].memory = "768m")));
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        // Exec form: the URL is sh's $1, never parsed as shell text.
        expect(api.healthcheck.tests).toEqual(["CMD", "sh", "-c", 'curl -fsS -o /dev/null "$1" || wget -q -O /dev/null "$1"', "sh", "http://127.0.0.1:3001/api/health"]);
        expect(api.restart).toBe("unless-stopped");
        expect(api.memory).toBe(768);
        expect(api.logOpts).toEqual(LOG_OPTS);
        expect(api.securityOpts).toEqual(["no-new-privileges:true"]);
        expect(api.capabilities).toEqual({ drops: ["ALL"], adds: [] });
        // Release mode: the gate waits (and removes a release that never gets healthy), not the provider.
        expect(api.wait).toBe(false);
    });

    it("supports a custom health command, a non-root user and a read-only root", async () => {
        const stack = await build(
            preprodConfig((c) => Object.assign(c.apps[0], { healthCommand: ["node", "healthcheck.js"], user: "1000:1000", readOnly: true })),
        );
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        expect(api.healthcheck.tests).toEqual(["CMD", "node", "healthcheck.js"]);
        expect(api.user).toBe("1000:1000");
        expect(api.readOnly).toBe(true);
        expect(api.tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,size=64m" });
        expect(api.volumes).toEqual([{ containerPath: "/run/secrets" }]);
    });

    it("deploys a re-pushed tag: the registry digest is a pull trigger, unless tag tracking is off", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[1].trackTag = false)));
        const apiImage = byName("vps-stack-app-api-image").inputs;
        expect(apiImage.name).toBe("ghcr.io/acme/api:1.4.2");
        expect(apiImage.pullTriggers).toEqual([expect.stringMatching(/^sha256:[a-f0-9]{64}$/)]);
        expect(byName("vps-stack-app-web-image").inputs.pullTriggers ?? []).toEqual([]);
        // The container runs the pulled image's id, so a new digest replaces it.
        expect(container(`vps-stack-preprod-api-${rel(stack, "api")}-1`).image).toMatch(/^sha256:/);
    });

    it("within a release (fixed names) is replaced delete-first, and on any healthcheck change", async () => {
        const stack = await build(preprodConfig());
        const opts = rawProps.get(`vps-stack-app-api-${rel(stack, "api")}-1`)!.opts as pulumi.CustomResourceOptions;
        expect(opts.deleteBeforeReplace).toBe(true);
        expect(opts.replaceOnChanges).toEqual(["healthcheck"]);
    });

    it("writes capabilities as Docker reads them back", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].capAdd = ["NET_BIND_SERVICE", "CAP_SYS_NICE"])));
        expect(container(`vps-stack-preprod-api-${rel(stack, "api")}-1`).capabilities).toEqual({ drops: ["ALL"], adds: ["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"] });
        expect(container("vps-stack-preprod-nginx").capabilities.adds).toEqual(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID"]);
    });
});

describe("migrations", () => {
    it("run in the new image with the app's environment, secrets and networks, before the replicas", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].migrate = { command: ["alembic", "upgrade", "head"] })));
        const r = rel(stack, "api");
        // The release's own migration; auto-named (no name input): a new run is created before the old one is deleted.
        const m = byName(`vps-stack-preprod-api-${r}-migrate`).inputs;
        expect(m.name).toBeUndefined();
        const api = container(`vps-stack-preprod-api-${r}-1`);
        expect(m.command).toEqual(["alembic", "upgrade", "head"]);
        expect(m.image).toBe(api.image);
        expect(m.envs).toEqual(api.envs);
        expect(m.uploads.map((u: any) => u.file)).toEqual(api.uploads.map((u: any) => u.file));
        expect(m.networksAdvanced).toEqual(api.networksAdvanced);
        expect(m).toMatchObject({ attach: true, mustRun: false, restart: "no", logs: false });
        expect(m.labels).toContainEqual({ label: "vps-stack.one-shot", value: "true" });
        // Create-before-delete under a new name: never delete-first, which would take the replicas down with it.
        expect((rawProps.get(`vps-stack-preprod-api-${r}-migrate`)!.opts as pulumi.CustomResourceOptions).deleteBeforeReplace).toBeFalsy();
        // The replicas wait for it.
        expect(rawProps.get(`vps-stack-app-api-${r}-1`)!.opts.dependsOn as pulumi.Resource[]).toContain(stack.apps.api.migration);
    });

    it("gate the replicas on a zero exit code", async () => {
        const cfg = preprodConfig((c) => (c.apps[0].migrate = { command: ["migrate"] }));
        const r = appRelease(cfg, cfg.apps[0]);
        const replicas = () => ofType(CONTAINER).filter((c) => c.name.startsWith(`vps-stack-app-api-${r}-`));
        // Exit 0: the replicas run the pulled image.
        let stack = await build(cfg);
        expect(stack.apps.api.migration).toBeDefined();
        expect(stack.apps.web.migration).toBeUndefined();
        const pulled = await promiseOf(stack.apps.api.migration!.image);
        expect(replicas().map((c) => c.inputs.image)).toEqual([pulled, pulled]);

        // Exit 1: no replica is created, and `pulumi up` fails (Pulumi rethrows a resource's failure as an
        // unhandled rejection) with an error that names the app, the code and where to look.
        resetRecorded();
        setExitCode(`vps-stack-preprod-api-${r}-migrate`, 1);
        const failures = await programFailures(async () => {
            stack = await build(cfg);
        });
        expect(byName(`vps-stack-preprod-api-${r}-migrate`)).toBeDefined();
        expect(replicas()).toEqual([]);
        const migrationName = await promiseOf(stack.apps.api.migration!.name);
        expect(migrationName).toMatch(new RegExp(`^vps-stack-preprod-api-${r}-migrate-`));
        const message = `the migration of app "api" exited with 1; the running version was left in place (docker logs ${migrationName})`;
        expect(failures.length).toBeGreaterThan(0);
        for (const f of failures) expect(f.message).toContain(message);
        // The other app has no migration and is not held back.
        expect(container(`vps-stack-preprod-web-${rel(stack, "web")}-1`)).toBeDefined();
    });
});

describe("static sites", () => {
    // The site is written out once per content under the stack's state directory, copied to the host over
    // SFTP (CopyToRemote) and mounted read-only: its files are in no resource's inputs, hence not in the
    // state.
    async function siteApp(staticCfg: Record<string, string>) {
        const stack = await build(preprodConfig((c) => (c.apps[1] = { name: "web", kind: "static", static: staticCfg, paths: ["/"] })));
        const web = container(`vps-stack-preprod-web-${rel(stack, "web")}-1`);
        const copy = recorded.find((r) => r.type === "command:remote:CopyToRemote")!;
        return { stack, web, copy };
    }
    async function expectCopiedAndMounted(web: any, copy: any, stack: VpsStack, files: Record<string, Buffer>) {
        const fs = require("fs") as typeof import("fs");
        const path = require("path") as typeof import("path");
        // The local copy holds exactly the site's files.
        // The raw inputs keep the FileArchive (its path is a promise); the recorded ones are plain data.
        const local: string = await copy.raw.source.path;
        expect(local.startsWith(stack.host.stateDir)).toBe(true);
        expect(path.basename(local)).toBe("site");
        for (const [rel_, bytes] of Object.entries(files)) expect(fs.readFileSync(path.join(local, rel_))).toEqual(bytes);
        const name = path.basename(path.dirname(local));
        expect(name).toMatch(/^site-web-[0-9a-f]{12}$/);
        expect(copy.inputs.remotePath).toBe(`/home/deploy/.local/share/vps-stack/preprod/${name}`);
        expect(copy.inputs.connection).toMatchObject({ host: "203.0.113.10", port: 2222, user: "deploy", hostKey: KEY });
        // Mounted read-only where the site's nginx serves it; only its config is uploaded.
        expect(web.volumes).toEqual([{ hostPath: `/home/deploy/.local/share/vps-stack/preprod/${name}/site`, containerPath: "/usr/share/nginx/html", readOnly: true }]);
        expect(web.uploads.map((u: { file: string }) => u.file)).toEqual(["/etc/nginx/conf.d/default.conf"]);
        // The copy goes when the site changes or the app goes, after the containers that mount it.
        const dir = byTypeName(REMOTE_COMMAND, `vps-stack-host-copy-${name}-dir`).inputs;
        expect(dir.create).toBe(`test -d /home/deploy/.local/share/vps-stack/preprod/${name}/site`);
        expect(dir.delete).toBe(`rm -rf /home/deploy/.local/share/vps-stack/preprod/${name}`);
        const deps = rawProps.get(`${CONTAINER}::vps-stack-app-web-${rel(stack, "web")}-1`)!.opts.dependsOn as pulumi.Resource[];
        expect(deps.length).toBe(2);
        // No resource carries the files' contents.
        const bundle = files["index.html"].toString("base64");
        expect(recorded.filter((r) => JSON.stringify(r.inputs).includes(bundle))).toEqual([]);
    }

    it("serves a local build from the Nginx image: copied to the host and mounted read-only, off the data network", async () => {
        const fs = await import("fs");
        const os = await import("os");
        const path = await import("path");
        const dist = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-dist-"));
        fs.mkdirSync(path.join(dist, "assets"));
        fs.writeFileSync(path.join(dist, "index.html"), "<!doctype html>");
        fs.writeFileSync(path.join(dist, "assets", "app-3f9a1c2b.js"), Buffer.from([0, 1, 2, 255]));
        const { stack, web, copy } = await siteApp({ dir: dist });
        expect(byName("vps-stack-app-web-image").inputs.name).toBe("nginx:1.27-alpine");
        expect(web.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge", aliases: [`web-${rel(stack, "web")}`] }]);
        const conf = upload(web, "/etc/nginx/conf.d/default.conf");
        expect(conf.content).toContain("listen 8080 default_server;");
        expect(conf.content).toContain("try_files $uri $uri/ /index.html;");
        await expectCopiedAndMounted(web, copy, stack, { "index.html": Buffer.from("<!doctype html>"), "assets/app-3f9a1c2b.js": Buffer.from([0, 1, 2, 255]) });
        expect(web.envs ?? []).toEqual([]);
        expect(web.healthcheck.tests[web.healthcheck.tests.length - 1]).toBe("http://127.0.0.1:8080/health");
        expect(web.capabilities.adds).toEqual(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETGID", "CAP_SETUID"]);
    });

    it("unpacks a site archive (a CI artifact) the same way, its top-level directory as the root", async () => {
        const path = await import("path");
        const archive = path.join(__dirname, "fixtures", "site-archives", "dist-gnu.tgz");
        const { stack, web, copy } = await siteApp({ archive });
        await expectCopiedAndMounted(web, copy, stack, {
            "index.html": Buffer.from("<!doctype html><title>fixture</title>"),
            "assets/app-3f9a1c2b.js": Buffer.from([0, 1, 2, 255]),
        });
        const fs = await import("fs");
        const files: string[] = [];
        const walk = (d: string, prefix = "") => {
            for (const e of fs.readdirSync(d, { withFileTypes: true })) {
                if (e.isDirectory()) walk(path.join(d, e.name), `${prefix}${e.name}/`);
                else files.push(`${prefix}${e.name}`);
            }
        };
        walk(await copy.raw.source.path);
        // The archive's four files; its directories come with them.
        expect(files.sort()).toEqual(["assets/app-3f9a1c2b.js", "assets/menu-café.txt", `assets/vendor/${"a".repeat(60)}/${"b".repeat(40)}/chunk-3f9a1c2b.js`, "index.html"].sort());
    });

    it("serves a site baked into its own image from static.root", async () => {
        const stack = await build(
            preprodConfig((c) => (c.apps[1] = { name: "web", kind: "static", image: "ghcr.io/acme/web:2.0.0", static: { root: "/srv/site" }, paths: ["/"] })),
        );
        const web = container(`vps-stack-preprod-web-${rel(stack, "web")}-1`);
        expect(byName("vps-stack-app-web-image").inputs.name).toBe("ghcr.io/acme/web:2.0.0");
        expect(upload(web, "/etc/nginx/conf.d/default.conf").content).toContain("root /srv/site;");
        expect(web.uploads).toHaveLength(1);
    });
});

describe("per-app proxy settings", () => {
    it("reach the rendered proxy config", async () => {
        const stack = await build(
            preprodConfig((c) => (c.apps[0].proxy = { clientMaxBodySize: "5M", rateLimit: { rate: "2r/s" }, headers: { "Content-Security-Policy": "default-src 'self'" } })),
        );
        expect(stack.proxy!.config).toContain("limit_req_zone $binary_remote_addr zone=perip_api:10m rate=2r/s;");
        expect(stack.proxy!.config).toContain("limit_req_zone $binary_remote_addr zone=perip_web:10m rate=10r/s;");
        expect(stack.proxy!.config).toContain("client_max_body_size 5M;");
        expect(stack.proxy!.config).toContain(`add_header Content-Security-Policy "default-src 'self'" always;`);
    });
});

describe("NginxProxy", () => {
    it("is the only container publishing, on 80 and 443", async () => {
        await build(preprodConfig());
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.ports).toEqual([
            { internal: 80, external: 80, ip: "0.0.0.0", protocol: "tcp" },
            { internal: 443, external: 443, ip: "0.0.0.0", protocol: "tcp" },
        ]);
        expect(nginx.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge" }]);
    });

    it("publishes 8080/8443 on 127.0.0.1 on dev", async () => {
        await build(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"));
        expect(container("vps-stack-dev-nginx").ports).toEqual([
            { internal: 80, external: 8080, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 443, external: 8443, ip: "127.0.0.1", protocol: "tcp" },
        ]);
    });

    it("runs the live version of its config volume (read-only), with no uploads", async () => {
        await build(preprodConfig());
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.uploads ?? []).toEqual([]);
        expect(nginx.volumes).toEqual([{ volumeName: "vps-stack-preprod-nginx-config", containerPath: PROXY_CONFIG_DIR, readOnly: true }]);
        // nginx is the container's main process; beside it, the loop that reloads it when an upstream's
        // address changes (an app container started again by hand gets a new one).
        expect(nginx.command).toEqual(["sh", "-c", `(\n${upstreamWatcher()}\n) &\nexec nginx -c /etc/nginx/vps-stack/live/nginx.conf -g 'daemon off;'`]);
        expect(NGINX_CONF_FILE).toBe("/etc/nginx/vps-stack/live/nginx.conf");
        expect(byTypeName(VOLUME, "vps-stack-nginx-config-volume").inputs).toMatchObject({ name: "vps-stack-preprod-nginx-config" });
        // The stack pulls the proxy's image once (the apps' gates use it too); the proxy runs it by id.
        expect(byName("vps-stack-nginx-image").inputs).toMatchObject({ name: "nginx:1.27-alpine", keepLocally: true });
        expect(nginx.image).toBe(mockImageId("nginx:1.27-alpine"));
        expect(recorded.filter((r) => r.type === REMOTE_IMAGE && r.inputs.name === "nginx:1.27-alpine")).toHaveLength(1);
    });

    it("installs the config, certificate and key with a throwaway proxy container, then reloads the running proxy after nginx -t", async () => {
        const stack = await build(preprodConfig());
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(cmd.inputs.create).toBe(
            `docker run --rm -i --network vps-stack-preprod-edge -v vps-stack-preprod-nginx-config:/etc/nginx/vps-stack --entrypoint sh ${mockImageId("nginx:1.27-alpine")} -s` +
                ` && if [ "$(docker inspect -f '{{.State.Running}}' vps-stack-preprod-nginx 2>/dev/null)" = true ]; then` +
                " docker exec vps-stack-preprod-nginx nginx -c /etc/nginx/vps-stack/live/nginx.conf -t -q" +
                " && docker exec vps-stack-preprod-nginx nginx -c /etc/nginx/vps-stack/live/nginx.conf -s reload; fi",
        );
        // A `docker kill` would count as a manual stop and void the restart policy.
        expect(cmd.inputs.create).not.toContain("docker kill");
        const stdin: string = cmd.inputs.stdin;
        expect(stdin.startsWith(proxyScript())).toBe(true);
        const [dir, conf, cert, key] = proxyInstallArgs(stdin);
        expect(dir).toBe(PROXY_CONFIG_DIR);
        expect(conf).toBe(stack.proxy!.config);
        expect(conf).toContain("server_name app.example.com;");
        expect(conf).toContain(`server api-${rel(stack, "api")}:3001`);
        // Relative: resolved inside the version being tested or served (see vps-stack-proxy.sh).
        expect(conf).toContain("ssl_certificate     tls/server.crt;");
        expect(conf).toContain("ssl_certificate_key tls/server.key;");
        expect(cert).toContain("BEGIN CERTIFICATE");
        expect(generatedSecrets.has(key.trim())).toBe(true);
    });

    it("sends the proxy's key only in the config command's stdin, marked secret", async () => {
        await build(preprodConfig());
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        expect(isWrappedSecret(cmd.raw.create)).toBe(false);
        const key = proxyInstallArgs(cmd.inputs.stdin)[3];
        const b64 = Buffer.from(key).toString("base64");
        const carriers = recorded.flatMap((r) =>
            Object.entries(r.inputs)
                .filter(([, v]) => JSON.stringify(v ?? null).includes(b64) || JSON.stringify(v ?? null).includes(JSON.stringify(key).slice(1, -1)))
                .map(([k]) => `${r.type} ${r.name} ${k}`),
        );
        // The CSR is made from it; apart from that, only the config command carries it.
        expect(carriers.sort()).toEqual(["command:remote:Command vps-stack-nginx-config stdin", "tls:index/certRequest:CertRequest vps-stack-tls-server-csr privateKeyPem"]);
    });

    it("applies its config after every app's gate, and again when an app container changes; the container waits for it", async () => {
        const stack = await build(preprodConfig());
        const cfgCmd = rawProps.get(`${REMOTE_COMMAND}::vps-stack-nginx-config`)!;
        expectSameResources(cfgCmd.opts.dependsOn, [stack.apps.api.gate, stack.apps.web.gate]);
        expect(stack.apps.api.gate).toBeDefined();
        expect(stack.proxy!.configCommand).toBeDefined();
        expectSameResources(rawProps.get(`${CONTAINER}::vps-stack-nginx`)!.opts.dependsOn, [stack.proxy!.configCommand]);
        const [api, web] = [rel(stack, "api"), rel(stack, "web")];
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config").inputs.triggers).toEqual([
            `vps-stack-app-api-${api}-1-id`,
            `vps-stack-app-api-${api}-2-id`,
            `vps-stack-app-web-${web}-1-id`,
        ]);
        // No separate reload command any more: the config command reloads.
        expect(recorded.filter((r) => r.name === "vps-stack-nginx-reload")).toEqual([]);
        // Only a new image (or container settings) replaces the proxy: deleted first, it owns the ports.
        const opts = rawProps.get(`${CONTAINER}::vps-stack-nginx`)!.opts as pulumi.CustomResourceOptions;
        expect(opts.deleteBeforeReplace).toBe(true);
    });
});

describe("tls.mode provided", () => {
    // The chain and key are checked at config time (config.test.ts, and against openssl-made ones in
    // test/integration/tls-provided.test.ts); here, where they go once they passed.
    const CHAIN = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n";
    const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nPROVIDED\n-----END PRIVATE KEY-----\n";
    const provided = (cfg: StackConfig): StackConfig => ({ ...cfg, tls: { ...cfg.tls, mode: "provided" }, secrets: { ...cfg.secrets, TLS_CERTIFICATE: CHAIN, TLS_PRIVATE_KEY: KEY_PEM } });

    it("sends the chain and key in the proxy config command's secret stdin only, and makes no CA", async () => {
        const stack = await build(provided(preprodConfig()));
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.uploads ?? []).toEqual([]);
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        expect(proxyInstallArgs(cmd.inputs.stdin)).toEqual([PROXY_CONFIG_DIR, stack.proxy!.config, CHAIN, KEY_PEM]);
        const b64 = Buffer.from(KEY_PEM).toString("base64");
        const carriers = recorded.filter((r) => JSON.stringify(r.inputs).includes(b64) || JSON.stringify(r.inputs).includes("PROVIDED"));
        expect(carriers.map((r) => `${r.type} ${r.name}`)).toEqual(["command:remote:Command vps-stack-nginx-config"]);
        expect(stack.proxy!.config).not.toContain("PROVIDED");
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert")).toEqual([]);
        expect(ofType("tls:index/locallySignedCert:LocallySignedCert")).toEqual([]);
        expect(stack.certificates).toBeUndefined();
    });

    it("with the host's nginx, sends the chain and key in the site command's secret stdin only", async () => {
        const stack = await build(
            provided(
                preprodConfig((c) => {
                    c.nginx = { mode: "host" };
                    c.apps[0].hostPort = 8000;
                    c.apps[1].hostPort = 8010;
                }),
            ),
        );
        const cmd = byName("vps-stack-host-nginx-site");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        const [, cert, key] = cmd.inputs.stdin.match(/vps_site_install \S+ '[^']+' '([^']+)' '([^']+)'/);
        expect(Buffer.from(cert, "base64").toString()).toBe(CHAIN);
        expect(Buffer.from(key, "base64").toString()).toBe(KEY_PEM);
        expect(stack.hostSite!.config).not.toContain("PROVIDED");
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert")).toEqual([]);
    });
});

describe("HostNginxSite (nginx.mode host)", () => {
    const hostMode = (c: any) => {
        c.nginx = { mode: "host" };
        c.apps[0].hostPort = 8000;
        c.apps[1].hostPort = 8010;
    };

    it("publishes each replica on 127.0.0.1 only and runs no proxy container", async () => {
        await build(preprodConfig(hostMode));
        expect(container("vps-stack-preprod-api-1").ports).toEqual([{ internal: 3001, external: 8000, ip: "127.0.0.1", protocol: "tcp" }]);
        expect(container("vps-stack-preprod-api-2").ports).toEqual([{ internal: 3001, external: 8001, ip: "127.0.0.1", protocol: "tcp" }]);
        expect(container("vps-stack-preprod-web-1").ports).toEqual([{ internal: 3000, external: 8010, ip: "127.0.0.1", protocol: "tcp" }]);
        expect(() => container("vps-stack-preprod-nginx")).toThrow();
    });

    it("installs the site over SSH as root, with nginx -t before reload, and removes it on destroy", async () => {
        const stack = await build(preprodConfig(hostMode));
        const cmd = byName("vps-stack-host-nginx-site");
        expect(cmd.type).toBe(REMOTE_COMMAND);
        expect(cmd.inputs.create).toBe("sudo -n sh -s");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        expect(cmd.inputs.stdin).toContain("vps_site_install vps-stack-preprod ");
        expect(cmd.inputs.stdin).toContain('sh -c "${NGINX_TEST:-nginx -t}"');
        expect(cmd.inputs.delete).toMatch(/^printf '%s' '[A-Za-z0-9+/=]+' \| base64 -d \| sudo -n sh -s$/);
        const config = stack.hostSite!.config;
        expect(config).toContain("upstream vps_stack_preprod_app_api {");
        expect(config).toContain("server 127.0.0.1:8000 max_fails=3 fail_timeout=10s;");
        expect(config).toContain("server 127.0.0.1:8001 max_fails=3 fail_timeout=10s;");
        expect(config).toContain("ssl_certificate_key /etc/vps-stack/vps-stack-preprod/privkey.pem;");
        expect(config).not.toContain("default_server");
        // The site file carries no secret; the key travels only in the command's stdin.
        expect(config).not.toContain("PRIVATE KEY");
        expect(Buffer.from(cmd.inputs.stdin.match(/vps_site_install \S+ '[^']+' '[^']+' '([^']+)'/)[1], "base64").toString()).toContain("PRIVATE KEY");
    });
});

describe("AcmeClient (tls.mode acme)", () => {
    const acme = (extra: object = {}) => (c: any) => (c.tls = { mode: "acme", acme: { email: "ops@example.com", ...extra } });

    it("runs certbot's image with the stack's names, account, directory and certificate name, on the edge network", async () => {
        const stack = await build(preprodConfig(acme({ staging: true })));
        const a = container("vps-stack-preprod-acme");
        expect(a.entrypoints).toEqual(["sh", ACME_SCRIPT]);
        expect(a.command).toEqual(["daemon"]);
        const server = "https://acme-staging-v02.api.letsencrypt.org/directory";
        expect(a.envs).toEqual([
            "ACME_DOMAINS=app.example.com",
            "ACME_EMAIL=ops@example.com",
            `ACME_SERVER=${server}`,
            `ACME_CERT_NAME=${acmeCertName(server, ["app.example.com"])}`,
            "ACME_RENEW_INTERVAL=43200",
        ]);
        expect(a.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge" }]);
        expect(a.ports ?? []).toEqual([]);
        expect(a.healthcheck.tests).toEqual(["CMD", "sh", ACME_SCRIPT, "check"]);
        expect(a.restart).toBe("unless-stopped");
        expect(a.logOpts).toEqual(LOG_OPTS);
        expect(a.capabilities.drops).toEqual(["ALL"]);
        expect(ofType("docker:index/remoteImage:RemoteImage").map((r) => r.inputs.name)).toContain("certbot/certbot:v5.7.0");
        // No CA, no uploaded certificate: the proxy serves what the ACME container keeps.
        expect(stack.certificates).toBeUndefined();
        expect(stack.serverCertificate).toBeUndefined();
    });

    it("uploads the self-signed placeholder as a 0400 secret, and the private CA only when configured", async () => {
        await build(preprodConfig(acme()));
        const a = container("vps-stack-preprod-acme");
        const ph = upload(a, "/run/vps-stack/placeholder.pem");
        expect(ph.permissions).toBe("0400");
        expect(ph.content).toMatch(/-----END CERTIFICATE-----\n-----BEGIN (EC )?PRIVATE KEY-----/);
        expect(await uploadIsSecret("vps-stack-acme", "/run/vps-stack/placeholder.pem")).toBe(true);
        expect(a.uploads.map((u: any) => u.file)).not.toContain("/run/vps-stack/acme-ca.pem");
        expect(a.envs.join("\n")).not.toContain("REQUESTS_CA_BUNDLE");
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert").map((r) => r.inputs.dnsNames)).toEqual([["app.example.com"]]);

        resetRecorded();
        const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        await build(preprodConfig(acme({ directoryUrl: "https://172.17.0.1:14000/dir", caCertificate: ca })));
        const b = container("vps-stack-preprod-acme");
        expect(upload(b, "/run/vps-stack/acme-ca.pem")).toMatchObject({ content: ca, permissions: "0444" });
        expect(b.envs).toContain("REQUESTS_CA_BUNDLE=/run/vps-stack/acme-ca.pem");
        expect(b.envs).toContain("ACME_SERVER=https://172.17.0.1:14000/dir");
    });

    it("shares its volumes with the proxy read-only; nginx serves the one file and the challenge directory", async () => {
        const stack = await build(preprodConfig(acme()));
        const a = container("vps-stack-preprod-acme");
        expect(a.volumes).toEqual([
            { volumeName: "vps-stack-preprod-letsencrypt", containerPath: "/etc/letsencrypt" },
            { volumeName: "vps-stack-preprod-acme-webroot", containerPath: "/var/www/acme" },
        ]);
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.volumes).toEqual([
            { volumeName: "vps-stack-preprod-nginx-config", containerPath: PROXY_CONFIG_DIR, readOnly: true },
            { volumeName: "vps-stack-preprod-letsencrypt", containerPath: "/etc/letsencrypt", readOnly: true },
            { volumeName: "vps-stack-preprod-acme-webroot", containerPath: "/var/www/acme", readOnly: true },
        ]);
        expect(nginx.uploads ?? []).toEqual([]);
        // The throwaway installer sees the certificate as the proxy will (read-only), so nginx -t can load it.
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(cmd.inputs.create).toMatch(
            /^docker run --rm -i --network vps-stack-preprod-edge -v vps-stack-preprod-nginx-config:\/etc\/nginx\/vps-stack -v vps-stack-preprod-letsencrypt:\/etc\/letsencrypt:ro -v vps-stack-preprod-acme-webroot:\/var\/www\/acme:ro --entrypoint sh sha256:[0-9a-f]{64} -s && /,
        );
        // No certificate or key in it: only the config (the certificate lives in the ACME volume).
        expect(proxyInstallArgs(cmd.inputs.stdin)).toEqual([PROXY_CONFIG_DIR, stack.proxy!.config]);
        expect(stack.proxy!.config).toContain(`ssl_certificate     ${ACME_SERVED_FILE};`);
        expect(stack.proxy!.config).toContain(`ssl_certificate_key ${ACME_SERVED_FILE};`);
        expect(stack.proxy!.config).toContain("location ^~ /.well-known/acme-challenge/ {");
        // nginx reloads itself when a renewal replaces the file (checked every minute, after nginx -t).
        expect(nginx.command[0]).toBe("sh");
        expect(nginx.command[2]).toContain(`f='${ACME_SERVED_FILE}'`);
        const live = "nginx -c /etc/nginx/vps-stack/live/nginx.conf";
        expect(nginx.command[2]).toContain(`${live} -t -q 2>/dev/null; then ${live} -s reload`);
        expect(nginx.command[2]).toMatch(/\nexec nginx -c \/etc\/nginx\/vps-stack\/live\/nginx\.conf -g 'daemon off;'$/);
        // The config (and so the proxy) waits for the ACME container, which serves the placeholder.
        expect(rawProps.get(`${REMOTE_COMMAND}::vps-stack-nginx-config`)!.opts.dependsOn as pulumi.Resource[]).toContain(stack.acme!.container);
        expectSameResources(rawProps.get(`${CONTAINER}::vps-stack-nginx`)!.opts.dependsOn, [stack.proxy!.configCommand]);
    });

    it("keeps certbot's account and certificates on prod when the stack is destroyed (rate limits)", async () => {
        await build(preprodConfig(acme()));
        expect(rawProps.get("vps-stack-acme-letsencrypt")!.opts.retainOnDelete).toBe(false);
        resetRecorded();
        rawProps.clear();
        await build({ ...preprodConfig(acme()), stack: "prod", prefix: "vps-stack-prod" });
        expect(rawProps.get("vps-stack-acme-letsencrypt")!.opts.retainOnDelete).toBe(true);
        expect(rawProps.get("vps-stack-acme-webroot")!.opts.retainOnDelete).toBeFalsy();
    });

    it("asks the CA once the proxy is up, then reloads it after nginx -t", async () => {
        const stack = await build(preprodConfig(acme()));
        const issue = byName("vps-stack-acme-issue");
        expect(issue.type).toBe(REMOTE_COMMAND);
        expect(issue.inputs.create).toBe(
            `docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} issue && docker exec vps-stack-preprod-nginx nginx -c ${NGINX_CONF_FILE} -t -q && docker exec vps-stack-preprod-nginx nginx -c ${NGINX_CONF_FILE} -s reload`,
        );
        expect(issue.inputs.triggers).toEqual(["vps-stack-acme-id", stack.acme!.certName]);
        const deps = rawProps.get("vps-stack-acme-issue")!.opts.dependsOn as pulumi.Resource[];
        expect(deps).toContain(stack.proxy!.container);
        expect(deps).toContain(stack.proxy!.configCommand);
        expect(deps).toContain(stack.acme!.container);
    });

    it("gives the operator certbot's status, dry-run and forced-renewal commands over SSH", async () => {
        const stack = await build(preprodConfig(acme()));
        expect(stack.acmeCommands).toEqual({
            status: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} status`,
            issue: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} issue`,
            renewDryRun: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} renew --dry-run --no-random-sleep-on-renew`,
            forceRenew: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} renew --force-renewal --no-random-sleep-on-renew`,
            logs: "ssh -p 2222 deploy@203.0.113.10 docker logs --tail 100 vps-stack-preprod-acme",
        });
    });

    it("in host mode, keeps its state in host directories the host's nginx reads, and reloads that nginx", async () => {
        const stack = await build(
            preprodConfig((c) => {
                acme()(c);
                c.nginx = { mode: "host" };
                c.apps[0].hostPort = 8000;
                c.apps[1].hostPort = 8010;
            }),
        );
        expect(container("vps-stack-preprod-acme").volumes).toEqual([
            { hostPath: "/var/lib/vps-stack/preprod/letsencrypt", containerPath: "/etc/letsencrypt" },
            { hostPath: "/var/lib/vps-stack/preprod/acme-webroot", containerPath: "/var/www/acme" },
        ]);
        expect(ofType(VOLUME).map((v) => v.inputs.name)).not.toContain("vps-stack-preprod-letsencrypt");
        const config = stack.hostSite!.config;
        expect(config).toContain("ssl_certificate     /var/lib/vps-stack/preprod/letsencrypt/vps-stack/tls.pem;");
        expect(config).toContain("root /var/lib/vps-stack/preprod/acme-webroot;");
        const site = byName("vps-stack-host-nginx-site");
        expect(site.inputs.stdin).toContain("vps_site_install vps-stack-preprod ");
        expect(site.inputs.stdin).toMatch(/--watch \/var\/lib\/vps-stack\/preprod\/letsencrypt\/vps-stack\/tls\.pem\n$/);
        expect(rawProps.get("vps-stack-host-nginx-site")!.opts.dependsOn as pulumi.Resource[]).toContain(stack.acme!.container);
        const issue = byName("vps-stack-acme-issue").inputs.create as string;
        expect(issue).toMatch(/^docker exec vps-stack-preprod-acme sh \S+ issue && printf '%s' '[A-Za-z0-9+/=]+' \| base64 -d \| sudo -n sh -s$/);
        const script = Buffer.from(issue.match(/printf '%s' '([^']+)'/)![1], "base64").toString();
        expect(script).toMatch(/\nvps_site_reload_if_changed vps-stack-preprod \/var\/lib\/vps-stack\/preprod\/letsencrypt\/vps-stack\/tls\.pem\n$/);
    });

    it("reads renewInterval as seconds", () => {
        expect([durationSeconds("12h"), durationSeconds("90m"), durationSeconds("30s")]).toEqual([43200, 5400, 30]);
    });

    it("reads any duration as whole seconds, at least 1: h = 60 m = 3600 s = 3 600 000 ms", () => {
        fc.assert(
            fc.property(fc.integer({ min: 1, max: 100_000 }), fc.nat(100_000), (n, m) => {
                expect(durationSeconds(`${n}h`)).toBe(n * 3600);
                expect(durationSeconds(`${n}h`)).toBe(durationSeconds(`${n * 60}m`));
                expect(durationSeconds(`${n}m`)).toBe(durationSeconds(`${n * 60}s`));
                expect(durationSeconds(`${n}s`)).toBe(durationSeconds(`${n * 1000}ms`));
                // Never 0 (a zero interval would spin), rounded to the nearest second, never decreasing.
                expect(durationSeconds(`${m}ms`)).toBe(Math.max(1, Math.round(m / 1000)));
                expect(durationSeconds(`${m}s`)).toBe(Math.max(1, m));
                expect(durationSeconds(`${m}s`)).toBeLessThanOrEqual(durationSeconds(`${m + 1}s`));
            }),
        );
        fc.assert(
            fc.property(fc.string(), (s) => {
                if (!/^\d+(ms|s|m|h)$/.test(s)) expect(() => durationSeconds(s)).toThrow("unsupported duration");
            }),
        );
    });
});

describe("VpsStack", () => {
    it("names every container, network and volume vps-stack-<stack>-…", async () => {
        await build(preprodConfig());
        const named = [...ofType(CONTAINER), ...ofType(NETWORK), ...ofType(VOLUME)].map((r) => r.inputs.name);
        // postgres, redis, backup, api ×2, web, nginx; edge, data; postgres, redis and nginx-config volumes
        expect(named.length).toBe(7 + 2 + 3);
        for (const n of named) expect(n).toMatch(/^vps-stack-preprod-/);
    });

    it.each([
        ["preprod", (_c: any) => {}],
        ["migrations and ACME", (c: any) => {
            c.apps[0].migrate = { command: ["migrate"] };
            c.tls = { mode: "acme", acme: { email: "ops@example.com" } };
        }],
        ["the host's nginx", (c: any) => {
            c.nginx = { mode: "host" };
            c.apps[0].hostPort = 8000;
            c.apps[1].hostPort = 8010;
        }],
    ])("puts every child under its component and every docker resource on the stack's provider (%s)", async (_title, extra) => {
        await build(preprodConfig(extra));
        const components = new Set(recorded.filter((r) => r.type.startsWith("vps-stack:index:")).map((r) => r.name));
        for (const r of recorded) {
            if (r.type === "vps-stack:index:VpsStack") continue;
            // The stack's transformations reach only its descendants: a child created without a parent sits
            // at the root of the Pulumi stack and is never captured.
            const seen = rawProps.get(`${r.type}::${r.name}`);
            expect({ child: `${r.type}::${r.name}`, captured: seen !== undefined }).toEqual({ child: `${r.type}::${r.name}`, captured: true });
            const parent = (seen!.opts.parent as unknown as { __name: string } | undefined)?.__name;
            expect({ child: r.name, parentIsComponent: parent !== undefined && components.has(parent) }).toEqual({ child: r.name, parentIsComponent: true });
            // Named after its component; except what VpsHost runs on the host for the others (gates,
            // drains, password changes, file copies), which carries the name of the component it serves, and
            // a migration, named like the app's containers (vps-stack-<stack>-<app>-…; a rename would
            // replace every stack's migration resource).
            const onHost = parent === "vps-stack-host" && r.type.startsWith("command:");
            const migration = r.type === CONTAINER && /^vps-stack-preprod-([a-z0-9-]+?)(-[0-9a-f]{10})?-migrate$/.exec(r.name);
            if (migration) expect(parent).toBe(`vps-stack-app-${migration[1]}`);
            else if (!onHost) expect(`${r.name}-`.startsWith(`${parent}-`) || r.name === parent ? r.name : `${r.name} (under ${parent})`).toBe(r.name);
        }
        for (const r of recorded.filter((x) => x.type.startsWith("docker:index/"))) {
            expect(r.provider).toMatch(/pulumi:providers:docker::vps-stack-host-docker::/);
        }
        for (const r of ofType(REMOTE_IMAGE)) expect(r.inputs.keepLocally).toBe(true);
    });

    it("computes public and health URLs per app", () => {
        const cfg = preprodConfig();
        expect(appUrls(cfg)).toEqual({
            api: { url: "https://app.example.com/api", healthUrl: "https://app.example.com/api/health" },
            web: { url: "https://app.example.com/", healthUrl: "https://app.example.com/health" },
        });
        const dev = loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev");
        expect(appUrls(dev)).toEqual({ api: { url: "https://localhost:8443/", healthUrl: "https://localhost:8443/health" } });
    });
});

describe("releases (nginx.mode container)", () => {
    it("names each app's containers, alias, gate and drain after its release, which is appRelease of its config", async () => {
        const cfg = preprodConfig();
        const stack = await build(cfg);
        for (const app of cfg.apps) {
            const r = rel(stack, app.name);
            expect(r).toBe(appRelease(cfg, app));
            expect(r).toMatch(/^[0-9a-f]{10}$/);
            const names = Array.from({ length: app.replicas }, (_, i) => `vps-stack-preprod-${app.name}-${r}-${i + 1}`);
            expect(stack.apps[app.name].containerNames).toEqual(names);
            for (const [i, n] of names.entries()) {
                expect(byTypeName(CONTAINER, `vps-stack-app-${app.name}-${r}-${i + 1}`).inputs.name).toBe(n);
                expect(container(n).networksAdvanced[0]).toEqual({ name: "vps-stack-preprod-edge", aliases: [`${app.name}-${r}`] });
            }
            expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-${app.name}-${r}-gate`)).toBeDefined();
            expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-${app.name}-${r}-drain`)).toBeDefined();
        }
        expect(rel(stack, "api")).not.toBe(rel(stack, "web"));
        // Nothing is named without its release (the host-mode names).
        expect(ofType(CONTAINER).map((c) => c.inputs.name)).not.toContain("vps-stack-preprod-api-1");
    });

    it("gates each release with the gate script on stdin, after its containers", async () => {
        const stack = await build(preprodConfig());
        const r = rel(stack, "api");
        const gate = byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${r}-gate`);
        expect(gate.inputs.create).toBe("sh -s");
        expect(gate.inputs.stdin).toBe(
            gateScript({
                app: "api",
                stack: "preprod",
                release: r,
                image: "ghcr.io/acme/api:1.4.2",
                containers: [`vps-stack-preprod-api-${r}-1`, `vps-stack-preprod-api-${r}-2`],
                timeoutSeconds: 120,
                http: { image: mockImageId("nginx:1.27-alpine"), network: "vps-stack-preprod-edge", port: 3001, path: "/api/health" },
                keepImages: 3,
                // What the provider should have connected: the gate reconnects what an interrupted create missed.
                networks: [
                    { name: "vps-stack-preprod-edge", aliases: [`api-${r}`] },
                    { name: "vps-stack-preprod-data", aliases: [] },
                ],
            }),
        );
        expect(gate.inputs.delete).toBeUndefined();
        expect(gate.inputs.addPreviousOutputInEnv).toBe(false);
        expect(stack.apps.api.gate).toBeDefined();
        expectSameResources(rawProps.get(`vps-stack-app-api-${r}-gate`)!.opts.dependsOn, stack.apps.api.containers);
        expect(stack.apps.api.containers).toHaveLength(2);
    });

    it("drains a retired release by the delete of its drain command: wait for the proxy's old workers, then stop", async () => {
        const stack = await build(preprodConfig());
        const r = rel(stack, "api");
        const drain = byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${r}-drain`);
        expect(drain.inputs.create).toBe("true");
        expect(drain.inputs.delete).toBe(
            drainScript({ proxy: "vps-stack-preprod-nginx", containers: [`vps-stack-preprod-api-${r}-1`, `vps-stack-preprod-api-${r}-2`], drainSeconds: 30, stopSeconds: 10 }),
        );
        expect(drain.inputs.delete).toContain(`docker stop -t 10 vps-stack-preprod-api-${r}-1 vps-stack-preprod-api-${r}-2`);
        expectSameResources(rawProps.get(`vps-stack-app-api-${r}-drain`)!.opts.dependsOn, stack.apps.api.containers);
    });

    it("takes timeouts and keepImages from the releases section", async () => {
        const stack = await build(preprodConfig((c) => (c.releases = { healthTimeout: "3m", drainTimeout: "45s", stopTimeout: "20s", keepImages: 5 })));
        const r = rel(stack, "web");
        const gate = byTypeName(REMOTE_COMMAND, `vps-stack-app-web-${r}-gate`).inputs.stdin as string;
        expect(gate).toContain("deadline=$(( $(date +%s) + 180 ))");
        expect(gate).toContain("head -n 5)");
        const drain = byTypeName(REMOTE_COMMAND, `vps-stack-app-web-${r}-drain`).inputs.delete as string;
        expect(drain).toContain("deadline=$(( $(date +%s) + 45 ))");
        expect(drain).toContain(`docker stop -t 20 vps-stack-preprod-web-${r}-1 `);
        expect(stack.proxy!.config).toContain("worker_shutdown_timeout 45s;");
    });

    it("skips the HTTP check of an app that has its own health command", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].healthCommand = ["node", "healthcheck.js"])));
        expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${rel(stack, "api")}-gate`).inputs.stdin).not.toContain("docker run");
        expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-web-${rel(stack, "web")}-gate`).inputs.stdin).toContain(
            `docker run --rm --network vps-stack-preprod-edge --entrypoint sh ${mockImageId("nginx:1.27-alpine")} -c `,
        );
    });

    it("points the proxy at each release's alias and bounds old workers by drainTimeout", async () => {
        const stack = await build(preprodConfig());
        const config = stack.proxy!.config;
        expect(config).toContain("worker_shutdown_timeout 30s;");
        expect(config).toContain(`server api-${rel(stack, "api")}:3001`);
        expect(config).toContain(`server web-${rel(stack, "web")}:3000`);
        expect(config).not.toMatch(/server (api|web):/);
    });

    it("starts apps after the proxy's image is pulled (their gates use it)", async () => {
        const stack = await build(preprodConfig());
        const deps = rawProps.get("vps-stack-app-api")!.opts.dependsOn as pulumi.Resource[];
        expect(byName("vps-stack-nginx-image").type).toBe(REMOTE_IMAGE);
        expect(deps).toHaveLength(3);
        expectSameResources(deps.slice(0, 2), [stack.postgres, stack.redis]);
        expect(pulumi.CustomResource.isInstance(deps[2])).toBe(true);
    });

    it("gives every host command addPreviousOutputInEnv false", async () => {
        await build(preprodConfig((c) => (c.tls = { mode: "acme", acme: { email: "ops@example.com" } })));
        const cmds = ofType(REMOTE_COMMAND);
        expect(cmds.length).toBeGreaterThan(5);
        for (const c of cmds) expect([c.name, c.inputs.addPreviousOutputInEnv]).toEqual([c.name, false]);
    });

    it("changes only the changed app's release", async () => {
        const a = await build(preprodConfig());
        const [api, web] = [rel(a, "api"), rel(a, "web")];
        resetRecorded();
        rawProps.clear();
        const b = await build(preprodConfig((c) => (c.apps[0].image = "ghcr.io/acme/api:1.4.3")));
        expect(rel(b, "api")).not.toBe(api);
        expect(rel(b, "web")).toBe(web);
    });
});

describe("no releases with the host's nginx (nginx.mode host)", () => {
    const hostMode = (c: any) => {
        c.nginx = { mode: "host" };
        c.apps[0].hostPort = 8000;
        c.apps[1].hostPort = 8010;
    };

    it("keeps fixed names, the app's own alias and the provider's wait; no gate, drain, proxy image or drain timeout", async () => {
        const stack = await build(preprodConfig(hostMode));
        expect(stack.apps.api.release).toBeUndefined();
        expect(stack.apps.api.gate).toBeUndefined();
        expect(stack.apps.api.upstreamHost).toBe("api");
        expect(stack.apps.api.containerNames).toEqual(["vps-stack-preprod-api-1", "vps-stack-preprod-api-2"]);
        const api = byTypeName(CONTAINER, "vps-stack-app-api-1").inputs;
        expect(api.name).toBe("vps-stack-preprod-api-1");
        expect(api.networksAdvanced[0]).toEqual({ name: "vps-stack-preprod-edge", aliases: ["api"] });
        expect(api.wait).toBe(true);
        expect(byTypeName(CONTAINER, "vps-stack-app-web-1").inputs.name).toBe("vps-stack-preprod-web-1");
        expect(ofType(REMOTE_COMMAND).filter((c) => /-(gate|drain)$/.test(c.name))).toEqual([]);
        expect(recorded.filter((r) => r.name === "vps-stack-nginx-image" || r.name === "vps-stack-nginx-config")).toEqual([]);
        expect(stack.hostSite!.config).not.toContain("worker_shutdown_timeout");
        expectSameResources(rawProps.get("vps-stack-app-api")!.opts.dependsOn, [stack.postgres, stack.redis]);
    });

    it("names a migration without a release", async () => {
        await build(preprodConfig((c) => (hostMode(c), (c.apps[0].migrate = { command: ["migrate"] }))));
        expect(byName("vps-stack-preprod-api-migrate").type).toBe(CONTAINER);
    });
});
