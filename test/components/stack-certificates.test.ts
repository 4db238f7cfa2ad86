// StackCertificates under Pulumi mocks: the stack's CA and a server certificate for every host name.
import { loadConfig } from "../../config";
import { ofType } from "../mocks";
import { build, preprodConfig, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("StackCertificates", () => {
    it("makes a CA and a server certificate for every host name", async () => {
        await build(preprodConfig((c) => (c.apps[1].hosts = ["www.example.com"])));
        const ca = ofType("tls:index/selfSignedCert:SelfSignedCert")[0].inputs;
        expect(ca.isCaCertificate).toBe(true);
        expect(ca.allowedUses).toContain("cert_signing");
        const csr = ofType("tls:index/certRequest:CertRequest")[0].inputs;
        expect(csr.dnsNames.sort()).toEqual(["app.example.com", "www.example.com"]);
        const cert = ofType("tls:index/locallySignedCert:LocallySignedCert")[0].inputs;
        expect(cert.allowedUses).toContain("server_auth");
        expect(cert.earlyRenewalHours).toBeGreaterThan(0);
    });

    it("covers localhost and 127.0.0.1 on dev", async () => {
        await build(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"));
        const csr = ofType("tls:index/certRequest:CertRequest")[0].inputs;
        expect(csr.dnsNames).toEqual(["localhost"]);
        expect(csr.ipAddresses).toEqual(["127.0.0.1"]);
    });
});
