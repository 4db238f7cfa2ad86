// PostgreSQL on the stack's data network only: pinned image, named volume, password from a 0400 file,
// extensions created on every replacement, tuning on every start, a read-only root, pg_isready healthcheck, limits and log rotation.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { sizeToMiB, StackConfig } from "../config";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, healthcheck, labels, readOnlyRoot, tmpfsOptions } from "../plan/container-defaults";
import { containerFiles } from "./container-files";
import { limitPids } from "./pids-limit";
import { pullImage } from "./image";
import { postgresCommand, postgresHealthCommand, postgresUrl, psqlCommand, renderPasswordSql, renderExtensionsSql, renderPgHba, renderWalRoleSql } from "../render/services";
import { StackScope } from "./scope";

export const POSTGRES_SERVICE_TYPE = "vps-stack:index:PostgresService";

/** Network alias of the database on the data network. */
export const POSTGRES_ALIAS = "postgres";
export const POSTGRES_PORT = 5432;
/** The server's files volume (read-only): the passwords, and the pg_hba file with continuous archiving. */
export const POSTGRES_FILES_DIR = "/run/secrets";
export const POSTGRES_PASSWORD_FILE = `${POSTGRES_FILES_DIR}/postgres-password`;
export const POSTGRES_HBA_FILE = `${POSTGRES_FILES_DIR}/pg_hba.conf`;
/** The WAL role's password, beside the owner's: a point-in-time restore sets both again from these files. */
export const POSTGRES_WAL_PASSWORD_FILE = `${POSTGRES_FILES_DIR}/wal-password`;
/** The socket directory, which the entrypoint (as root) hands to the postgres user: a tmpfs. */
export const POSTGRES_SOCKET_DIR = "/run/postgresql";

/** Image, tuning, limits and volume protection are the config's postgres section, with its defaults. */
export interface PostgresServiceArgs extends StackScope, Omit<StackConfig["postgres"], "passwordLength"> {
    /** Name of the data network. */
    network: pulumi.Input<string>;
    password: pulumi.Input<string>;
    /** backup.pitr: the replication role the WAL receiver and base backups log in as. */
    wal?: { role: string; password: pulumi.Input<string> };
}

export class PostgresService extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly volumeName: string;
    readonly hostAlias = POSTGRES_ALIAS;
    readonly port = POSTGRES_PORT;
    readonly database: string;
    readonly user: string;
    readonly password: pulumi.Output<string>;
    readonly connectionString: pulumi.Output<string>;
    readonly container: docker.Container;
    /** The server's image: the backup job runs the same binaries. */
    readonly imageId: pulumi.Output<string>;

    constructor(name: string, args: PostgresServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super(POSTGRES_SERVICE_TYPE, name, {}, opts);
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-postgres`;
        this.volumeName = `${args.prefix}-postgres-data`;
        this.database = args.database;
        this.user = args.user;
        this.password = pulumi.secret(pulumi.output(args.password));

        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: false }, { parent: this, provider });
        this.imageId = image.imageId;
        const volume = new docker.Volume(
            `${name}-data`,
            { name: this.volumeName, labels: labels(args.stack, "postgres") },
            // protect makes `pulumi destroy` stop before the data goes; see "Destroying a stack" in docs/operations.md.
            { parent: this, provider, protect: args.protectVolume, retainOnDelete: args.protectVolume },
        );

        const base = (file: string) => file.slice(POSTGRES_FILES_DIR.length + 1);
        const files = containerFiles(
            args.host,
            `${name}-files`,
            {
                container: this.containerName,
                stack: args.stack,
                service: "postgres",
                image: image.imageId,
                dir: POSTGRES_FILES_DIR,
                files: [
                    // Read by the entrypoint while it is still root, before it drops to the postgres user.
                    { name: base(POSTGRES_PASSWORD_FILE), content: this.password, mode: 0o400 },
                    ...(args.wal
                        ? [
                              // Read by the server, as the postgres user.
                              { name: base(POSTGRES_HBA_FILE), content: renderPgHba(args.wal.role), mode: 0o444 },
                              { name: base(POSTGRES_WAL_PASSWORD_FILE), content: pulumi.secret(pulumi.output(args.wal.password)), mode: 0o400 },
                          ]
                        : []),
                ],
            },
            { parent: this },
        );
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "postgres", args),
                command: postgresCommand({ ...args, wal: args.wal ? { maxSlotWalKeepSize: args.maxSlotWalKeepSize, hbaFile: POSTGRES_HBA_FILE } : undefined }),
                envs: [`POSTGRES_DB=${args.database}`, `POSTGRES_USER=${args.user}`, `POSTGRES_PASSWORD_FILE=${POSTGRES_PASSWORD_FILE}`],
                // It writes its data volume and its socket directory, nothing else.
                ...readOnlyRoot({
                    tmpfs: { [POSTGRES_SOCKET_DIR]: tmpfsOptions("1m") },
                    volumes: [files.mount, { volumeName: volume.name, containerPath: "/var/lib/postgresql/data" }],
                }),
                networksAdvanced: [{ name: args.network, aliases: [POSTGRES_ALIAS] }],
                shmSize: Math.round(sizeToMiB(args.shmSize)),
                healthcheck: healthcheck({
                    // Kept as CMD-SHELL text: changing it would replace the database container.
                    tests: ["CMD-SHELL", postgresHealthCommand(POSTGRES_PORT, args.user, args.database)],
                    interval: "10s",
                    timeout: "5s",
                    retries: 5,
                    startPeriod: "30s",
                }),
                waitTimeout: 180,
                // Let PostgreSQL finish a clean shutdown checkpoint instead of being killed after 10s.
                stopTimeout: 60,
                stopSignal: "SIGINT",
            },
            // One server per data volume: the old container must be gone before the new one starts.
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [files.ready] },
        );
        limitPids(args.host, name, this.container, this.containerName, args.pidsLimit);

        // POSTGRES_PASSWORD only applies to an empty data directory; this keeps the role's password equal to
        // the generated one after a rotation (and creates the WAL role on an existing database), and creates the
        // configured extensions (a new one on an existing database too). The SQL goes on stdin, never in argv.
        const wal = args.wal;
        args.host.run(
            `${name}-password`,
            {
                create: psqlCommand(this.containerName, args.user, args.database),
                stdin: pulumi.secret(
                    pulumi
                        .all([this.password, wal?.password ?? ""])
                        .apply(([p, walPassword]) => renderPasswordSql(args.user, p) + (wal ? renderWalRoleSql(wal.role, walPassword) : "") + renderExtensionsSql(args.extensions)),
                ),
                triggers: [this.container.id],
            },
            { dependsOn: [this.container] },
        );

        this.connectionString = pulumi.secret(
            this.password.apply((password) =>
                postgresUrl({ user: args.user, password, host: POSTGRES_ALIAS, port: POSTGRES_PORT, database: args.database }),
            ),
        );
        this.registerOutputs({ containerName: this.containerName, connectionString: this.connectionString });
    }
}
