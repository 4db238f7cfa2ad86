// AcmeClient under Pulumi mocks: the ACME client and the certificate the proxy serves (tls.mode acme).
import * as fc from "fast-check";
import * as pulumi from "@pulumi/pulumi";
import { durationSeconds } from "../../config";
import { LOG_OPTS } from "../../plan/container-defaults";
import { acmeCertName } from "../../plan/tls";
import { ACME_SCRIPT, ACME_SERVED_FILE } from "../../render/acme";
import { NGINX_CONF_FILE, PROXY_CONFIG_DIR } from "../../render/proxy";
import { byName, CONTAINER, ofType, REMOTE_COMMAND, resetRecorded, VOLUME } from "../mocks";
import { build, byTypeName, container, expectSameResources, filesCommand, filesOfCommand, preprodConfig, proxyInstallArgs, rawProps, resetCaptured, upload, uploadIsSecret } from "./helpers";

beforeEach(resetCaptured);

describe("AcmeClient (tls.mode acme)", () => {
    const acme = (extra: object = {}) => (c: any) => (c.tls = { mode: "acme", acme: { email: "ops@example.com", ...extra } });

    it("runs certbot's image with the stack's names, account, directory and certificate name, on the edge network", async () => {
        const stack = await build(preprodConfig(acme({ staging: true })));
        const a = container("vps-stack-preprod-acme");
        expect(a.entrypoints).toEqual(["sh", ACME_SCRIPT]);
        expect(a.command).toEqual(["daemon"]);
        const server = "https://acme-staging-v02.api.letsencrypt.org/directory";
        expect(a.envs).toEqual([
            "ACME_DOMAINS=app.example.com",
            "ACME_EMAIL=ops@example.com",
            `ACME_SERVER=${server}`,
            `ACME_CERT_NAME=${acmeCertName(server, ["app.example.com"])}`,
            "ACME_RENEW_INTERVAL=43200",
        ]);
        expect(a.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge" }]);
        expect(a.ports ?? []).toEqual([]);
        expect(a.healthcheck.tests).toEqual(["CMD", "sh", ACME_SCRIPT, "check"]);
        expect(a.restart).toBe("unless-stopped");
        expect(a.logOpts).toEqual(LOG_OPTS);
        expect(a.capabilities.drops).toEqual(["ALL"]);
        expect(ofType("docker:index/remoteImage:RemoteImage").map((r) => r.inputs.name)).toContain("certbot/certbot:v5.7.0");
        // No CA, no uploaded certificate: the proxy serves what the ACME container keeps.
        expect(stack.certificates).toBeUndefined();
        expect(stack.serverCertificate).toBeUndefined();
    });

    it("uploads the self-signed placeholder as a 0400 secret, and the private CA only when configured", async () => {
        await build(preprodConfig(acme()));
        const a = container("vps-stack-preprod-acme");
        const ph = upload(a, "/run/vps-stack/placeholder.pem");
        expect(ph.permissions).toBe("0400");
        expect(ph.content).toMatch(/-----END CERTIFICATE-----\n-----BEGIN (EC )?PRIVATE KEY-----/);
        expect(await uploadIsSecret("vps-stack-acme", "/run/vps-stack/placeholder.pem")).toBe(true);
        expect([...filesOfCommand(filesCommand(a, "/run/vps-stack")).keys()]).toEqual(["placeholder.pem"]);
        expect(a.envs.join("\n")).not.toContain("REQUESTS_CA_BUNDLE");
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert").map((r) => r.inputs.dnsNames)).toEqual([["app.example.com"]]);

        resetRecorded();
        const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        await build(preprodConfig(acme({ directoryUrl: "https://172.17.0.1:14000/dir", caCertificate: ca })));
        const b = container("vps-stack-preprod-acme");
        expect(upload(b, "/run/vps-stack/acme-ca.pem")).toMatchObject({ content: ca, permissions: "0444" });
        expect(b.envs).toContain("REQUESTS_CA_BUNDLE=/run/vps-stack/acme-ca.pem");
        expect(b.envs).toContain("ACME_SERVER=https://172.17.0.1:14000/dir");
    });

    it("shares its volumes with the proxy read-only; nginx serves the one file and the challenge directory", async () => {
        const stack = await build(preprodConfig(acme()));
        const a = container("vps-stack-preprod-acme");
        expect(a.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "128" });
        expect(a.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-acme-sbin-files-[0-9a-f]{12}$/), containerPath: "/usr/local/sbin", readOnly: true },
            { volumeName: expect.stringMatching(/^vps-stack-preprod-acme-vps-stack-files-[0-9a-f]{12}$/), containerPath: "/run/vps-stack", readOnly: true },
            { volumeName: "vps-stack-preprod-letsencrypt", containerPath: "/etc/letsencrypt" },
            { volumeName: "vps-stack-preprod-acme-webroot", containerPath: "/var/www/acme" },
            // certbot's work and log directories: volumes of the container's own (a read-only root).
            { containerPath: "/var/lib/letsencrypt" },
            { containerPath: "/var/log/letsencrypt" },
        ]);
        expect(a.readOnly).toBe(true);
        const nginx = container("vps-stack-preprod-nginx");
        expect(nginx.volumes).toEqual([
            { containerPath: "/var/cache/nginx" },
            { containerPath: "/var/lib/nginx" },
            { volumeName: "vps-stack-preprod-nginx-config", containerPath: PROXY_CONFIG_DIR, readOnly: true },
            { volumeName: "vps-stack-preprod-letsencrypt", containerPath: "/etc/letsencrypt", readOnly: true },
            { volumeName: "vps-stack-preprod-acme-webroot", containerPath: "/var/www/acme", readOnly: true },
        ]);
        expect(nginx.uploads ?? []).toEqual([]);
        // The throwaway installer sees the certificate as the proxy will (read-only), so nginx -t can load it.
        const cmd = byTypeName(REMOTE_COMMAND, "vps-stack-nginx-config");
        expect(cmd.inputs.create).toMatch(
            /^docker run --rm -i --network vps-stack-preprod-edge -v vps-stack-preprod-nginx-config:\/etc\/nginx\/vps-stack -v vps-stack-preprod-letsencrypt:\/etc\/letsencrypt:ro -v vps-stack-preprod-acme-webroot:\/var\/www\/acme:ro --entrypoint sh sha256:[0-9a-f]{64} -s && /,
        );
        // No certificate or key in it: only the config (the certificate lives in the ACME volume).
        expect(proxyInstallArgs(cmd.inputs.stdin)).toEqual([PROXY_CONFIG_DIR, stack.proxy!.config]);
        expect(stack.proxy!.config).toContain(`ssl_certificate     ${ACME_SERVED_FILE};`);
        expect(stack.proxy!.config).toContain(`ssl_certificate_key ${ACME_SERVED_FILE};`);
        expect(stack.proxy!.config).toContain("location ^~ /.well-known/acme-challenge/ {");
        // nginx reloads itself when a renewal replaces the file (checked every minute, after nginx -t).
        expect(nginx.command[0]).toBe("sh");
        expect(nginx.command[2]).toContain(`f='${ACME_SERVED_FILE}'`);
        const live = "nginx -c /etc/nginx/vps-stack/live/nginx.conf";
        expect(nginx.command[2]).toContain(`${live} -t -q 2>/dev/null; then ${live} -s reload`);
        expect(nginx.command[2]).toMatch(/\nexec nginx -c \/etc\/nginx\/vps-stack\/live\/nginx\.conf -g 'daemon off;'$/);
        // The config (and so the proxy) waits for the ACME container, which serves the placeholder.
        expect(rawProps.get(`${REMOTE_COMMAND}::vps-stack-nginx-config`)!.opts.dependsOn as pulumi.Resource[]).toContain(stack.acme!.container);
        expectSameResources(rawProps.get(`${CONTAINER}::vps-stack-nginx`)!.opts.dependsOn, [stack.proxy!.configCommand]);
    });

    it("keeps certbot's account and certificates on prod when the stack is destroyed (rate limits)", async () => {
        await build(preprodConfig(acme()));
        expect(rawProps.get("vps-stack-acme-letsencrypt")!.opts.retainOnDelete).toBe(false);
        resetRecorded();
        rawProps.clear();
        await build({ ...preprodConfig(acme()), stack: "prod", prefix: "vps-stack-prod" });
        expect(rawProps.get("vps-stack-acme-letsencrypt")!.opts.retainOnDelete).toBe(true);
        expect(rawProps.get("vps-stack-acme-webroot")!.opts.retainOnDelete).toBeFalsy();
    });

    it("asks the CA once the proxy is up, then reloads it after nginx -t", async () => {
        const stack = await build(preprodConfig(acme()));
        const issue = byName("vps-stack-acme-issue");
        expect(issue.type).toBe(REMOTE_COMMAND);
        expect(issue.inputs.create).toBe(
            `docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} issue && docker exec vps-stack-preprod-nginx nginx -c ${NGINX_CONF_FILE} -t -q && docker exec vps-stack-preprod-nginx nginx -c ${NGINX_CONF_FILE} -s reload`,
        );
        expect(issue.inputs.triggers).toEqual(["vps-stack-acme-id", stack.acme!.certName]);
        const deps = rawProps.get("vps-stack-acme-issue")!.opts.dependsOn as pulumi.Resource[];
        expect(deps).toContain(stack.proxy!.container);
        expect(deps).toContain(stack.proxy!.configCommand);
        expect(deps).toContain(stack.acme!.container);
    });

    it("gives the operator certbot's status, dry-run and forced-renewal commands over SSH", async () => {
        const stack = await build(preprodConfig(acme()));
        expect(stack.acmeCommands).toEqual({
            status: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} status`,
            issue: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} issue`,
            renewDryRun: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} renew --dry-run --no-random-sleep-on-renew`,
            forceRenew: `ssh -p 2222 deploy@203.0.113.10 docker exec vps-stack-preprod-acme sh ${ACME_SCRIPT} renew --force-renewal --no-random-sleep-on-renew`,
            logs: "ssh -p 2222 deploy@203.0.113.10 docker logs --tail 100 vps-stack-preprod-acme",
        });
    });

    it("in host mode, keeps its state in host directories the host's nginx reads, and reloads that nginx", async () => {
        const stack = await build(
            preprodConfig((c) => {
                acme()(c);
                c.nginx = { mode: "host" };
                c.apps[0].hostPort = 8000;
                c.apps[1].hostPort = 8010;
            }),
        );
        expect(container("vps-stack-preprod-acme").volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-acme-sbin-files-[0-9a-f]{12}$/), containerPath: "/usr/local/sbin", readOnly: true },
            { volumeName: expect.stringMatching(/^vps-stack-preprod-acme-vps-stack-files-[0-9a-f]{12}$/), containerPath: "/run/vps-stack", readOnly: true },
            { hostPath: "/var/lib/vps-stack/preprod/letsencrypt", containerPath: "/etc/letsencrypt" },
            { hostPath: "/var/lib/vps-stack/preprod/acme-webroot", containerPath: "/var/www/acme" },
            // certbot's work and log directories: volumes of the container's own (a read-only root).
            { containerPath: "/var/lib/letsencrypt" },
            { containerPath: "/var/log/letsencrypt" },
        ]);
        expect(ofType(VOLUME).map((v) => v.inputs.name)).not.toContain("vps-stack-preprod-letsencrypt");
        const config = stack.hostSite!.config;
        expect(config).toContain("ssl_certificate     /var/lib/vps-stack/preprod/letsencrypt/vps-stack/tls.pem;");
        expect(config).toContain("root /var/lib/vps-stack/preprod/acme-webroot;");
        const site = byName("vps-stack-host-nginx-site");
        expect(site.inputs.stdin).toContain("vps_site_install vps-stack-preprod ");
        expect(site.inputs.stdin).toMatch(/--watch \/var\/lib\/vps-stack\/preprod\/letsencrypt\/vps-stack\/tls\.pem\n$/);
        expect(rawProps.get("vps-stack-host-nginx-site")!.opts.dependsOn as pulumi.Resource[]).toContain(stack.acme!.container);
        const issue = byName("vps-stack-acme-issue").inputs.create as string;
        expect(issue).toMatch(/^docker exec vps-stack-preprod-acme sh \S+ issue && printf '%s' '[A-Za-z0-9+/=]+' \| base64 -d \| sudo -n sh -s$/);
        const script = Buffer.from(issue.match(/printf '%s' '([^']+)'/)![1], "base64").toString();
        expect(script).toMatch(/\nvps_site_reload_if_changed vps-stack-preprod \/var\/lib\/vps-stack\/preprod\/letsencrypt\/vps-stack\/tls\.pem\n$/);
    });

    it("reads renewInterval as seconds", () => {
        expect([durationSeconds("12h"), durationSeconds("90m"), durationSeconds("30s")]).toEqual([43200, 5400, 30]);
    });

    it("reads any duration as whole seconds, at least 1: h = 60 m = 3600 s = 3 600 000 ms", () => {
        fc.assert(
            fc.property(fc.integer({ min: 1, max: 100_000 }), fc.nat(100_000), (n, m) => {
                expect(durationSeconds(`${n}h`)).toBe(n * 3600);
                expect(durationSeconds(`${n}h`)).toBe(durationSeconds(`${n * 60}m`));
                expect(durationSeconds(`${n}m`)).toBe(durationSeconds(`${n * 60}s`));
                expect(durationSeconds(`${n}s`)).toBe(durationSeconds(`${n * 1000}ms`));
                // Never 0 (a zero interval would spin), rounded to the nearest second, never decreasing.
                expect(durationSeconds(`${m}ms`)).toBe(Math.max(1, Math.round(m / 1000)));
                expect(durationSeconds(`${m}s`)).toBe(Math.max(1, m));
                expect(durationSeconds(`${m}s`)).toBeLessThanOrEqual(durationSeconds(`${m + 1}s`));
            }),
        );
        fc.assert(
            fc.property(fc.string(), (s) => {
                if (!/^\d+(ms|s|m|h)$/.test(s)) expect(() => durationSeconds(s)).toThrow("unsupported duration");
            }),
        );
    });
});
