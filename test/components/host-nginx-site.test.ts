// HostNginxSite under Pulumi mocks: the site installed into the host's own nginx (nginx.mode host).
import { byName, isWrappedSecret, REMOTE_COMMAND } from "../mocks";
import { build, container, hostMode, preprodConfig, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("HostNginxSite (nginx.mode host)", () => {
    it("publishes each replica on 127.0.0.1 only and runs no proxy container", async () => {
        await build(preprodConfig(hostMode));
        expect(container("vps-stack-preprod-api-1").ports).toEqual([{ internal: 3001, external: 8000, ip: "127.0.0.1", protocol: "tcp" }]);
        expect(container("vps-stack-preprod-api-2").ports).toEqual([{ internal: 3001, external: 8001, ip: "127.0.0.1", protocol: "tcp" }]);
        expect(container("vps-stack-preprod-web-1").ports).toEqual([{ internal: 3000, external: 8010, ip: "127.0.0.1", protocol: "tcp" }]);
        expect(() => container("vps-stack-preprod-nginx")).toThrow();
    });

    it("installs the site over SSH as root, with nginx -t before reload, and removes it on destroy", async () => {
        const stack = await build(preprodConfig(hostMode));
        const cmd = byName("vps-stack-host-nginx-site");
        expect(cmd.type).toBe(REMOTE_COMMAND);
        expect(cmd.inputs.create).toBe("sudo -n sh -s");
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        expect(cmd.inputs.stdin).toContain("vps_site_install vps-stack-preprod ");
        expect(cmd.inputs.stdin).toContain('sh -c "${NGINX_TEST:-nginx -t}"');
        expect(cmd.inputs.delete).toMatch(/^printf '%s' '[A-Za-z0-9+/=]+' \| base64 -d \| sudo -n sh -s$/);
        const config = stack.hostSite!.config;
        expect(config).toContain("upstream vps_stack_preprod_app_api {");
        expect(config).toContain("server 127.0.0.1:8000 max_fails=3 fail_timeout=10s;");
        expect(config).toContain("server 127.0.0.1:8001 max_fails=3 fail_timeout=10s;");
        expect(config).toContain("ssl_certificate_key /etc/vps-stack/vps-stack-preprod/privkey.pem;");
        expect(config).not.toContain("default_server");
        // The site file carries no secret; the key travels only in the command's stdin.
        expect(config).not.toContain("PRIVATE KEY");
        expect(Buffer.from(cmd.inputs.stdin.match(/vps_site_install \S+ '[^']+' '[^']+' '([^']+)'/)[1], "base64").toString()).toContain("PRIVATE KEY");
    });
});
