// TLS for the proxy in "ca" mode: a per-stack CA and one server certificate covering every host name, all
// from @pulumi/tls. The server certificate is renewed by `pulumi up` once inside its early-renewal window.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { CaTls } from "../plan/tls";

export const STACK_CERTIFICATES_TYPE = "vps-stack:index:StackCertificates";

/** The names, organization and validities the plan chose (tls.mode "ca"). */
export interface StackCertificatesArgs extends Omit<CaTls, "mode"> {
    stack: string;
}

export class StackCertificates extends pulumi.ComponentResource {
    readonly caCertPem: pulumi.Output<string>;
    readonly certPem: pulumi.Output<string>;
    readonly keyPem: pulumi.Output<string>;

    constructor(name: string, args: StackCertificatesArgs, opts?: pulumi.ComponentResourceOptions) {
        super(STACK_CERTIFICATES_TYPE, name, {}, opts);
        const child = { parent: this };

        const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const ca = new tls.SelfSignedCert(
            `${name}-ca`,
            {
                privateKeyPem: caKey.privateKeyPem,
                isCaCertificate: true,
                subject: { commonName: `vps-stack ${args.stack} CA`, organization: args.organization },
                validityPeriodHours: args.caValidityDays * 24,
                allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
            },
            child,
        );

        const key = new tls.PrivateKey(`${name}-server-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const csr = new tls.CertRequest(
            `${name}-server-csr`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: args.dnsNames[0], organization: args.organization },
                dnsNames: args.dnsNames,
                ipAddresses: args.ipAddresses,
            },
            child,
        );
        const cert = new tls.LocallySignedCert(
            `${name}-server`,
            {
                certRequestPem: csr.certRequestPem,
                caPrivateKeyPem: caKey.privateKeyPem,
                caCertPem: ca.certPem,
                validityPeriodHours: args.validityDays * 24,
                earlyRenewalHours: Math.min(30, Math.floor(args.validityDays / 3)) * 24,
                allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
            },
            child,
        );

        this.caCertPem = ca.certPem;
        this.certPem = cert.certPem;
        this.keyPem = pulumi.secret(key.privateKeyPem);
        this.registerOutputs({ caCertPem: this.caCertPem });
    }
}
