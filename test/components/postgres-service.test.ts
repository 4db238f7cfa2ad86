// PostgresService under Pulumi mocks: image, network, the 0400 password file, init, healthcheck, limits, replacement.
import * as pulumi from "@pulumi/pulumi";
import { POSTGRES_HBA_FILE, POSTGRES_PASSWORD_FILE, POSTGRES_WAL_PASSWORD_FILE } from "../../components/postgres-service";
import { BACKUP_PGPASS_FILE } from "../../render/backup";
import { loadConfig } from "../../config";
import { LOG_OPTS } from "../../plan/container-defaults";
import { byName, generatedSecrets, ofType, REMOTE_COMMAND, resetRecorded, VOLUME } from "../mocks";
import { build, byTypeName, container, KEY, preprodConfig, rawProps, resetCaptured, upload, uploadIsSecret } from "./helpers";

beforeEach(resetCaptured);

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

    it("creates the extensions (on every replacement, so a new one reaches an existing database) and tunes the server", async () => {
        await build(preprodConfig((c) => (c.postgres = { extensions: ["uuid-ossp", "pgcrypto", "vector"], maxConnections: 150 })));
        const pg = container("vps-stack-preprod-postgres");
        const sql = byName("vps-stack-postgres-password").inputs.stdin;
        expect(sql).toContain('CREATE EXTENSION IF NOT EXISTS "uuid-ossp";');
        expect(sql).toContain('CREATE EXTENSION IF NOT EXISTS "pgcrypto";');
        expect(sql).toContain('CREATE EXTENSION IF NOT EXISTS "vector";');
        // Nothing for the entrypoint's first-start directory: the root is read-only.
        expect(pg.volumes.map((v: any) => v.containerPath)).not.toContain("/docker-entrypoint-initdb.d");
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
        expect(pg.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-postgres-files-[0-9a-f]{12}$/), containerPath: "/run/secrets", readOnly: true },
            { volumeName: "vps-stack-preprod-postgres-data", containerPath: "/var/lib/postgresql/data" },
        ]);
        // A read-only root: it writes its data volume, and its socket directory on a tmpfs.
        expect(pg.readOnly).toBe(true);
        expect(pg.tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,size=64m", "/run/postgresql": "rw,noexec,nosuid,size=1m" });
        expect(pg.uploads).toBeUndefined();
        // The entrypoint starts as root (to own the volume and the socket directory), then runs as postgres.
        expect(pg.user).toBeUndefined();
        expect(pg.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "512" });
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-postgres-pids").inputs.create).toBe("docker update --pids-limit 512 vps-stack-preprod-postgres >/dev/null");
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

    it("with pitr: lets the WAL role replicate, caps the slot's WAL, and creates the role with its own generated password", async () => {
        await build(preprodConfig((c) => (c.postgres = { maxSlotWalKeepSize: "5GB" })));
        const pg = container("vps-stack-preprod-postgres");
        expect(pg.command).toEqual(expect.arrayContaining(["max_slot_wal_keep_size=5GB", `hba_file=${POSTGRES_HBA_FILE}`]));
        const hba = upload(pg, POSTGRES_HBA_FILE);
        expect(hba.permissions).toBe("0444");
        const rules = hba.content.split("\n").filter((l: string) => l && !l.startsWith("#")).map((l: string) => l.split(/\s+/).join(" "));
        // Replication from the network for the WAL role only, by password; the rest as the official image has it.
        expect(rules.filter((r: string) => r.startsWith("host replication"))).toEqual(["host replication vps_stack_wal all scram-sha-256"]);
        expect(rules[rules.length - 1]).toBe("host all all all scram-sha-256");
        const cmd = byName("vps-stack-postgres-password").inputs;
        const walPassword = upload(container("vps-stack-preprod-backup"), BACKUP_PGPASS_FILE).content.split("\n")[1].split(":")[4];
        expect(generatedSecrets.has(walPassword)).toBe(true);
        expect(walPassword).not.toBe(upload(pg, POSTGRES_PASSWORD_FILE).content);
        expect(cmd.stdin).toContain("WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vps_stack_wal') \\gexec");
        expect(cmd.stdin).toContain(`ALTER ROLE "vps_stack_wal" WITH LOGIN REPLICATION PASSWORD '${walPassword}';`);
        expect(cmd.create).not.toContain(walPassword);
        // Beside the owner's, as a 0400 secret file: a point-in-time restore sets both again from them.
        expect(upload(pg, POSTGRES_WAL_PASSWORD_FILE)).toMatchObject({ content: walPassword, permissions: "0400" });
        expect(await uploadIsSecret("vps-stack-postgres", POSTGRES_WAL_PASSWORD_FILE)).toBe(true);
    });
});
