// OffsiteUploader under Pulumi mocks: the restic container, its repository, its secret files, its network;
// the backup job's off-site settings; the config's refusals; the warning on prod without it.
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "../../config";
import { BACKUP_MOUNT } from "../../render/backup";
import { AWS_CREDENTIALS_FILE, awsCredentials, OFFSITE_SCRIPT, offsiteCommands, offsiteScript, RESTIC_PASSWORD_FILE, resticRepository } from "../../render/offsite";
import { byName, NETWORK, ofType } from "../mocks";
import { build, container, KEY, preprodConfig, resetCaptured, upload, uploadIsSecret } from "./helpers";

beforeEach(resetCaptured);

const SECRET_KEY = "s3-secret-key-value-123";
const PASSPHRASE = "correct horse battery staple offsite";
const withOffsite = (offsite: any = {}) => (c: any) => {
    c.backup = { rpoSeconds: 40, offsite: { endpoint: "https://s3.fr-par.scw.cloud", bucket: "acme-backups", region: "fr-par", accessKeyId: "SCWKEYID123", ...offsite } };
    c.secrets = { ...c.secrets, OFFSITE_SECRET_ACCESS_KEY: SECRET_KEY, OFFSITE_PASSPHRASE: PASSPHRASE };
};

describe("OffsiteUploader", () => {
    it("runs the pinned restic image with the uploader script, uploading every rpoSeconds/2 to the stack's repository", async () => {
        await build(preprodConfig(withOffsite({ pathStyle: true })));
        const c = container("vps-stack-preprod-offsite");
        expect(byName("vps-stack-offsite-image").inputs.name).toBe("restic/restic:0.17.3");
        expect(c.entrypoints).toEqual([OFFSITE_SCRIPT]);
        expect(c.command).toEqual(["schedule"]);
        expect(upload(c, OFFSITE_SCRIPT)).toMatchObject({ content: offsiteScript(), permissions: "0555" });
        expect(c.envs).toEqual(
            expect.arrayContaining([
                "RESTIC_REPOSITORY=s3:https://s3.fr-par.scw.cloud/acme-backups/vps-stack/preprod",
                `RESTIC_PASSWORD_FILE=${RESTIC_PASSWORD_FILE}`,
                `AWS_SHARED_CREDENTIALS_FILE=${AWS_CREDENTIALS_FILE}`,
                "AWS_DEFAULT_REGION=fr-par",
                "S3_PATH_STYLE=1",
                `BACKUP_DIR=${BACKUP_MOUNT}`,
                "OFFSITE_HOST=preprod",
                "UPLOAD_INTERVAL=20",
            ]),
        );
        expect(c.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-offsite-sbin-files-[0-9a-f]{12}$/), containerPath: "/usr/local/sbin", readOnly: true },
            { volumeName: expect.stringMatching(/^vps-stack-preprod-offsite-secrets-files-[0-9a-f]{12}$/), containerPath: "/run/secrets", readOnly: true },
            { hostPath: "/var/backups/vps-stack/preprod", containerPath: BACKUP_MOUNT },
            // restic's cache and temporary packs, on disk, gone with the container (a read-only root).
            { containerPath: "/var/cache/restic" },
            { containerPath: "/var/tmp" },
        ]);
        expect(c.readOnly).toBe(true);
        expect(c.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "256" });
        expect(c.healthcheck.tests).toEqual(["CMD", OFFSITE_SCRIPT, "check"]);
        expect(c.restart).toBe("unless-stopped");
    });

    it("keeps the passphrase and the secret key in 0400 secret files, never in its environment", async () => {
        await build(preprodConfig(withOffsite()));
        const c = container("vps-stack-preprod-offsite");
        expect(upload(c, RESTIC_PASSWORD_FILE)).toMatchObject({ content: PASSPHRASE, permissions: "0400" });
        expect(upload(c, AWS_CREDENTIALS_FILE)).toMatchObject({ content: awsCredentials("SCWKEYID123", SECRET_KEY), permissions: "0400" });
        const env = c.envs.join("\n");
        expect(env).not.toContain(SECRET_KEY);
        expect(env).not.toContain(PASSPHRASE);
        const secretness = await Promise.all([RESTIC_PASSWORD_FILE, AWS_CREDENTIALS_FILE].map((file) => uploadIsSecret("vps-stack-offsite", file)));
        expect(secretness).toEqual([true, true]);
    });

    it("is on a network of its own with a way out, never on the data network", async () => {
        await build(preprodConfig(withOffsite()));
        const c = container("vps-stack-preprod-offsite");
        expect(c.networksAdvanced).toEqual([{ name: "vps-stack-preprod-offsite" }]);
        const net = ofType(NETWORK).find((n) => n.inputs.name === "vps-stack-preprod-offsite")!;
        expect(net.inputs.internal ?? false).toBe(false);
        expect(c.ports ?? []).toEqual([]);
    });

    it("makes the backup job keep what is not off-site yet and watch the uploads", async () => {
        await build(preprodConfig(withOffsite()));
        expect(container("vps-stack-preprod-backup").envs).toEqual(expect.arrayContaining(["OFFSITE=1", "OFFSITE_MAX_AGE=600"]));
    });

    it("does not exist without backup.offsite, and the backup job does not wait for it", async () => {
        await build(preprodConfig());
        expect(ofType("docker:index/container:Container").find((c) => c.inputs.name === "vps-stack-preprod-offsite")).toBeUndefined();
        expect(container("vps-stack-preprod-backup").envs.join(" ")).not.toContain("OFFSITE");
    });

    it("warns on prod when the backups are local only, and only there", async () => {
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const prod = (extra: (c: any) => void = () => {}) => {
                const raw: any = { host: { address: "203.0.113.10", hostKey: KEY }, domain: "app.example.com", apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0" }] };
                extra(raw);
                return loadConfig(raw, "prod");
            };
            await build(prod());
            expect(warn.mock.calls.map((c) => c[0])).toContainEqual(expect.stringContaining("backups are local only"));
            warn.mockClear();
            resetCaptured();
            await build(prod(withOffsite()));
            await build(preprodConfig());
            expect(warn.mock.calls.map((c) => c[0]).filter((m) => m.includes("local only"))).toEqual([]);
        } finally {
            warn.mockRestore();
        }
    });

    it("gives the operator's commands", () => {
        expect(offsiteCommands("vps-stack-prod-offsite", { address: "203.0.113.10", port: 22, user: "deploy" }).now).toBe(
            "ssh -p 22 deploy@203.0.113.10 docker exec vps-stack-prod-offsite vps-stack-offsite upload",
        );
    });
});

describe("backup.offsite config", () => {
    const load = (extra: (c: any) => void) => () => preprodConfig(extra);

    it("refuses a plain-http endpoint unless told the path is private, with the https fix", () => {
        expect(load(withOffsite({ endpoint: "http://10.0.0.5:8333" }))).toThrow(/vps-stack:backup\.offsite\.endpoint .*plain http.*pulumi config set --path 'backup\.offsite\.endpoint' https:\/\/10\.0\.0\.5:8333/s);
        expect(load(withOffsite({ endpoint: "http://10.0.0.5:8333", insecureHttp: true }))).not.toThrow();
    });

    it("needs the secret key and the passphrase as secret config, naming both at once", () => {
        const noSecrets = (c: any) => {
            withOffsite()(c);
            delete c.secrets.OFFSITE_SECRET_ACCESS_KEY;
            delete c.secrets.OFFSITE_PASSPHRASE;
        };
        expect(load(noSecrets)).toThrow(/secrets\.OFFSITE_SECRET_ACCESS_KEY.*pulumi config set --secret.*secrets\.OFFSITE_PASSPHRASE.*pulumi config set --secret/s);
    });

    it("refuses a passphrase that is short or spans lines, and a secret key with spaces around it", () => {
        const secrets = (v: Record<string, string>) => (c: any) => (withOffsite()(c), Object.assign(c.secrets, v));
        expect(load(secrets({ OFFSITE_PASSPHRASE: "short" }))).toThrow(/secrets\.OFFSITE_PASSPHRASE .*shorter than 16/);
        expect(load(secrets({ OFFSITE_PASSPHRASE: "a passphrase long enough\nand a second line" }))).toThrow(/secrets\.OFFSITE_PASSPHRASE .*one line/);
        expect(load(secrets({ OFFSITE_SECRET_ACCESS_KEY: " key-with-a-space " }))).toThrow(/secrets\.OFFSITE_SECRET_ACCESS_KEY .*one line/);
    });

    it.each([
        [{ endpoint: "s3.amazonaws.com" }, "backup.offsite.endpoint"],
        [{ endpoint: "https://s3.example.com/path?x=1" }, "backup.offsite.endpoint"],
        [{ endpoint: "https://user:pw@s3.example.com" }, "backup.offsite.endpoint"],
        [{ bucket: "Acme_Backups" }, "backup.offsite.bucket"],
        [{ prefix: "../etc" }, "backup.offsite.prefix"],
        [{ prefix: "a b" }, "backup.offsite.prefix"],
        [{ accessKeyId: "key\nwith newline" }, "backup.offsite.accessKeyId"],
    ])("refuses %j at %s", (offsite, key) => {
        expect(load(withOffsite(offsite))).toThrow(`vps-stack:${key} `);
    });

    it("refuses an off-site copy without PITR, and an RPO under 10 s", () => {
        expect(load((c) => (withOffsite()(c), (c.backup.pitr = { enabled: false })))).toThrow("vps-stack:backup.pitr.enabled ");
        expect(load((c) => (withOffsite()(c), (c.backup.rpoSeconds = 5)))).toThrow("vps-stack:backup.rpoSeconds ");
    });

    it("builds restic's repository from endpoint, bucket and prefix", () => {
        expect(resticRepository({ endpoint: "https://s3.example.com:9000/", bucket: "b-1", prefix: "vps-stack/prod" })).toBe("s3:https://s3.example.com:9000/b-1/vps-stack/prod");
    });
});
