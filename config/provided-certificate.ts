// Checks a provided certificate and key (tls.mode "provided") before anything is deployed: both parse,
// the key belongs to the certificate, it is valid now and covers every host name the stack serves.
// Pure apart from Node's crypto; never echoes the key.
import * as crypto from "crypto";

export interface CertificateProblem {
    key: "secrets.TLS_CERTIFICATE" | "secrets.TLS_PRIVATE_KEY";
    message: string;
}

/** The PEM blocks of a chain, leaf first. */
export function pemBlocks(pem: string): string[] {
    return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export function validateProvidedCertificate(certPem: string, keyPem: string, hosts: string[], now: Date): CertificateProblem[] {
    const problems: CertificateProblem[] = [];
    const blocks = pemBlocks(certPem);
    let leaf: crypto.X509Certificate | undefined;
    try {
        if (blocks.length === 0) throw new Error("no PEM block");
        leaf = new crypto.X509Certificate(blocks[0]);
        blocks.slice(1).forEach((b) => new crypto.X509Certificate(b));
    } catch {
        problems.push({ key: "secrets.TLS_CERTIFICATE", message: "is not a PEM certificate chain (-----BEGIN CERTIFICATE----- …, leaf first)" });
    }
    let key: crypto.KeyObject | undefined;
    try {
        key = crypto.createPrivateKey(keyPem);
    } catch {
        problems.push({ key: "secrets.TLS_PRIVATE_KEY", message: "is not a PEM private key (an unencrypted -----BEGIN … PRIVATE KEY-----)" });
    }
    if (!leaf) return problems;
    if (key && !leaf.checkPrivateKey(key)) {
        problems.push({ key: "secrets.TLS_PRIVATE_KEY", message: "does not belong to the certificate in secrets.TLS_CERTIFICATE" });
    }
    const from = new Date(leaf.validFrom);
    const to = new Date(leaf.validTo);
    if (to <= now) problems.push({ key: "secrets.TLS_CERTIFICATE", message: `expired on ${to.toISOString()}` });
    else if (from > now) problems.push({ key: "secrets.TLS_CERTIFICATE", message: `is not valid before ${from.toISOString()}` });
    const uncovered = hosts.filter((h) => leaf!.checkHost(h) === undefined);
    if (uncovered.length > 0) {
        problems.push({
            key: "secrets.TLS_CERTIFICATE",
            message: `does not cover ${uncovered.join(", ")} (it covers: ${leaf.subjectAltName ?? leaf.subject})`,
        });
    }
    return problems;
}
