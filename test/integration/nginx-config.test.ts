// The nginx.conf the program renders for each committed stack passes a real `nginx -t` (Debian's nginx),
// with certificates from a test CA. The app host names resolve through a private /etc/hosts bound in a
// mount namespace, so the exact upstream names of the config are checked.
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../components/config";
import { renderNginxConf } from "../../components/render/nginx";
import { nginxSite } from "../../components/vps-stack";
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
