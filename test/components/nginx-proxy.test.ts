// NginxProxy under Pulumi mocks: the proxy container and its config command, per-app settings, provided certificates.
import * as pulumi from "@pulumi/pulumi";
import { loadConfig, StackConfig } from "../../config";
import { NGINX_CONF_FILE, PROXY_CONFIG_DIR, proxyScript, upstreamWatcher } from "../../render/proxy";
import { byName, CONTAINER, generatedSecrets, isWrappedSecret, ofType, recorded, REMOTE_COMMAND, REMOTE_IMAGE, VOLUME } from "../mocks";
import { build, byTypeName, container, expectSameResources, mockImageId, preprodConfig, proxyInstallArgs, rawProps, rel, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("per-app proxy settings", () => {
    it("reach the rendered proxy config", async () => {
        const stack = await build(
            preprodConfig((c) => (c.apps[0].proxy = { clientMaxBodySize: "5M", rateLimit: { rate: "2r/s" }, headers: { "Content-Security-Policy": "default-src 'self'" } })),
        );
        expect(stack.proxy!.config).toContain("limit_req_zone $binary_remote_addr zone=perip_api:10m rate=2r/s;");
        expect(stack.proxy!.config).toContain("limit_req_zone $binary_remote_addr zone=perip_web:10m rate=10r/s;");
        expect(stack.proxy!.config).toContain("client_max_body_size 5M;");
        expect(stack.proxy!.config).toContain(`add_header Content-Security-Policy "default-src 'self'" always;`);
    });
});

describe("NginxProxy", () => {
    it("is the only container publishing, on 80 and 443", async () => {
        await build(preprodConfig());
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.ports).toEqual([
            { internal: 80, external: 80, ip: "0.0.0.0", protocol: "tcp" },
            { internal: 443, external: 443, ip: "0.0.0.0", protocol: "tcp" },
        ]);
        expect(nginx.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge" }]);
    });

    it("publishes 8080/8443 on 127.0.0.1 on dev", async () => {
        await build(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"));
        expect(container("vps-stack-dev-nginx").ports).toEqual([
            { internal: 80, external: 8080, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 443, external: 8443, ip: "127.0.0.1", protocol: "tcp" },
        ]);
    });

    it("runs the live version of its config volume (read-only), with no uploads", async () => {
        await build(preprodConfig());
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.uploads ?? []).toEqual([]);
        expect(nginx.volumes).toEqual([{ containerPath: "/var/cache/nginx" }, { containerPath: "/var/lib/nginx" }, { volumeName: "vps-stack-preprod-nginx-config", containerPath: PROXY_CONFIG_DIR, readOnly: true }]);
        // Read-only root: the pid file in a tmpfs, temporary files in volumes of its own (above). Still root:
        // the master binds 80/443 and switches its workers to the nginx user.
        expect(nginx).toMatchObject({ readOnly: true, removeVolumes: true, tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m", "/var/run": "rw,noexec,nosuid,size=1m" } });
        expect(nginx.user).toBeUndefined();
        expect(nginx.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "256" });
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-nginx-pids").inputs.create).toBe("docker update --pids-limit 256 vps-stack-preprod-nginx >/dev/null");
        // nginx is the container's main process; beside it, the loop that reloads it when an upstream's
        // address changes (an app container started again by hand gets a new one).
        expect(nginx.command).toEqual(["sh", "-c", `(\n${upstreamWatcher()}\n) &\nexec nginx -c /etc/nginx/vps-stack/live/nginx.conf -g 'daemon off;'`]);
        expect(NGINX_CONF_FILE).toBe("/etc/nginx/vps-stack/live/nginx.conf");
        expect(byTypeName(VOLUME, "vps-stack-nginx-config-volume").inputs).toMatchObject({ name: "vps-stack-preprod-nginx-config" });
        // The stack pulls the proxy's image once (the apps' gates use it too); the proxy runs it by id.
        expect(byName("vps-stack-nginx-image").inputs).toMatchObject({ name: "nginx:1.27-alpine", keepLocally: true });
        expect(nginx.image).toBe(mockImageId("nginx:1.27-alpine"));
        expect(recorded.filter((r) => r.type === REMOTE_IMAGE && r.inputs.name === "nginx:1.27-alpine")).toHaveLength(1);
    });

    it("installs the config, certificate and key with a throwaway proxy container, then reloads the running proxy after nginx -t", async () => {
        const stack = await build(preprodConfig());
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(cmd.inputs.create).toBe(
            `docker run --rm -i --network vps-stack-preprod-edge -v vps-stack-preprod-nginx-config:/etc/nginx/vps-stack --entrypoint sh ${mockImageId("nginx:1.27-alpine")} -s` +
                ` && if [ "$(docker inspect -f '{{.State.Running}}' vps-stack-preprod-nginx 2>/dev/null)" = true ]; then` +
                " docker exec vps-stack-preprod-nginx nginx -c /etc/nginx/vps-stack/live/nginx.conf -t -q" +
                " && docker exec vps-stack-preprod-nginx nginx -c /etc/nginx/vps-stack/live/nginx.conf -s reload; fi",
        );
        // A `docker kill` would count as a manual stop and void the restart policy.
        expect(cmd.inputs.create).not.toContain("docker kill");
        const stdin: string = cmd.inputs.stdin;
        expect(stdin.startsWith(proxyScript())).toBe(true);
        const [dir, conf, cert, key] = proxyInstallArgs(stdin);
        expect(dir).toBe(PROXY_CONFIG_DIR);
        expect(conf).toBe(stack.proxy!.config);
        expect(conf).toContain("server_name app.example.com;");
        expect(conf).toContain(`server api-${rel(stack, "api")}:3001`);
        // Relative: resolved inside the version being tested or served (see vps-stack-proxy.sh).
        expect(conf).toContain("ssl_certificate     tls/server.crt;");
        expect(conf).toContain("ssl_certificate_key tls/server.key;");
        expect(cert).toContain("BEGIN CERTIFICATE");
        expect(generatedSecrets.has(key.trim())).toBe(true);
    });

    it("sends the proxy's key only in the config command's stdin, marked secret", async () => {
        await build(preprodConfig());
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        expect(isWrappedSecret(cmd.raw.create)).toBe(false);
        const key = proxyInstallArgs(cmd.inputs.stdin)[3];
        const b64 = Buffer.from(key).toString("base64");
        const carriers = recorded.flatMap((r) =>
            Object.entries(r.inputs)
                .filter(([, v]) => JSON.stringify(v ?? null).includes(b64) || JSON.stringify(v ?? null).includes(JSON.stringify(key).slice(1, -1)))
                .map(([k]) => `${r.type} ${r.name} ${k}`),
        );
        // The CSR is made from it; apart from that, only the config command carries it.
        expect(carriers.sort()).toEqual(["command:remote:Command vps-stack-nginx-config stdin", "tls:index/certRequest:CertRequest vps-stack-tls-server-csr privateKeyPem"]);
    });

    it("applies its config after every app's gate, and again when an app container changes; the container waits for it", async () => {
        const stack = await build(preprodConfig());
        const cfgCmd = rawProps.get(`${REMOTE_COMMAND}::vps-stack-nginx-config`)!;
        expectSameResources(cfgCmd.opts.dependsOn, [stack.apps.api.gate, stack.apps.web.gate]);
        expect(stack.apps.api.gate).toBeDefined();
        expect(stack.proxy!.configCommand).toBeDefined();
        expectSameResources(rawProps.get(`${CONTAINER}::vps-stack-nginx`)!.opts.dependsOn, [stack.proxy!.configCommand]);
        const [api, web] = [rel(stack, "api"), rel(stack, "web")];
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config").inputs.triggers).toEqual([
            `vps-stack-app-api-${api}-1-id`,
            `vps-stack-app-api-${api}-2-id`,
            `vps-stack-app-web-${web}-1-id`,
        ]);
        // No separate reload command any more: the config command reloads.
        expect(recorded.filter((r) => r.name === "vps-stack-nginx-reload")).toEqual([]);
        // Only a new image (or container settings) replaces the proxy: deleted first, it owns the ports.
        const opts = rawProps.get(`${CONTAINER}::vps-stack-nginx`)!.opts as pulumi.CustomResourceOptions;
        expect(opts.deleteBeforeReplace).toBe(true);
    });
});

describe("tls.mode provided", () => {
    // The chain and key are checked at config time (test/config/config.test.ts, and against openssl-made ones in
    // test/integration/tls-provided.test.ts); here, where they go once they passed.
    const CHAIN = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n";
    const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nPROVIDED\n-----END PRIVATE KEY-----\n";
    const provided = (cfg: StackConfig): StackConfig => ({ ...cfg, tls: { ...cfg.tls, mode: "provided" }, secrets: { ...cfg.secrets, TLS_CERTIFICATE: CHAIN, TLS_PRIVATE_KEY: KEY_PEM } });

    it("sends the chain and key in the proxy config command's secret stdin only, and makes no CA", async () => {
        const stack = await build(provided(preprodConfig()));
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.uploads ?? []).toEqual([]);
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        expect(proxyInstallArgs(cmd.inputs.stdin)).toEqual([PROXY_CONFIG_DIR, stack.proxy!.config, CHAIN, KEY_PEM]);
        const b64 = Buffer.from(KEY_PEM).toString("base64");
        const carriers = recorded.filter((r) => JSON.stringify(r.inputs).includes(b64) || JSON.stringify(r.inputs).includes("PROVIDED"));
        expect(carriers.map((r) => `${r.type} ${r.name}`)).toEqual(["command:remote:Command vps-stack-nginx-config"]);
        expect(stack.proxy!.config).not.toContain("PROVIDED");
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert")).toEqual([]);
        expect(ofType("tls:index/locallySignedCert:LocallySignedCert")).toEqual([]);
        expect(stack.certificates).toBeUndefined();
    });

    it("with the host's nginx, sends the chain and key in the site command's secret stdin only", async () => {
        const stack = await build(
            provided(
                preprodConfig((c) => {
                    c.nginx = { mode: "host" };
                    c.apps[0].hostPort = 8000;
                    c.apps[1].hostPort = 8010;
                }),
            ),
        );
        const cmd = byName("vps-stack-host-nginx-site");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        const [, cert, key] = cmd.inputs.stdin.match(/vps_site_install \S+ '[^']+' '([^']+)' '([^']+)'/);
        expect(Buffer.from(cert, "base64").toString()).toBe(CHAIN);
        expect(Buffer.from(key, "base64").toString()).toBe(KEY_PEM);
        expect(stack.hostSite!.config).not.toContain("PROVIDED");
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert")).toEqual([]);
    });
});
