// The nginx.conf the program renders for each committed stack passes a real `nginx -t` (Debian's nginx),
// with certificates from a test CA. The app host names resolve through a private /etc/hosts bound in a
// mount namespace, so the exact upstream names of the config are checked.
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../config";
import { renderNginxConf, renderNginxSiteFile } from "../../render/nginx";
import { nginxSite } from "../../plan/proxy";
import { stackConfig, withRequiredSecrets } from "../mocks";
import { makeCa, sh, tempDir, tool } from "./tools";

function nginxTest(conf: string, dir: string, upstreamHosts: string[]) {
    const nginx = tool("nginx", "nginx");
    const hosts = path.join(dir, "hosts");
    fs.writeFileSync(hosts, `127.0.0.1 localhost\n${upstreamHosts.map((h) => `127.0.0.1 ${h}`).join("\n")}\n`);
    const confFile = path.join(dir, "nginx.conf");
    fs.writeFileSync(confFile, conf);
    return sh(tool("unshare", "util-linux"), ["--mount", "sh", "-c", 'mount --bind "$1" /etc/hosts && exec "$2" -t -p "$3" -c "$4" -e stderr', "sh", hosts, nginx, dir, confFile]);
}

function render(stack: string, dir: string) {
    const cfg = loadConfig(withRequiredSecrets(stackConfig(stack)), stack);
    const ca = makeCa(dir, [...new Set(cfg.apps.flatMap((a) => a.hosts))]);
    const site = nginxSite(cfg);
    const conf = renderNginxConf({
        ...site,
        certificatePath: ca.cert,
        keyPath: ca.key,
        ...(cfg.tls.mode === "acme" ? { acmeWebroot: dir } : {}),
        runtime: { pid: path.join(dir, "nginx.pid"), errorLog: path.join(dir, "error.log"), accessLog: path.join(dir, "access.log") },
    });
    return { conf, upstreams: cfg.apps.map((a) => a.name) };
}

describe.each(["dev", "preprod", "prod"])("nginx -t on the %s stack's config", (stack) => {
    it("passes", () => {
        const dir = tempDir(`nginx-${stack}`);
        const { conf, upstreams } = render(stack, dir);
        const r = nginxTest(conf, dir, upstreams);
        expect(r.stderr).toContain("test is successful");
        expect(r.code).toBe(0);
    });
});

describe("nginx -t is a real judge", () => {
    it("fails when an upstream name does not resolve", () => {
        const dir = tempDir("nginx-unresolved");
        const { conf } = render("preprod", dir);
        const r = nginxTest(conf, dir, []);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/host not found in upstream "api:8000"/);
    });

    it("fails on a broken config", () => {
        const dir = tempDir("nginx-broken");
        const { conf, upstreams } = render("preprod", dir);
        const r = nginxTest(conf.replace("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.2 TLSv1.3"), dir, upstreams);
        expect(r.code).not.toBe(0);
    });
});

// Every combination the config can produce, through the same path as `pulumi up` (loadConfig, then
// nginxSite, then the renderer of the mode), judged by nginx -t: the proxy container's nginx.conf, and
// the host's nginx with the site files of TWO stacks side by side (a shared nginx must take both).
describe("nginx -t on every mode and option combination", () => {
    const routings: Record<string, (raw: any) => void> = {
        "one app": () => undefined,
        "path routing (/api → api, / → web)": (raw) => {
            raw.apps[0].paths = ["/api"];
            raw.apps[0].healthPath = "/api/health";
            raw.apps.push({ name: "web", image: "ghcr.io/acme/web:2.0.0", port: 3000, paths: ["/"], database: false, redis: false, secrets: {} });
        },
        "host routing with a static site (api.<domain> → api, <domain> → SPA)": (raw) => {
            raw.apps[0].hosts = [`api.${raw.domain}`];
            raw.apps.push({ name: "site", kind: "static", image: "ghcr.io/acme/site:1.0.0", hosts: [raw.domain, `www.${raw.domain}`] });
        },
    };
    const options: Record<string, (raw: any) => void> = {
        defaults: () => undefined,
        "every proxy option changed": (raw) => {
            raw.nginx = {
                ...raw.nginx,
                clientMaxBodySize: "1M",
                rateLimit: { enabled: false },
                timeouts: { connect: "5s", send: "300s", read: "300s" },
                hsts: { maxAge: 63072000, includeSubDomains: false, preload: true },
                keepalive: 0,
            };
            raw.apps[0].replicas = 3;
            raw.apps[0].proxy = {
                clientMaxBodySize: "250M",
                rateLimit: { enabled: true, rate: "30r/m", burst: 5 },
                timeouts: { read: "1h" },
                headers: { "Content-Security-Policy": "default-src 'self'; img-src 'self' data:", "X-Frame-Options": "", "Permissions-Policy": "camera=()" },
            };
        },
    };
    const tlsModes: Record<string, (raw: any) => void> = {
        "ca or provided": () => undefined,
        acme: (raw) => (raw.tls = { mode: "acme", acme: { email: "ops@example.com", staging: true } }),
    };

    function config(stack: string, mode: string, tls: string, routing: string, option: string) {
        const raw: any = withRequiredSecrets(stackConfig(stack));
        raw.apps = raw.apps.slice(0, 1);
        routings[routing](raw);
        options[option](raw);
        tlsModes[tls](raw);
        if (mode === "host") {
            raw.nginx = { ...raw.nginx, mode: "host" };
            raw.apps.forEach((a: any, i: number) => (a.hostPort = (stack === "prod" ? 18000 : 8000) + i * 10));
        }
        return loadConfig(raw, stack);
    }

    const cases = Object.keys(tlsModes).flatMap((tls) => Object.keys(routings).flatMap((routing) => Object.keys(options).map((option) => [tls, routing, option])));

    it.each(cases)("container mode, tls %s, %s, %s", (tls, routing, option) => {
        const dir = tempDir("nginx-matrix");
        const cfg = config("preprod", "container", tls, routing, option);
        const ca = makeCa(dir, [...new Set(cfg.apps.flatMap((a) => a.hosts))]);
        const conf = renderNginxConf({
            ...nginxSite(cfg),
            certificatePath: ca.cert,
            keyPath: ca.key,
            ...(tls === "acme" ? { acmeWebroot: dir } : {}),
            runtime: { pid: path.join(dir, "nginx.pid"), errorLog: path.join(dir, "error.log"), accessLog: path.join(dir, "access.log") },
        });
        const r = nginxTest(conf, dir, cfg.apps.map((a) => a.name));
        expect(r.stderr).toContain("test is successful");
        expect(r.code).toBe(0);
    });

    it.each(cases)("host mode, two stacks on one nginx, tls %s, %s, %s", (tls, routing, option) => {
        const dir = tempDir("nginx-matrix-host");
        const sites = ["preprod", "prod"].map((stack, i) => {
            const cfg = config(stack, "host", tls, routing, option);
            const sub = path.join(dir, stack);
            fs.mkdirSync(sub);
            const ca = makeCa(sub, [...new Set(cfg.apps.flatMap((a) => a.hosts))]);
            return renderNginxSiteFile({
                ...nginxSite(cfg),
                // Two stacks on one host listen on different public ports in this test only.
                listen: { http: 8080 + i, https: 8443 + i },
                certificatePath: ca.cert,
                keyPath: ca.key,
                namespace: `vps_stack_${stack}_`,
                ...(tls === "acme" ? { acmeWebroot: sub } : {}),
            });
        });
        // Debian's nginx.conf around the sites/enabled includes.
        const conf = [`pid ${path.join(dir, "nginx.pid")};`, `error_log ${path.join(dir, "error.log")};`, "events {}", "http {", "    include /etc/nginx/mime.types;", ...sites, "}", ""].join("\n");
        const r = nginxTest(conf, dir, []);
        expect(r.stderr).toContain("test is successful");
        expect(r.code).toBe(0);
    });
});
