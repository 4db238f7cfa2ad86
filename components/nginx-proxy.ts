// The reverse proxy, in container mode: the only container that publishes ports (80/443; 8080/8443 on
// dev). Its configuration (nginx.conf from renderNginxConf, certificate and key) lives in a volume of its
// own and changes by `nginx -t` then a graceful reload, never by replacing the container: requests in
// flight finish on the old workers. Only a new Nginx image replaces the container.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck, labels, NGINX_RUNTIME, readOnlyRoot } from "../plan/container-defaults";
import { limitPids } from "./pids-limit";
import { ACME_CONFIG_DIR, certificateWatcher } from "../render/acme";
import { NginxSite, renderNginxConf } from "../render/nginx";
import { NGINX_CERT_FILE, NGINX_KEY_FILE, PROXY_CONFIG_DIR, PROXY_NGINX, proxyCommand, proxyHealthTest, proxyInstallCall, proxyInstallCommand, proxyScript, upstreamWatcher } from "../render/proxy";
import { ServedCertificate, StackScope } from "./scope";

export const NGINX_PROXY_TYPE = "vps-stack:index:NginxProxy";

export interface NginxProxyArgs extends StackScope {
    /** The pulled Nginx image (nginx.image), shared with the apps' release gates. */
    image: docker.RemoteImage;
    /** Everything renderNginxConf needs except the certificate paths, which are fixed here. */
    site: Omit<NginxSite, "certificatePath" | "keyPath">;
    /** Public ports (nginx.httpPort, nginx.httpsPort). */
    httpPort: number;
    httpsPort: number;
    /** Address the ports are published on: 127.0.0.1 on dev, every address elsewhere. */
    bindAddress: string;
    /**
     * Files: uploaded with the config. ACME: the certificate comes from the ACME client's volume instead
     * (read-only), the challenge directory is served on port 80, and nginx reloads itself when the
     * certificate changes.
     */
    certificate: ServedCertificate;
    edgeNetwork: pulumi.Input<string>;
    /** What must exist before the config names it: the app releases' gates (or containers). */
    upstreams: pulumi.Resource[];
    /**
     * Ids of the app containers: nginx resolves upstream names when it loads its config, so a container
     * replaced under the same name (a re-pushed tag) needs a reload to be found at its new address.
     */
    reloadOn: pulumi.Input<string>[];
    memory: string;
    cpus: number;
    pidsLimit: number;
}

export class NginxProxy extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly config: string;
    readonly container: docker.Container;
    readonly imageId: pulumi.Output<string>;
    /** The command that installs the configuration and reloads the proxy. */
    readonly configCommand: pulumi.Resource;

    constructor(name: string, args: NginxProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super(NGINX_PROXY_TYPE, name, {}, opts);
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-nginx`;
        const cert = args.certificate;
        const acme = cert.source === "acme" ? cert.client : undefined;
        this.config = acme
            ? renderNginxConf({ ...args.site, certificatePath: acme.servedFile, keyPath: acme.servedFile, acmeWebroot: acme.webroot })
            : renderNginxConf({ ...args.site, certificatePath: NGINX_CERT_FILE, keyPath: NGINX_KEY_FILE });
        if (acme && (!acme.configVolume || !acme.webrootVolume)) {
            throw new pulumi.ResourceError("the proxy container needs the ACME client's volumes (its storage must be \"volumes\")", this);
        }

        const image = args.image;
        this.imageId = image.imageId;
        const configVolume = new docker.Volume(
            `${name}-config-volume`,
            { name: `${args.prefix}-nginx-config`, labels: labels(args.stack, "nginx") },
            { parent: this, provider },
        );
        const acmeMounts = acme
            ? [
                  { volume: acme.configVolume!.name, path: ACME_CONFIG_DIR },
                  { volume: acme.webrootVolume!.name, path: acme.webroot },
              ]
            : [];

        // The first time, the install runs before the proxy exists, which then starts on it.
        const call =
            cert.source === "acme"
                ? pulumi.output(proxyInstallCall(this.config))
                : pulumi.secret(pulumi.all([cert.certPem, cert.keyPem]).apply(([certPem, keyPem]) => proxyInstallCall(this.config, { cert: certPem, key: keyPem })));
        const mounts = pulumi.all([configVolume.name, ...acmeMounts.map((m) => m.volume)]);
        this.configCommand = args.host.run(
            `${name}-config`,
            {
                create: pulumi.all([mounts, args.edgeNetwork, image.imageId]).apply(([[config, ...acmeVolumes], network, imageId]) =>
                    proxyInstallCommand({
                        container: this.containerName,
                        network,
                        image: imageId,
                        configVolume: config,
                        readOnlyMounts: acmeMounts.map((m, i) => ({ volume: acmeVolumes[i], path: m.path })),
                    }),
                ),
                stdin: pulumi.all([call]).apply(([c]) => `${proxyScript()}\n${c}`),
                triggers: args.reloadOn,
            },
            { parent: this, dependsOn: [...args.upstreams, ...(acme ? [acme.container] : [])] },
        );

        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "nginx", args),
                command: proxyCommand([upstreamWatcher(), ...(acme ? [certificateWatcher(acme.servedFile, { nginx: PROXY_NGINX })] : [])]),
                // No uploads: the config comes in its volume. The command runs `sh -c`, so the image's
                // entrypoint skips its /docker-entrypoint.d scripts (they would write into /etc/nginx/conf.d).
                ...readOnlyRoot({
                    tmpfs: NGINX_RUNTIME.tmpfs,
                    volumes: [
                        ...NGINX_RUNTIME.volumes,
                        { volumeName: configVolume.name, containerPath: PROXY_CONFIG_DIR, readOnly: true },
                        ...(acme
                            ? [
                                  { volumeName: acme.configVolume!.name, containerPath: ACME_CONFIG_DIR, readOnly: true },
                                  { volumeName: acme.webrootVolume!.name, containerPath: acme.webroot, readOnly: true },
                              ]
                            : []),
                    ],
                }),
                ports: [
                    { internal: 80, external: args.httpPort, ip: args.bindAddress, protocol: "tcp" },
                    { internal: 443, external: args.httpsPort, ip: args.bindAddress, protocol: "tcp" },
                ],
                networksAdvanced: [{ name: args.edgeNetwork }],
                // Enough for the master to bind 80/443, switch to the nginx user and own its cache dirs.
                capabilities: { drops: ["ALL"], adds: dockerCaps(["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"]) },
                healthcheck: healthcheck({
                    tests: proxyHealthTest(),
                    interval: "15s",
                    timeout: "5s",
                    retries: 3,
                    startPeriod: "10s",
                }),
                waitTimeout: 90,
                // A replaced proxy gets nginx's graceful stop (its image's STOPSIGNAL, SIGQUIT) and a few
                // seconds for the requests it holds, instead of an immediate kill.
                destroyGraceSeconds: 10,
            },
            // It owns the public ports, so two cannot run at once: the old one stops first. Only a new
            // Nginx image (or its container settings) gets here; configuration changes are reloads.
            // With ACME it starts once the ACME container serves the placeholder certificate.
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [this.configCommand] },
        );
        limitPids(args.host, name, this.container, this.containerName, args.pidsLimit);
        this.registerOutputs({ containerName: this.containerName });
    }
}
