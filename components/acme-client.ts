// tls.mode "acme": publicly trusted certificates from Let's Encrypt, or any ACME CA, proved
// over HTTP-01 through the proxy's /.well-known/acme-challenge/.
//
// The ACME client is a container of its own (the certbot image) running vps-stack-acme.sh, which keeps
// ONE file for the proxy: chain + key, replaced by a rename. The first-run deadlock (nginx needs a
// certificate to start, the CA needs nginx to prove the names) is broken with a self-signed placeholder
// made here: the container serves it before the proxy starts, `pulumi up` then asks the CA once the
// proxy answers on port 80, installs the result and reloads the proxy; a failure fails `pulumi up` with
// certbot's message. Renewals happen in the container (`certbot renew` every renewInterval); the proxy
// picks a changed file up by itself (see certificateWatcher), after `nginx -t`.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck, readOnlyRoot } from "../plan/container-defaults";
import { containerFilesAt } from "./container-files";
import { limitPids } from "./pids-limit";
import { AcmeTls, hostAcmeDirs } from "../plan/tls";
import { ACME_CA_BUNDLE_FILE, ACME_CONFIG_DIR, ACME_LOGS_DIR, ACME_PLACEHOLDER_FILE, ACME_SCRIPT, ACME_SERVED_FILE, ACME_WEBROOT, ACME_WORK_DIR, acmeEnv, acmeIssueCommand, acmeScript } from "../render/acme";
import { pullImage } from "./image";
import { StackScope } from "./scope";

export const ACME_CLIENT_TYPE = "vps-stack:index:AcmeClient";

export interface AcmeClientArgs extends StackScope {
    /** The stack's TLS plan: names, CA, schedule, storage. */
    tls: AcmeTls;
    /** Network with a route out (the edge network). */
    network: pulumi.Input<string>;
}

export class AcmeClient extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly container: docker.Container;
    readonly certName: string;
    /** Volumes for the proxy container to mount read-only (storage "volumes"). */
    readonly configVolume?: docker.Volume;
    readonly webrootVolume?: docker.Volume;
    /** The served chain+key and the challenge directory as the proxy sees them. */
    readonly servedFile: string;
    readonly webroot: string;
    private readonly host: StackScope["host"];

    constructor(name: string, args: AcmeClientArgs, opts?: pulumi.ComponentResourceOptions) {
        super(ACME_CLIENT_TYPE, name, {}, opts);
        this.host = args.host;
        const child = { parent: this };
        const provider = args.host.provider;
        const plan = args.tls;
        this.containerName = `${args.prefix}-acme`;
        this.certName = plan.certName;

        // The bootstrap certificate: never trusted by anyone, only there so nginx can start.
        const key = new tls.PrivateKey(`${name}-placeholder-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const cert = new tls.SelfSignedCert(
            `${name}-placeholder`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: plan.domains[0], organization: "vps-stack placeholder (not issued yet)" },
                dnsNames: plan.domains,
                validityPeriodHours: 90 * 24,
                allowedUses: ["digital_signature", "server_auth"],
            },
            // Changing the names does not need a new placeholder: it is only used before the first issue.
            { ...child, ignoreChanges: ["dnsNames", "subject"] },
        );
        const placeholder = pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]).apply(([c, k]) => `${c.trim()}\n${k.trim()}\n`));

        let mounts: docker.types.input.ContainerVolume[];
        if (plan.storage === "volumes") {
            // certbot's account key and certificates: losing them means asking the CA again (rate limits).
            const labels = [{ label: "vps-stack.stack", value: args.stack }];
            this.configVolume = new docker.Volume(`${name}-letsencrypt`, { name: `${args.prefix}-letsencrypt`, labels }, { parent: this, provider, retainOnDelete: args.stack === "prod" });
            this.webrootVolume = new docker.Volume(`${name}-webroot`, { name: `${args.prefix}-acme-webroot`, labels }, { parent: this, provider });
            mounts = [
                { volumeName: this.configVolume.name, containerPath: ACME_CONFIG_DIR },
                { volumeName: this.webrootVolume.name, containerPath: ACME_WEBROOT },
            ];
            this.servedFile = ACME_SERVED_FILE;
            this.webroot = ACME_WEBROOT;
        } else {
            const dirs = hostAcmeDirs(args.stack);
            mounts = [
                { hostPath: dirs.config, containerPath: ACME_CONFIG_DIR },
                { hostPath: dirs.webroot, containerPath: ACME_WEBROOT },
            ];
            this.servedFile = dirs.served;
            this.webroot = dirs.webroot;
        }

        const image = pullImage(`${name}-image`, { ref: plan.image, trackTag: false }, { parent: this, provider });
        const files = containerFilesAt(
            args.host,
            `${name}-files`,
            { container: this.containerName, stack: args.stack, service: "acme", image: image.imageId },
            [
                { path: ACME_SCRIPT, content: acmeScript(), mode: 0o555 },
                { path: ACME_PLACEHOLDER_FILE, content: placeholder, mode: 0o400 },
                ...(plan.caCertificate ? [{ path: ACME_CA_BUNDLE_FILE, content: plan.caCertificate, mode: 0o444 }] : []),
            ],
            { parent: this },
        );
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "acme", { memory: plan.memory, cpus: 0.5, pidsLimit: plan.pidsLimit }),
                // The certbot image's entrypoint is certbot itself.
                entrypoints: ["sh", ACME_SCRIPT],
                command: ["daemon"],
                envs: acmeEnv({ ...plan, server: plan.directoryUrl, certName: this.certName }),
                // A read-only root: certbot's work and log directories are volumes of the container's own.
                ...readOnlyRoot({ volumes: [...files.mounts, ...mounts, { containerPath: ACME_WORK_DIR }, { containerPath: ACME_LOGS_DIR }] }),
                networksAdvanced: [{ name: args.network }],
                // Root in the container writes certbot's 0700 directories and chmods the served file.
                capabilities: { drops: ["ALL"], adds: dockerCaps(["CHOWN", "DAC_OVERRIDE", "FOWNER"]) },
                healthcheck: healthcheck({
                    tests: ["CMD", "sh", ACME_SCRIPT, "check"],
                    interval: "15s",
                    timeout: "10s",
                    retries: 2,
                    startPeriod: "10s",
                }),
                waitTimeout: 90,
            },
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: files.ready },
        );
        limitPids(args.host, name, this.container, this.containerName, plan.pidsLimit);
        this.registerOutputs({ containerName: this.containerName, certName: this.certName });
    }

    /**
     * The first certificate (and one for every new set of names): once the proxy answers on port 80,
     * certbot asks the CA, the result is installed and the proxy reloaded by `reload`. Re-runs when the
     * ACME container is replaced; certbot keeps a certificate that is still valid.
     */
    issueThenReload(name: string, reload: string, dependsOn: pulumi.Resource[]): pulumi.Resource {
        return this.host.run(
            name,
            {
                create: acmeIssueCommand(this.containerName, reload),
                triggers: [this.container.id, this.certName],
            },
            { dependsOn: [this.container, ...dependsOn] },
        );
    }
}
