// A throwaway PostgreSQL server for tests: Debian's binaries, a temporary data directory, a free port on
// 127.0.0.1, run as a non-root user (postgres when the tests run as root). Stopped and removed by stop().
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { freePort, sh, tempDir } from "./tools";

export function pgBinDir(): string {
    const root = "/usr/lib/postgresql";
    const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, "bin", "initdb"))) : [];
    if (versions.length === 0) throw new Error("PostgreSQL is not installed: apt-get install -y postgresql (or run bash .ci/install-tools.sh as root)");
    return path.join(root, versions.sort((a, b) => Number(b) - Number(a))[0], "bin");
}

export interface PgServer {
    port: number;
    dir: string;
    env: NodeJS.ProcessEnv;
    /** Runs SQL as the app user and returns psql's unaligned output. */
    sql(query: string, db?: string): string;
    stop(): void;
    start(): void;
}

const asRoot = process.getuid?.() === 0;

function asServerUser(cmd: string, args: string[]) {
    return asRoot ? execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { stdio: "pipe" }) : execFileSync(cmd, args, { stdio: "pipe" });
}

export async function startPostgres(password: string): Promise<PgServer> {
    const bin = pgBinDir();
    const dir = tempDir("pg");
    const data = path.join(dir, "data");
    const port = await freePort();
    if (asRoot) execFileSync("chown", ["postgres:postgres", dir]);
    fs.writeFileSync(path.join(dir, "superpw"), "init-only\n");
    if (asRoot) execFileSync("chown", ["postgres:postgres", path.join(dir, "superpw")]);
    asServerUser(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${path.join(dir, "superpw")}`, "-E", "UTF8", "--locale=C"]);
    const pgctl = (action: string) =>
        asServerUser(path.join(bin, "pg_ctl"), ["-D", data, "-w", "-l", path.join(dir, "server.log"), "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, action]);
    pgctl("start");
    // The official image's POSTGRES_USER is a superuser; so is ours.
    const admin = (q: string) => execFileSync(path.join(bin, "psql"), ["-h", dir, "-p", String(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", q]);
    admin(`CREATE ROLE app LOGIN SUPERUSER PASSWORD '${password}'`);
    admin("CREATE DATABASE app OWNER app");

    const pgpass = path.join(dir, "pgpass");
    fs.writeFileSync(pgpass, `127.0.0.1:${port}:*:app:${password}\n`, { mode: 0o600 });
    const env: NodeJS.ProcessEnv = {
        PATH: `${bin}:${process.env.PATH}`,
        PGHOST: "127.0.0.1",
        PGPORT: String(port),
        PGUSER: "app",
        PGDATABASE: "app",
        PGPASSFILE: pgpass,
    };
    return {
        port,
        dir,
        env,
        sql(query: string, db = "app") {
            const r = sh(path.join(bin, "psql"), ["-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", query], { env });
            if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
            return r.stdout.trim();
        },
        stop() {
            try {
                pgctl("stop");
            } catch {
                // already stopped
            }
        },
        start() {
            pgctl("start");
        },
    };
}
