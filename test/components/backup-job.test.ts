// BackupJob under Pulumi mocks: the container, its inputs and its 0400 pgpass file; the operator's commands.
import { VpsStack } from "../../components/vps-stack";
import { loadConfig } from "../../config";
import { BACKUP_MOUNT, BACKUP_PGPASS_FILE, BACKUP_SCRIPT, backupCommands, backupScript, pgpassLine } from "../../render/backup";
import { CONTAINER, isWrappedSecret, ofType, resetRecorded, settled, setupMocks, tempStateDir } from "../mocks";
import { filesCommand, KEY, upload } from "./helpers";

describe("BackupJob", () => {
    beforeEach(() => resetRecorded());

    async function backupContainer(raw: any, stack = "prod") {
        setupMocks(stack);
        new VpsStack("vps-stack", loadConfig(raw, stack), { stateDir: tempStateDir() });
        await settled();
        return ofType(CONTAINER).find((c) => c.inputs.name === `vps-stack-${stack}-backup`);
    }

    const prod = (backup: any = {}) => ({
        host: { address: "203.0.113.10", hostKey: KEY },
        domain: "app.example.com",
        apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0" }],
        backup,
    });

    it("runs the server's own image with the scheduler, on the data network, writing to the host directory", async () => {
        const c = (await backupContainer(prod()))!;
        const pg = ofType(CONTAINER).find((x) => x.inputs.name === "vps-stack-prod-postgres")!;
        expect(c.inputs.image).toBe(pg.inputs.image);
        expect(c.inputs.entrypoints).toEqual([BACKUP_SCRIPT]);
        expect(c.inputs.command).toEqual(["schedule"]);
        expect(c.inputs.networksAdvanced).toEqual([{ name: "vps-stack-prod-data" }]);
        // The script and the password file in read-only volumes of their own; a read-only root.
        expect(c.inputs.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-prod-backup-sbin-files-[0-9a-f]{12}$/), containerPath: "/usr/local/sbin", readOnly: true },
            { volumeName: expect.stringMatching(/^vps-stack-prod-backup-secrets-files-[0-9a-f]{12}$/), containerPath: "/run/secrets", readOnly: true },
            { hostPath: "/var/backups/vps-stack/prod", containerPath: BACKUP_MOUNT },
        ]);
        expect(c.inputs.readOnly).toBe(true);
        expect(upload(c.inputs, BACKUP_SCRIPT)).toMatchObject({ content: backupScript(), permissions: "0555" });
        expect(c.inputs.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "256" });
        expect(c.inputs.restart).toBe("unless-stopped");
        expect(c.inputs.healthcheck.tests).toEqual(["CMD", BACKUP_SCRIPT, "check"]);
    });

    it("passes schedule, time zone, retention and max age; the password only through a 0400 pgpass file", async () => {
        const c = (await backupContainer(prod({ schedule: "30 3 * * *", timezone: "Europe/Paris", retention: { daily: 30, weekly: 12, monthly: 12 }, maxAgeHours: 30 })))!;
        expect(c.inputs.envs).toEqual(
            expect.arrayContaining([
                "BACKUP_SCHEDULE=30 3 * * *",
                "VERIFY_SCHEDULE=0 4 * * 0",
                "TZ=Europe/Paris",
                "KEEP_DAILY=30",
                "KEEP_WEEKLY=12",
                "KEEP_MONTHLY=12",
                "MAX_AGE_HOURS=30",
                "PGHOST=postgres",
                "PGDATABASE=app",
                `PGPASSFILE=${BACKUP_PGPASS_FILE}`,
                "BACKUP_PREFIX=prod-app",
            ]),
        );
        const pgpass = upload(c.inputs, BACKUP_PGPASS_FILE);
        expect(pgpass.permissions).toBe("0400");
        // The app's role for dumps, the replication role for base backups.
        expect(pgpass.content).toMatch(/^postgres:5432:\*:app:[A-Za-z0-9]{32}\npostgres:5432:\*:vps_stack_wal:[A-Za-z0-9]{32}\n$/);
        for (const line of pgpass.content.trim().split("\n")) expect(c.inputs.envs.join(" ")).not.toContain(line.split(":")[4]);
        expect(isWrappedSecret(filesCommand(c.inputs, "/run/secrets").raw.stdin)).toBe(true);
        const scriptUpload = upload(c.inputs, BACKUP_SCRIPT);
        expect(scriptUpload.permissions).toBe("0555");
        expect(scriptUpload.content).toBe(backupScript());
    });

    it("with pitr (the default): base backups on their schedule, the PITR window and the replication role", async () => {
        const c = (await backupContainer(prod({ timezone: "Europe/Paris", pitr: { baseSchedule: "15 0 * * *", days: 3, baseMaxAgeHours: 30 } })))!;
        expect(c.inputs.envs).toEqual(expect.arrayContaining(["BASE_SCHEDULE=15 0 * * *", "PITR_DAYS=3", "BASE_MAX_AGE_HOURS=30", "WAL_USER=vps_stack_wal", "WAL_SLOT=vps_stack_wal"]));
    });

    it("runs a WAL receiver beside it: same image, script and pgpass, data network only, healthy while its slot streams", async () => {
        const c = (await backupContainer(prod()))!;
        const wal = ofType(CONTAINER).find((x) => x.inputs.name === "vps-stack-prod-wal")!;
        expect(wal.inputs.image).toBe(c.inputs.image);
        expect(wal.inputs.entrypoints).toEqual([BACKUP_SCRIPT]);
        expect(wal.inputs.command).toEqual(["receive-wal"]);
        expect(wal.inputs.envs).toEqual(["PGHOST=postgres", "PGPORT=5432", `PGPASSFILE=${BACKUP_PGPASS_FILE}`, `BACKUP_DIR=${BACKUP_MOUNT}`, "WAL_USER=vps_stack_wal", "WAL_SLOT=vps_stack_wal"]);
        expect(wal.inputs.readOnly).toBe(true);
        expect(wal.inputs.volumes).toEqual(c.inputs.volumes);
        expect(wal.inputs.networksAdvanced).toEqual([{ name: "vps-stack-prod-data" }]);
        expect(wal.inputs.ports ?? []).toEqual([]);
        expect(wal.inputs.restart).toBe("unless-stopped");
        expect(wal.inputs.healthcheck.tests).toEqual(["CMD", BACKUP_SCRIPT, "wal-check"]);
    });

    it("without pitr: no WAL receiver, no replication role, the server's command and pg_hba as before", async () => {
        const c = (await backupContainer(prod({ pitr: { enabled: false } })))!;
        expect(ofType(CONTAINER).find((x) => x.inputs.name === "vps-stack-prod-wal")).toBeUndefined();
        expect(c.inputs.envs.join(" ")).not.toMatch(/BASE_SCHEDULE|WAL_USER/);
        expect(upload(c.inputs, BACKUP_PGPASS_FILE).content).not.toContain("vps_stack_wal");
        const pg = ofType(CONTAINER).find((x) => x.inputs.name === "vps-stack-prod-postgres")!;
        expect(pg.inputs.command.join(" ")).not.toMatch(/hba_file|max_slot_wal_keep_size/);
    });

    it("is absent when backups are disabled", async () => {
        expect(await backupContainer(prod({ enabled: false }))).toBeUndefined();
    });

    it("escapes pgpass fields", () => {
        expect(pgpassLine({ host: "postgres", port: 5432, user: "app", password: "a:b\\c" })).toBe("postgres:5432:*:app:a\\:b\\\\c\n");
    });

    it("gives the operator's commands, over SSH for a VPS and local for dev", () => {
        const remote = backupCommands("vps-stack-prod-backup", { address: "203.0.113.10", port: 2222, user: "deploy" });
        expect(remote.now).toBe("ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-prod-backup vps-stack-backup run");
        expect(remote.restore).toBe("ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-prod-backup vps-stack-backup restore latest --confirm");
        expect(backupCommands("vps-stack-dev-backup").check).toBe("docker exec vps-stack-dev-backup vps-stack-backup check");
    });
});
