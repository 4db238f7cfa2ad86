// Config validation: good configs for every committed stack, and bad ones that must each fail with a
// message naming the offending key and the command that fixes it, all problems in one error.
import * as fc from "fast-check";
import { acmeDirectoryUrl, LETSENCRYPT_DIRECTORY, LETSENCRYPT_STAGING_DIRECTORY } from "../../plan/tls";
import { ConfigError, environmentProblems, isPinnedImage, loadConfig, RawConfigMap, rawConfigFromPulumi, sizeToMiB } from "../../config";
import { stackConfig, withRequiredSecrets } from "../mocks";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";
// Host keys as ssh-keyscan prints them (minus the host name), made with ssh-keygen.
const RSA_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCovnvuppz66wsv9zzxMI7KP85FLeocCFDHV9aDUEV6ubrLiA+C3ibJLoqtBBp5lzKoBAMrT2p0tj1byE3Ag7lEXqGw8fMd4t3cV/NXVufzDtRrpegN/RQQ2ni6nDvdmrlheutnjtOg6sVJeaeRxvWx+5utU18XQWhuXIZ+qJTqr12NEo4d5IHaSlfCfA3OpVqlpnD7MUDZtO9YLhARTmTrrWN/kwmgV4OUahkm9FtT9ZBfaxQ0bMQPusKwa3/J6PlujjycX7/sSI4z6Y6/3P0exQYTKHwt1p1JNHB5PYKzb8rBjw8Ua+m6iPTTn+0npqUUoo6W6bHHAliWI2m5GJ57";
const ECDSA384_KEY = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBBW4DFsRCXbX32SnJGnDzakmn2XlMMXOpWrJUU0RAodzdZ6yUB8vduU0uyf4DKm2dpmlGgMp4VVwdoNPrMysSeBmFBu7+7FehMhdaV4JBNlzqbL1gRDbOEcHcrXmVW0n7w==";

function good(): any {
    return {
        host: { address: "203.0.113.10", hostKey: KEY },
        domain: "api.example.com",
        apps: [{ name: "api", image: "ghcr.io/acme/api:1.4.2" }],
    };
}

function problemsOf(raw: RawConfigMap, stack = "preprod"): ConfigError {
    try {
        loadConfig(raw, stack);
    } catch (e) {
        if (e instanceof ConfigError) return e;
        throw e;
    }
    throw new Error("expected a ConfigError, but the config was accepted");
}

type Case = [title: string, mutate: (c: any) => void, key: string, stack?: string];

const bad: Case[] = [
    ["malformed domain", (c) => (c.domain = "example..com"), "domain"],
    ["upper-case domain", (c) => (c.domain = "API.Example.com"), "domain"],
    ["localhost as the domain of a VPS stack", (c) => (c.domain = "localhost"), "domain"],
    ["SSH port out of range", (c) => (c.host.port = 70000), "host.port"],
    ["app port zero", (c) => (c.apps[0].port = 0), "apps[0].port"],
    ["app port not an integer", (c) => (c.apps[0].port = 80.5), "apps[0].port"],
    ["image without tag", (c) => (c.apps[0].image = "ghcr.io/acme/api"), "apps[0].image"],
    ["image tagged latest", (c) => (c.apps[0].image = "ghcr.io/acme/api:latest"), "apps[0].image"],
    ["postgres image tagged latest", (c) => (c.postgres = { image: "postgres:latest" }), "postgres.image"],
    ["malformed image reference", (c) => (c.apps[0].image = "Ghcr.io/Acme/API:1"), "apps[0].image"],
    ["unknown top-level key", (c) => (c.postgress = { memory: "1g" }), "postgress"],
    ["unknown nested key", (c) => (c.postgres = { memroy: "1g" }), "postgres.memroy"],
    ["unknown app key", (c) => (c.apps[0].imagee = "x"), "apps[0].imagee"],
    ["negative memory", (c) => (c.postgres = { memory: "-1g" }), "postgres.memory"],
    ["absurd memory", (c) => (c.redis = { memory: "900g" }), "redis.memory"],
    ["memory without unit", (c) => (c.apps[0].memory = "512"), "apps[0].memory"],
    ["zero CPUs", (c) => (c.apps[0].cpus = 0), "apps[0].cpus"],
    ["absurd CPUs", (c) => (c.nginx = { cpus: 1000 }), "nginx.cpus"],
    ["duplicate app names", (c) => c.apps.push({ name: "api", image: "ghcr.io/acme/web:1.0.0", paths: ["/web"] }), "apps[1].name"],
    ["duplicate routes", (c) => c.apps.push({ name: "web", image: "ghcr.io/acme/web:1.0.0" }), "apps[1].paths[0]"],
    ["hostKey without its type", (c) => (c.host.hostKey = "AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+"), "host.hostKey"],
    ["hostKey with the host name in front", (c) => (c.host.hostKey = `203.0.113.10 ${KEY}`), "host.hostKey"],
    ["RSA hostKey (the command provider can only offer ssh-rsa/SHA-1)", (c) => (c.host.hostKey = RSA_KEY), "host.hostKey"],
    ["DSA hostKey", (c) => (c.host.hostKey = `ssh-dss ${KEY.split(" ")[1]}`), "host.hostKey"],
    ["truncated hostKey", (c) => (c.host.hostKey = KEY.slice(0, -12)), "host.hostKey"],
    ["ed25519 data labelled ecdsa", (c) => (c.host.hostKey = `ecdsa-sha2-nistp256 ${KEY.split(" ")[1]}`), "host.hostKey"],
    ["ecdsa-384 data labelled ecdsa-256", (c) => (c.host.hostKey = `ecdsa-sha2-nistp256 ${ECDSA384_KEY.split(" ")[1]}`), "host.hostKey"],
    ["security-key hostKey type", (c) => (c.host.hostKey = `sk-ssh-ed25519@openssh.com ${KEY.split(" ")[1]}`), "host.hostKey"],
    ["hostKey with a comment after it", (c) => (c.host.hostKey = `${KEY} root@vps`), "host.hostKey"],
    ["missing address on a VPS stack", (c) => delete c.host.address, "host.address"],
    ["missing hostKey on prod", (c) => delete c.host.hostKey, "host.hostKey", "prod"],
    ["no apps", (c) => (c.apps = []), "apps"],
    ["invalid app name", (c) => (c.apps[0].name = "API_1"), "apps[0].name"],
    ["reserved app name", (c) => (c.apps[0].name = "postgres"), "apps[0].name"],
    ["zero replicas", (c) => (c.apps[0].replicas = 0), "apps[0].replicas"],
    ["absurd replicas", (c) => (c.apps[0].replicas = 100), "apps[0].replicas"],
    ["cron minute out of range", (c) => (c.backup = { schedule: "61 2 * * *" }), "backup.schedule"],
    ["cron with four fields", (c) => (c.backup = { schedule: "0 2 * *" }), "backup.schedule"],
    ["zero daily retention", (c) => (c.backup = { retention: { daily: 0 } }), "backup.retention.daily"],
    ["relative backup directory", (c) => (c.backup = { directory: "backups" }), "backup.directory"],
    ["unknown time zone", (c) => (c.backup = { timezone: "Mars/Olympus" }), "backup.timezone"],
    ["shared_buffers above the memory limit", (c) => (c.postgres = { memory: "256m", sharedBuffers: "512MB" }), "postgres.sharedBuffers"],
    ["redis maxmemory above the memory limit", (c) => (c.redis = { memory: "256m", maxmemory: "512mb" }), "redis.maxmemory"],
    ["acme without an account e-mail", (c) => (c.tls = { mode: "acme" }), "tls.acme.email"],
    ["acme with a malformed e-mail", (c) => (c.tls = { mode: "acme", acme: { email: "admin" } }), "tls.acme.email"],
    ["acme on dev", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com" } }), "tls.mode", "dev"],
    ["acme with staging and a directory", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com", staging: true, directoryUrl: "https://acme.example.net/dir" } }), "tls.acme.staging"],
    ["acme directory over plain http", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com", directoryUrl: "http://acme.example.net/dir" } }), "tls.acme.directoryUrl"],
    ["acme CA that is not PEM", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com", caCertificate: "hello" } }), "tls.acme.caCertificate"],
    ["acme client image on latest", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com", image: "certbot/certbot:latest" } }), "tls.acme.image"],
    ["acme renew interval without unit", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com", renewInterval: "12" } }), "tls.acme.renewInterval"],
    ["unknown acme key", (c) => (c.tls = { mode: "acme", acme: { email: "a@example.com", wildcard: true } }), "tls.acme.wildcard"],
    ["app named acme", (c) => (c.apps[0].name = "acme"), "apps[0].name"],
    ["tls mode unknown", (c) => (c.tls = { mode: "letsencrypt" }), "tls.mode"],
    ["host-mode nginx without the app's host port", (c) => (c.nginx = { mode: "host" }), "apps[0].hostPort"],
    ["host-mode nginx on dev", (c) => ((c.nginx = { mode: "host" }), (c.apps[0].hostPort = 8000)), "nginx.mode", "dev"],
    ["overlapping host ports", (c) => ((c.nginx = { mode: "host" }), Object.assign(c.apps[0], { hostPort: 8000, replicas: 2 }), c.apps.push({ name: "web", image: "ghcr.io/acme/web:1.0.0", paths: ["/web"], hostPort: 8001 })), "apps[1].hostPort"],
    ["host port in container mode", (c) => (c.apps[0].hostPort = 8000), "apps[0].hostPort"],
    ["same HTTP and HTTPS port", (c) => (c.nginx = { httpPort: 443 }), "nginx.httpsPort"],
    ["plain env shadowing a secret", (c) => (c.apps[0].env = { JWT_SECRET: "x" }), "apps[0].env.JWT_SECRET"],
    ["plain env shadowing DATABASE_URL", (c) => (c.apps[0].env = { DATABASE_URL: "postgres://x" }), "apps[0].env.DATABASE_URL"],
    ["lower-case env name", (c) => (c.apps[0].env = { node_env: "production" }), "apps[0].env.node_env"],
    ["path prefix without slash", (c) => (c.apps[0].paths = ["api"]), "apps[0].paths[0]"],
    ["health path without slash", (c) => (c.apps[0].healthPath = "health"), "apps[0].healthPath"],
    ["rotation token for no secret", (c) => (c.rotate = { FOO: "2026-11" }), "rotate.FOO"],
    ["registry without its password", (c) => (c.apps[0].registry = { server: "ghcr.io", username: "bot" }), "secrets.REGISTRY_PASSWORD"],
    ["number given as a string", (c) => (c.postgres = { maxConnections: "200" }), "postgres.maxConnections"],
    ["relative private key path", (c) => (c.host.privateKeyPath = "id_ed25519"), "host.privateKeyPath"],
    ["short postgres password", (c) => (c.postgres = { passwordLength: 16 }), "postgres.passwordLength"],
    ["provided value for a generated secret", (c) => (c.secrets = { JWT_SECRET: "mine" }), "secrets.JWT_SECRET"],
    ["secret spec neither required nor generate", (c) => (c.apps[0].secrets = { API_KEY: "optional" }), "apps[0].secrets.API_KEY"],
    ["bad rate limit", (c) => (c.nginx = { rateLimit: { rate: "10 per second" } }), "nginx.rateLimit.rate"],
    ["bad proxy timeout", (c) => (c.nginx = { timeouts: { read: "5 minutes" } }), "nginx.timeouts.read"],
    ["bad body size", (c) => (c.nginx = { clientMaxBodySize: "100 MB" }), "nginx.clientMaxBodySize"],
    ["container app without an image", (c) => delete c.apps[0].image, "apps[0].image"],
    ["static app with neither image nor directory", (c) => c.apps.push({ name: "web", kind: "static", paths: ["/web"] }), "apps[1].static.dir"],
    ["static app with both a directory and an archive", (c) => c.apps.push({ name: "web", kind: "static", static: { dir: "./dist", archive: "./dist.tgz" }, paths: ["/web"] }), "apps[1].static.archive"],
    ["static archive that is not a tar", (c) => c.apps.push({ name: "web", kind: "static", static: { archive: "./dist.zip" }, paths: ["/web"] }), "apps[1].static.archive"],
    ["static settings on a container app", (c) => (c.apps[0].static = { dir: "./dist" }), "apps[0].static"],
    ["migration without a command", (c) => (c.apps[0].migrate = {}), "apps[0].migrate.command"],
    ["migration on a static site", (c) => c.apps.push({ name: "web", kind: "static", static: { dir: "./dist" }, paths: ["/web"], migrate: { command: ["x"] } }), "apps[1].migrate"],
    ["bad per-app header name", (c) => (c.apps[0].proxy = { headers: { "Bad Header": "x" } }), 'apps[0].proxy.headers["Bad Header"]'],
    ["nginx variable in a per-app header value", (c) => (c.apps[0].proxy = { headers: { "Content-Security-Policy": "default-src $host" } }), "apps[0].proxy.headers.Content-Security-Policy"],
    ["newline in a per-app header value", (c) => (c.apps[0].proxy = { headers: { "X-A": "a\nX-B: b" } }), "apps[0].proxy.headers.X-A"],
    ["bad per-app rate", (c) => (c.apps[0].proxy = { rateLimit: { rate: "fast" } }), "apps[0].proxy.rateLimit.rate"],
    ["provided TLS without its certificate", (c) => (c.tls = { mode: "provided" }), "secrets.TLS_CERTIFICATE"],
    ["provided TLS with garbage", (c) => ((c.tls = { mode: "provided" }), (c.secrets = { TLS_CERTIFICATE: "not a cert", TLS_PRIVATE_KEY: "not a key" })), "secrets.TLS_PRIVATE_KEY"],
];

describe("loadConfig rejects bad config", () => {
    test.each(bad)("%s", (_title, mutate, key, stack = "preprod") => {
        const raw = good();
        mutate(raw);
        const err = problemsOf(raw, stack);
        const problem = err.problems.find((p) => p.path === key);
        expect(problem).toBeDefined();
        // The single message names the key with its namespace and says how to fix it.
        expect(err.message).toContain(`vps-stack:${key} `);
        expect(problem!.fix).toMatch(/^pulumi config (set|rm) /);
        expect(err.message).toContain(problem!.fix);
        expect(err.message).toContain("nothing was deployed");
    });

    it("has at least 25 bad cases", () => {
        expect(bad.length).toBeGreaterThanOrEqual(25);
    });

    it("lists every problem in one error", () => {
        const raw = good();
        raw.domain = "bad..domain";
        raw.apps[0].image = "ghcr.io/acme/api:latest";
        raw.host.port = 0;
        raw.redis = { memory: "1000g" };
        const err = problemsOf(raw);
        expect(err.problems.map((p) => p.path).sort()).toEqual(["apps[0].image", "domain", "host.port", "redis.memory"].sort());
        expect(err.message).toMatch(/has 4 configuration problems/);
    });

    it("reports type errors and cross-field errors together", () => {
        const raw = good();
        delete raw.host.address;
        raw.apps[0].image = "ghcr.io/acme/api";
        const err = problemsOf(raw);
        expect(err.problems.map((p) => p.path).sort()).toEqual(["apps[0].image", "host.address"]);
    });

    it("gives the exact command for a missing required secret", () => {
        const raw = good();
        raw.apps[0].secrets = { WHATSAPP_API_KEY: "required" };
        const err = problemsOf(raw);
        expect(err.message).toContain("vps-stack:secrets.WHATSAPP_API_KEY is required by app \"api\"");
        expect(err.message).toContain("pulumi config set --secret --path 'secrets.WHATSAPP_API_KEY' <value>");
    });

    it("fails the committed prod config until its required secrets are set", () => {
        const err = problemsOf(stackConfig("prod"), "prod");
        expect(err.problems.map((p) => p.path).sort()).toEqual([
            "secrets.WHATSAPP_API_KEY",
            "secrets.WHATSAPP_PHONE_NUMBER_ID",
            "secrets.WHATSAPP_VERIFY_TOKEN",
        ]);
    });

    it("never echoes a secret value in an error", () => {
        const raw = good();
        raw.secrets = { JWT_SECRET: "super-secret-value-123" };
        const err = problemsOf(raw);
        expect(err.message).not.toContain("super-secret-value-123");
    });
});

describe("loadConfig accepts good config", () => {
    it("resolves the committed dev stack: local engine, 8080/8443, localhost, latest allowed", () => {
        const cfg = loadConfig({ ...stackConfig("dev"), apps: [{ name: "api", image: "demo:latest" }] }, "dev");
        expect(cfg.local).toBe(true);
        expect(cfg.host).toBeUndefined();
        expect(cfg.domain).toBe("localhost");
        expect(cfg.nginx.httpPort).toBe(8080);
        expect(cfg.nginx.httpsPort).toBe(8443);
        expect(cfg.prefix).toBe("vps-stack-dev");
        expect(cfg.apps[0].hosts).toEqual(["localhost"]);
        expect(cfg.postgres.protectVolume).toBe(false);
    });

    it("resolves the committed preprod stack", () => {
        const cfg = loadConfig(withRequiredSecrets(stackConfig("preprod")), "preprod");
        expect(cfg.local).toBe(false);
        expect(cfg.host).toMatchObject({ address: "203.0.113.10", port: 22, user: "deploy", controlPersist: "10m" });
        expect(cfg.nginx.httpPort).toBe(80);
        expect(cfg.nginx.httpsPort).toBe(443);
        expect(cfg.backup.directory).toBe("/var/backups/vps-stack/preprod");
        expect(cfg.backup.retention).toEqual({ daily: 7, weekly: 0, monthly: 0 });
        expect(cfg.postgres.protectVolume).toBe(false);
        expect(cfg.redis.protectVolume).toBe(false);
    });

    it("resolves the committed prod stack with its 30/12/12 retention and a protected volume", () => {
        const cfg = loadConfig(withRequiredSecrets(stackConfig("prod")), "prod");
        expect(cfg.apps.map((a) => [a.name, a.paths, a.hosts])).toEqual([
            ["api", ["/api"], ["app.example.com"]],
            ["web", ["/"], ["app.example.com"]],
        ]);
        expect(cfg.backup.retention).toEqual({ daily: 30, weekly: 12, monthly: 12 });
        expect(cfg.postgres.protectVolume).toBe(true);
        expect(cfg.redis.protectVolume).toBe(true);
        expect(cfg.postgres).toMatchObject({ memory: "2g", cpus: 2, maxConnections: 200, sharedBuffers: "256MB", effectiveCacheSize: "1GB" });
    });

    it("applies documented defaults", () => {
        const cfg = loadConfig(good(), "preprod");
        expect(cfg.postgres.image).toBe("postgres:16-alpine");
        expect(cfg.postgres.extensions).toEqual(["uuid-ossp", "pgcrypto"]);
        expect(cfg.redis).toMatchObject({ image: "redis:7-alpine", appendonly: true, maxmemoryPolicy: "allkeys-lru" });
        expect(cfg.nginx).toMatchObject({ clientMaxBodySize: "100M", rateLimit: { enabled: true, rate: "10r/s", burst: 20 } });
        expect(cfg.apps[0]).toMatchObject({ port: 8000, healthPath: "/health", replicas: 1, secretDelivery: "file", secrets: { JWT_SECRET: "generate" } });
        expect(cfg.backup).toMatchObject({ schedule: "0 2 * * *", timezone: "UTC", maxAgeHours: 26, retention: { daily: 7, weekly: 4, monthly: 6 } });
    });

    it.each([
        ["ed25519", KEY],
        ["ecdsa P-384", ECDSA384_KEY],
        ["ed25519 with surrounding whitespace", `  ${KEY}\n`],
    ])("accepts a pinnable %s host key", (_title, hostKey) => {
        const raw = good();
        raw.host.hostKey = hostKey;
        expect(loadConfig(raw, "preprod").host!.hostKey).toBe(hostKey);
    });

    it("says why an RSA host key is refused and which key to pin instead", () => {
        const raw = good();
        raw.host.hostKey = RSA_KEY;
        const problem = problemsOf(raw).problems.find((p) => p.path === "host.hostKey")!;
        expect(problem.message).toMatch(/OpenSSH 8\.8/);
        expect(problem.fix).toContain("ssh-keyscan -t ed25519");
    });

    it("accepts digests, registry ports and the same path on different hosts", () => {
        const raw = good();
        raw.apps = [
            { name: "api", image: `registry.example.com:5000/acme/api@sha256:${"a".repeat(64)}`, hosts: ["api.example.com"] },
            { name: "web", image: "ghcr.io/acme/web:2.1.0", hosts: ["example.com"] },
        ];
        expect(() => loadConfig(raw, "preprod")).not.toThrow();
    });

    it("resolves a static app: the Nginx image, port 8080, no database, cache or secrets", () => {
        const raw = good();
        raw.apps.push({ name: "web", kind: "static", static: { dir: "./web/dist" }, paths: ["/"], hosts: ["www.example.com"] });
        const web = loadConfig(raw, "preprod").apps[1];
        expect(web).toMatchObject({ kind: "static", image: "nginx:1.27-alpine", port: 8080, database: false, redis: false, secrets: {} });
        expect(web.static).toEqual({ dir: "./web/dist", root: "/usr/share/nginx/html" });
    });

    it("ignores other namespaces' keys (they never reach the loader)", () => {
        // As Pulumi hands the config to the program: every namespace, structured values as JSON.
        const ours = Object.fromEntries(Object.entries(good()).map(([k, v]) => [`vps-stack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
        // Keys the loader would refuse if they reached it: one clashes with ours (a string where host is a
        // map), the others are no key of ours.
        const theirs = { "docker:host": "ssh://deploy@203.0.113.99", "aws:region": "eu-west-1", "pulumi:disable-default-providers": '["*"]' };
        const all = { ...theirs, ...ours };
        expect(rawConfigFromPulumi(all)).toEqual(good());
        expect(loadConfig(rawConfigFromPulumi(all), "preprod", new Date(), Object.keys(all))).toEqual(loadConfig(good(), "preprod"));
    });
});

describe("pure helpers", () => {
    it.each([
        ["postgres:16-alpine", true],
        ["ghcr.io/acme/api:1.4.2", true],
        ["localhost:5000/api:2", true],
        [`api@sha256:${"b".repeat(64)}`, true],
        ["api", false],
        ["api:latest", false],
        ["localhost:5000/api", false],
    ])("isPinnedImage(%s) = %s", (ref, expected) => {
        expect(isPinnedImage(ref)).toBe(expected);
    });

    it.each([
        ["512m", 512],
        ["1g", 1024],
        ["2GB", 2048],
        ["256mb", 256],
        ["1024k", 1],
        ["12x", NaN],
    ])("sizeToMiB(%s) = %s", (s, n) => {
        expect(sizeToMiB(s)).toBe(n);
    });

    it("sizeToMiB: each unit is 1024 of the one below, in any case and spacing; a longer number is never smaller", () => {
        const unit = fc.constantFrom(["k", 1 / 1024], ["kb", 1 / 1024], ["m", 1], ["mb", 1], ["g", 1024], ["gb", 1024]);
        const caseOf = (u: string, upper: boolean[]) => [...u].map((ch, i) => (upper[i] ? ch.toUpperCase() : ch)).join("");
        fc.assert(
            fc.property(fc.nat(1_000_000), fc.nat(1_000_000), unit, fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }), fc.constantFrom("", " ", "  "), (a, b, [u, mib], upper, space) => {
                expect(sizeToMiB(`${a}${space}${caseOf(u, upper)}`)).toBe(a * mib);
                expect(sizeToMiB(`${a * 1024}b`)).toBe(sizeToMiB(`${a}k`));
                expect(sizeToMiB(`${a}g`)).toBe(sizeToMiB(`${a * 1024}m`));
                if (a <= b) expect(sizeToMiB(`${a}${u}`)).toBeLessThanOrEqual(sizeToMiB(`${b}${u}`));
            }),
        );
        // Anything else is NaN, never a number by accident.
        fc.assert(
            fc.property(fc.string(), (s) => {
                const n = sizeToMiB(s);
                if (!/^\s*\d+(\.\d+)?\s*(b|k|kb|m|mb|g|gb)\s*$/i.test(s)) expect(n).toBeNaN();
                else expect(n).toBeGreaterThanOrEqual(0);
            }),
        );
    });
});

describe("environmentProblems", () => {
    const cfg = (host: any = {}) => loadConfig({ ...good(), host: { ...good().host, ...host } }, "preprod");
    const none = () => false;

    it("accepts an SSH agent when no key file is configured", () => {
        expect(environmentProblems(cfg(), { sshAuthSock: "/run/agent.sock", fileExists: none })).toEqual([]);
    });

    it("requires a key file or an agent", () => {
        const [p] = environmentProblems(cfg(), { fileExists: none });
        expect(p.path).toBe("host.privateKeyPath");
        expect(p.fix).toContain("pulumi config set --path 'host.privateKeyPath' ~/.ssh/id_ed25519");
    });

    it("checks that the configured key file exists", () => {
        expect(environmentProblems(cfg({ privateKeyPath: "~/.ssh/id_ed25519" }), { fileExists: (p) => p === "~/.ssh/id_ed25519" })).toEqual([]);
        expect(environmentProblems(cfg({ privateKeyPath: "~/.ssh/missing" }), { fileExists: none })[0].message).toContain("does not exist");
    });

    describe("a static app's site", () => {
        const withSite = (site: object) => {
            const raw = good();
            raw.apps.push({ name: "web", kind: "static", static: site, hosts: ["www.example.com"] });
            return loadConfig(raw, "preprod");
        };
        const agent = { sshAuthSock: "/run/agent.sock", fileExists: none };
        const index = [{ path: "index.html", contentBase64: "" }];

        it("is read as it will be uploaded, from the directory or the archive", () => {
            const seen: object[] = [];
            const loadSite = (s: object) => (seen.push(s), index);
            expect(environmentProblems(withSite({ dir: "./web/dist" }), { ...agent, loadSite })).toEqual([]);
            expect(environmentProblems(withSite({ archive: "./web/dist.tgz" }), { ...agent, loadSite })).toEqual([]);
            expect(seen).toEqual([expect.objectContaining({ dir: "./web/dist" }), expect.objectContaining({ archive: "./web/dist.tgz" })]);
        });

        it("wants index.html", () => {
            const loadSite = () => [{ path: "assets/app.js", contentBase64: "" }];
            const [d] = environmentProblems(withSite({ dir: "./web/dist" }), { ...agent, loadSite });
            expect(d).toMatchObject({ path: "apps[1].static.dir", fix: "pulumi config set --path 'apps[1].static.dir' ./web/dist" });
            expect(d.message).toBe("(./web/dist) has no index.html: build the front end first, or point at its output");
            const [a] = environmentProblems(withSite({ archive: "./web/dist.tgz" }), { ...agent, loadSite });
            expect(a).toMatchObject({ path: "apps[1].static.archive", fix: "tar -czf ./web/dist.tgz -C ./web/dist ." });
            expect(a.message).toContain("has no index.html at its top or under its single top-level directory");
        });

        it("reports a missing, unreadable or oversized site with the other problems", () => {
            const enoent = () => {
                throw Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" });
            };
            const [missing] = environmentProblems(withSite({ archive: "./web/dist.tgz" }), { ...agent, loadSite: enoent });
            expect(missing).toMatchObject({ path: "apps[1].static.archive", message: "(./web/dist.tgz) does not exist on this machine: build the front end first" });
            const broken = () => {
                throw new Error("holds a link (a → b): archive the files themselves (tar --dereference)");
            };
            const problems = environmentProblems(withSite({ archive: "./web/dist.tgz" }), { fileExists: none, loadSite: broken });
            expect(problems.map((p) => p.path)).toEqual(["apps[1].static.archive", "host.privateKeyPath"]);
            expect(problems[0].message).toBe("(./web/dist.tgz) holds a link (a → b): archive the files themselves (tar --dereference)");
        });
    });

    it("has nothing to say about dev", () => {
        expect(environmentProblems(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"), { fileExists: none })).toEqual([]);
    });
});

describe("tls.mode acme", () => {
    const acme = (extra: object = {}) => {
        const raw = good();
        raw.tls = { mode: "acme", acme: { email: "ops@example.com", ...extra } };
        return loadConfig(raw, "preprod");
    };

    it("needs only the account e-mail, and defaults to Let's Encrypt production with a pinned certbot", () => {
        const cfg = acme();
        expect(cfg.tls.acme).toEqual({ email: "ops@example.com", staging: false, image: "certbot/certbot:v5.7.0", renewInterval: "12h", memory: "128m", pidsLimit: 128 });
        expect(acmeDirectoryUrl(cfg.tls.acme)).toBe(LETSENCRYPT_DIRECTORY);
    });

    it("switches to Let's Encrypt's staging directory (untrusted test certificates)", () => {
        expect(acmeDirectoryUrl(acme({ staging: true }).tls.acme)).toBe(LETSENCRYPT_STAGING_DIRECTORY);
        expect(LETSENCRYPT_STAGING_DIRECTORY).toMatch(/^https:\/\/acme-staging-v02\./);
    });

    it("takes another CA's directory (a local test server) with the CA that signs its HTTPS", () => {
        const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        const cfg = acme({ directoryUrl: "https://10.0.0.1:14000/dir", caCertificate: ca });
        expect(acmeDirectoryUrl(cfg.tls.acme)).toBe("https://10.0.0.1:14000/dir");
        expect(cfg.tls.acme.caCertificate).toBe(ca);
    });

    it("lists every ACME problem at once", () => {
        const raw = good();
        raw.tls = { mode: "acme", acme: { staging: true, directoryUrl: "https://acme.example.net/dir", image: "certbot/certbot" } };
        const err = problemsOf(raw);
        expect(err.problems.map((p) => p.path).sort()).toEqual(["tls.acme.email", "tls.acme.image", "tls.acme.staging"]);
    });

    it("hints PEM values after --, since a value starting with dashes is read as a flag by the CLI", () => {
        const raw = good();
        raw.tls = { mode: "acme", acme: { email: "ops@example.com", caCertificate: "nope" } };
        expect(problemsOf(raw).problems.find((p) => p.path === "tls.acme.caCertificate")!.fix).toBe(`pulumi config set --path 'tls.acme.caCertificate' -- "$(cat acme-ca.pem)"`);
        const provided = good();
        provided.tls = { mode: "provided" };
        const fixes = problemsOf(provided).problems.map((p) => p.fix);
        expect(fixes).toContain(`pulumi config set --secret --path 'secrets.TLS_CERTIFICATE' -- "$(cat fullchain.pem)"`);
        expect(fixes).toContain(`pulumi config set --secret --path 'secrets.TLS_PRIVATE_KEY' -- "$(cat privkey.pem)"`);
    });

    it("leaves tls.acme alone in the other modes (switching modes back and forth keeps it)", () => {
        const raw = good();
        raw.tls = { mode: "ca", acme: { email: "ops@example.com" } };
        expect(loadConfig(raw, "preprod").tls.mode).toBe("ca");
    });
});
