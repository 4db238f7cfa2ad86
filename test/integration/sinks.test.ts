// The sinks against the real targets: a real nginx serves arbitrary values written by the nginx sink (as a
// `return` body and as a response header) and they come back byte for byte; a real PostgreSQL reads back
// arbitrary literals and identifiers written by the SQL sink.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import * as fc from "fast-check";
import { nginxString, nginxToken, nginxValueProblem } from "../../sinks/nginx";
import { sqlIdentifier, sqlLiteral } from "../../sinks/sql";
import { PgServer, startPostgres } from "./postgres";
import { freePort, listening, sh, tempDir, tool } from "./tools";

const nasty = fc.oneof(
    fc.string({ unit: "binary", minLength: 1 }),
    fc.string({ unit: fc.constantFrom("'", '"', "\\", "(", ")", "`", ";", "{", "}", "#", " ", "*", "?", "~", "a", "é", "😀", ":", "%", "t", "n"), minLength: 1 }),
);

function get(port: number, p: string): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
        http.get({ host: "127.0.0.1", port, path: p }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), headers: res.headers }));
        }).on("error", reject);
    });
}

describe("nginx sink, through a real nginx", () => {
    let nginx: ChildProcess | undefined;
    let port: number;
    let dir: string;
    const bodies = fc.sample(nasty.filter((v) => !nginxValueProblem(v)), { numRuns: 300, seed: 12 });
    // Header values: HTTP allows visible ASCII and spaces, not leading or trailing ones.
    const headerValues = fc.sample(
        fc.string({ unit: fc.constantFrom(..."\"'\\;{}#() =,a/b".split("")), minLength: 1, maxLength: 40 }).map((s) => s.trim()).filter((s) => s !== ""),
        { numRuns: 100, seed: 12 },
    );

    beforeAll(async () => {
        dir = tempDir("sink-nginx");
        port = await freePort();
        fs.mkdirSync(path.join(dir, "logs"));
        fs.mkdirSync(path.join(dir, "a root; autoindex on"));
        fs.writeFileSync(path.join(dir, "a root; autoindex on", "index.html"), "root ok");
        // nginx's workers drop root: they must be able to read the site.
        fs.chmodSync(dir, 0o755);
        const conf = [
            "daemon off;",
            `pid ${nginxToken(path.join(dir, "nginx.pid"))};`,
            `error_log ${nginxToken(path.join(dir, "logs", "error.log"))};`,
            "events {}",
            "http {",
            "  access_log off;",
            "  default_type application/octet-stream;",
            "  server {",
            `    listen 127.0.0.1:${port};`,
            ...bodies.map((v, i) => `    location = /b/${i} { return 200 ${nginxString(v)}; }`),
            ...headerValues.map((v, i) => `    location = /h/${i} { add_header X-Value ${nginxString(v)} always; return 204; }`),
            `    location /root/ { alias ${nginxToken(path.join(dir, "a root; autoindex on") + "/")}; }`,
            "  }",
            "}",
        ].join("\n");
        const file = path.join(dir, "nginx.conf");
        fs.writeFileSync(file, conf);
        const t = sh(tool("nginx", "nginx"), ["-t", "-p", dir, "-c", file, "-e", "stderr"]);
        if (t.code !== 0) throw new Error(`nginx -t failed:\n${t.stderr}`);
        nginx = spawn(tool("nginx", "nginx"), ["-p", dir, "-c", file, "-e", "stderr"], { stdio: "ignore" });
        await listening(port);
    });

    afterAll(() => {
        nginx?.kill("SIGTERM");
    });

    it("returns every quoted body byte for byte (quotes, backslashes, braces, semicolons, unicode)", async () => {
        for (let i = 0; i < bodies.length; i++) {
            const r = await get(port, `/b/${i}`);
            expect([i, r.body.toString("utf8")]).toEqual([i, bodies[i]]);
        }
    });

    it("sends every quoted header value as given: a trailing backslash closes nothing", async () => {
        for (let i = 0; i < headerValues.length; i++) {
            const r = await get(port, `/h/${i}`);
            expect([i, r.headers["x-value"]]).toEqual([i, headerValues[i]]);
        }
    });

    it("serves a root whose path holds a space and a semicolon as a path, not as directives", async () => {
        const r = await get(port, "/root/index.html");
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe("root ok");
        expect((await get(port, "/root/")).body.toString()).toBe("root ok");
    });
});

describe("SQL sink, through a real PostgreSQL", () => {
    let pg: PgServer;
    beforeAll(async () => {
        pg = await startPostgres("sinkTestPassword0123456789abcdef");
    });
    afterAll(() => pg?.stop());

    it("reads back arbitrary literals and identifiers", () => {
        const values = fc.sample(nasty.filter((v) => !v.includes("\0")), { numRuns: 60, seed: 12 });
        for (const v of values) {
            expect(pg.sql(`SELECT encode(convert_to(${sqlLiteral(v)}, 'UTF8'), 'base64')`).replace(/\n/g, "")).toBe(Buffer.from(v).toString("base64"));
            if (Buffer.byteLength(v) <= 63) {
                const made = pg.sql(`CREATE TEMP TABLE t_sink (${sqlIdentifier(v)} int); SELECT encode(convert_to(attname::text, 'UTF8'), 'base64') FROM pg_attribute WHERE attrelid = 't_sink'::regclass AND attnum = 1; DROP TABLE t_sink;`);
                expect(made.replace(/\n/g, "")).toBe(Buffer.from(v).toString("base64"));
            }
        }
    });
});
