// tls.mode "provided": the certificate and key from secret config are checked before anything is
// deployed (parse, match, validity, host coverage), then served by the proxy as they are. Certificates
// come from a real openssl, so the checks run against what a user would paste.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../config";
import { validateProvidedCertificate } from "../../config/provided-certificate";
import { VpsStack } from "../../components/vps-stack";
import { CONTAINER, isWrappedSecret, ofType, REMOTE_COMMAND, resetRecorded, settled, setupMocks, tempStateDir } from "../mocks";
import { makeCa, tempDir, tool } from "./tools";

const dir = tempDir("tls-provided");
const good = makeCa(dir, ["app.example.com", "www.example.com"]);
const read = (f: string) => fs.readFileSync(f, "utf8");
const chain = read(good.cert) + read(good.caCert);
const key = read(good.key);
const otherKey = path.join(dir, "other.key");
execFileSync(tool("openssl", "openssl"), ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", otherKey]);
const now = new Date();
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";

describe("validateProvidedCertificate", () => {
    it("accepts a chain whose leaf matches the key and covers every host", () => {
        expect(validateProvidedCertificate(chain, key, ["app.example.com", "www.example.com"], now)).toEqual([]);
    });

    it("names the hosts the certificate does not cover", () => {
        const [p] = validateProvidedCertificate(chain, key, ["app.example.com", "api.example.com"], now);
        expect(p.key).toBe("secrets.TLS_CERTIFICATE");
        expect(p.message).toContain("does not cover api.example.com");
        expect(p.message).toContain("DNS:app.example.com");
    });

    it("rejects a key that belongs to another certificate, without echoing it", () => {
        const problems = validateProvidedCertificate(chain, read(otherKey), ["app.example.com"], now);
        expect(problems).toEqual([{ key: "secrets.TLS_PRIVATE_KEY", message: "does not belong to the certificate in secrets.TLS_CERTIFICATE" }]);
        expect(JSON.stringify(problems)).not.toContain("PRIVATE KEY-----");
    });

    it("rejects an expired certificate and one not valid yet", () => {
        expect(validateProvidedCertificate(chain, key, ["app.example.com"], new Date(now.getTime() + 3 * 86400000))[0].message).toMatch(/^expired on /);
        expect(validateProvidedCertificate(chain, key, ["app.example.com"], new Date(now.getTime() - 3 * 86400000))[0].message).toMatch(/^is not valid before /);
    });

    it("rejects what is not PEM", () => {
        expect(validateProvidedCertificate("hello", "world", ["app.example.com"], now).map((p) => p.key)).toEqual(["secrets.TLS_CERTIFICATE", "secrets.TLS_PRIVATE_KEY"]);
    });
});

describe("a stack with a provided certificate", () => {
    const raw = (secrets: Record<string, string>) => ({
        host: { address: "203.0.113.10", hostKey: KEY },
        domain: "app.example.com",
        tls: { mode: "provided" },
        apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0", hosts: ["app.example.com", "www.example.com"] }],
        secrets,
    });

    it("fails config validation with the key and the command when the certificate does not fit", () => {
        expect(() => loadConfig(raw({ TLS_CERTIFICATE: chain, TLS_PRIVATE_KEY: read(otherKey) }), "preprod")).toThrow(
            /vps-stack:secrets.TLS_PRIVATE_KEY does not belong to the certificate[\s\S]*pulumi config set --secret --path 'secrets.TLS_PRIVATE_KEY'/,
        );
    });

    it("sends the provided chain and key to the proxy's config command only, as secret stdin, and makes no CA", async () => {
        resetRecorded();
        setupMocks("preprod");
        const stack = new VpsStack("vps-stack", loadConfig(raw({ TLS_CERTIFICATE: chain, TLS_PRIVATE_KEY: key }), "preprod"), { stateDir: tempStateDir() });
        await settled();
        expect(stack.certificates).toBeUndefined();
        expect(ofType("tls:index/selfSignedCert:SelfSignedCert")).toHaveLength(0);
        const nginx = ofType(CONTAINER).find((c) => c.inputs.name === "vps-stack-preprod-nginx")!;
        expect(nginx.inputs.uploads ?? []).toEqual([]);
        const cmd = ofType(REMOTE_COMMAND).find((c) => c.name === "vps-stack-nginx-config")!;
        expect(isWrappedSecret(cmd.raw.stdin)).toBe(true);
        const call = (cmd.inputs.stdin as string).match(/\nvps_proxy_install (\S+) (\S+) (\S+) (\S+)\n$/)!;
        expect(call[1]).toBe("/etc/nginx/vps-stack");
        expect(Buffer.from(call[3], "base64").toString()).toBe(chain);
        expect(Buffer.from(call[4], "base64").toString()).toBe(key);
    });
});
