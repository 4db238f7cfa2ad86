// Pure renderers for the data services and the SSH transport: redis.conf, PostgreSQL init SQL and server
// arguments, connection strings, known_hosts and ssh options. No Pulumi types. SQL text takes names and
// values only through the SQL sink.
import { shellCommand } from "../sinks/shell";
import { sqlIdentifier, sqlLiteral } from "../sinks/sql";

export interface RedisSettings {
    password: string;
    maxmemory: string;
    maxmemoryPolicy: string;
    appendonly: boolean;
    appendfsync: string;
    /** @default "/data" (the official image's data directory) */
    dataDir?: string;
}

/** redis.conf with the password inside, so it never shows in argv or `docker inspect`. */
export function renderRedisConf(s: RedisSettings): string {
    if (!/^[A-Za-z0-9_\-.]+$/.test(s.password)) {
        // A quote or space would silently change the meaning of the line.
        throw new Error("renderRedisConf: the password must be alphanumeric (generated passwords are)");
    }
    return [
        "# Rendered by vps-stack.",
        "bind 0.0.0.0",
        "port 6379",
        "protected-mode yes",
        `requirepass ${s.password}`,
        `dir ${s.dataDir ?? "/data"}`,
        `appendonly ${s.appendonly ? "yes" : "no"}`,
        `appendfsync ${s.appendfsync}`,
        // RDB snapshots as well as the AOF: a snapshot restores fast, the AOF loses at most a second of writes.
        "save 900 1 300 10 60 10000",
        `maxmemory ${s.maxmemory}`,
        `maxmemory-policy ${s.maxmemoryPolicy}`,
        "tcp-keepalive 60",
        "",
    ].join("\n");
}

/** The healthcheck: the password goes from the config file into REDISCLI_AUTH, never into argv. */
export function redisHealthCommand(confFile: string, port: number): string {
    return `REDISCLI_AUTH="$(sed -n 's/^requirepass //p' ${confFile})" redis-cli -p ${port} ping | grep -q PONG`;
}

/** The configured extensions, idempotent: run after every replacement of the server and every change of the list. */
export function renderExtensionsSql(extensions: string[]): string {
    return [
        ...extensions.map((e) => `CREATE EXTENSION IF NOT EXISTS ${sqlIdentifier(e)};`),
        "",
    ].join("\n");
}

export interface PostgresTuning {
    maxConnections: number;
    sharedBuffers: string;
    effectiveCacheSize: string;
    /** With continuous WAL archiving: the cap on WAL kept for the receiver's slot, and our pg_hba file. */
    wal?: { maxSlotWalKeepSize: string; hbaFile: string };
}

/** The replication role and slot of the WAL receiver (backup.pitr). */
export const WAL_ROLE = "vps_stack_wal";
export const WAL_SLOT = "vps_stack_wal";

/**
 * pg_hba.conf for a server whose WAL is streamed: the official image's rules (initdb's local trust, then
 * password for every remote connection), plus replication for the WAL role only, which the image's
 * `host all all all` line does not cover ("all" never matches a replication connection). A file of its
 * own, named on the command line, so it applies to existing data directories as well as new ones.
 */
export function renderPgHba(walRole: string): string {
    // pg_hba has its own quoting; a plain lower-case name needs none.
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(walRole)) throw new Error(`renderPgHba: the role must be a plain lower-case identifier, not ${JSON.stringify(walRole)}`);
    return [
        "# Rendered by vps-stack (hba_file on the server's command line); the data directory's pg_hba.conf is not read.",
        "local   all          all                     trust",
        "host    all          all      127.0.0.1/32   trust",
        "host    all          all      ::1/128        trust",
        "local   replication  all                     trust",
        `host    replication  ${walRole}  all  scram-sha-256`,
        "host    all          all      all            scram-sha-256",
        "",
    ].join("\n");
}

/** The WAL receiver's role: created when missing, its password set on every run (it rotates with postgres's). */
export function renderWalRoleSql(role: string, password: string): string {
    return [
        `SELECT 'CREATE ROLE ' || quote_ident(${sqlLiteral(role)}) || ' WITH LOGIN REPLICATION' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${sqlLiteral(role)}) \\gexec`,
        `ALTER ROLE ${sqlIdentifier(role)} WITH LOGIN REPLICATION PASSWORD ${sqlLiteral(password)};`,
        "",
    ].join("\n");
}

/** pg_isready as CMD-SHELL text; the words go through the shell sink, which leaves validated identifiers as they are. */
export function postgresHealthCommand(port: number, user: string, database: string): string {
    return shellCommand(["pg_isready", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", database]);
}

/** Server arguments; passed on every start, so a change takes effect on the next `pulumi up`. */
export function postgresCommand(t: PostgresTuning): string[] {
    return [
        "postgres",
        "-c", `max_connections=${t.maxConnections}`,
        "-c", `shared_buffers=${t.sharedBuffers}`,
        "-c", `effective_cache_size=${t.effectiveCacheSize}`,
        "-c", "password_encryption=scram-sha-256",
        ...(t.wal ? ["-c", `max_slot_wal_keep_size=${t.wal.maxSlotWalKeepSize}`, "-c", `hba_file=${t.wal.hbaFile}`] : []),
    ];
}

export function postgresUrl(p: { user: string; password: string; host: string; port: number; database: string }): string {
    return `postgresql://${encodeURIComponent(p.user)}:${encodeURIComponent(p.password)}@${p.host}:${p.port}/${encodeURIComponent(p.database)}`;
}

export function redisUrl(p: { password: string; host: string; port: number }): string {
    return `redis://default:${encodeURIComponent(p.password)}@${p.host}:${p.port}/0`;
}

/** psql in the database's container, reading SQL from stdin (never from argv). */
export function psqlCommand(container: string, user: string, database: string): string {
    return shellCommand(["docker", "exec", "-i", container, "psql", "-v", "ON_ERROR_STOP=1", "-q", "-U", user, "-d", database]);
}

/** SQL that sets the role's password; sent on stdin so it never appears in argv. */
export function renderPasswordSql(user: string, password: string): string {
    return `ALTER ROLE ${sqlIdentifier(user)} WITH PASSWORD ${sqlLiteral(password)};\n`;
}

/** One known_hosts line for the pinned key; ssh writes non-22 ports as [host]:port. */
export function knownHostsLine(address: string, port: number, hostKey: string): string {
    const name = port === 22 ? address : `[${address}]:${port}`;
    return `${name} ${hostKey.trim()}\n`;
}

export interface SshOptionsArgs {
    knownHostsFile: string;
    controlDir: string;
    controlPersist: string;
    privateKeyPath?: string;
}

/**
 * Options for every ssh the Docker provider starts. The host key is checked against the pinned file only;
 * one master connection is shared because the provider opens many and sshd's MaxStartups drops bursts.
 */
export function sshOptions(a: SshOptionsArgs): string[] {
    const opts = [
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${a.knownHostsFile}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ControlMaster=auto",
        // %C is a hash of host, port and user: short enough for the 108-byte socket path limit.
        "-o", `ControlPath=${a.controlDir}/%C`,
        "-o", `ControlPersist=${a.controlPersist}`,
        "-o", "ServerAliveInterval=15",
        "-o", "ConnectTimeout=20",
    ];
    if (a.privateKeyPath) opts.push("-o", "IdentitiesOnly=yes", "-i", a.privateKeyPath);
    return opts;
}
