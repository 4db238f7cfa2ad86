// nginx.mode "host", for teams that already run nginx on the VPS: the stack's site goes into the host's
// own nginx over SSH instead of an nginx container. vps-stack-nginx-site.sh does the work as root
// (sudo -n): certificates into a root-only directory, the site into sites-available/-enabled, `nginx -t`
// before any reload (a rejected site puts the previous files back and fails `pulumi up` with nginx's
// message), removal on destroy.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { hostSiteCommand, hostSiteFile, hostSiteScript, hostTlsDir } from "../render/host-nginx";
import { NginxSite, renderNginxSiteFile } from "../render/nginx";
import { ServedCertificate, StackScope } from "./scope";

export const HOST_NGINX_SITE_TYPE = "vps-stack:index:HostNginxSite";

export interface HostNginxSiteArgs extends Omit<StackScope, "stack"> {
    /** What to serve; upstreams are the apps' 127.0.0.1 ports. */
    site: Omit<NginxSite, "certificatePath" | "keyPath" | "namespace">;
    /**
     * Files: installed into a root-only directory. ACME: the site reads the ACME container's file and
     * serves its challenge directory.
     */
    certificate: ServedCertificate;
    /** The app containers: the site is installed once they are up. */
    upstreams: docker.Container[];
}

export class HostNginxSite extends pulumi.ComponentResource {
    readonly siteFile: string;
    readonly config: string;
    readonly site: pulumi.Resource;

    constructor(name: string, args: HostNginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
        super(HOST_NGINX_SITE_TYPE, name, {}, opts);
        const tls = hostTlsDir(args.prefix);
        const cert = args.certificate;
        const acme = cert.source === "acme" ? cert.client : undefined;
        this.siteFile = hostSiteFile(args.prefix);
        this.config = renderNginxSiteFile({
            ...args.site,
            certificatePath: acme ? acme.servedFile : `${tls}/fullchain.pem`,
            keyPath: acme ? acme.servedFile : `${tls}/privkey.pem`,
            namespace: `${args.prefix.replace(/-/g, "_")}_`,
            ...(acme ? { acmeWebroot: acme.webroot } : {}),
        });
        const install: pulumi.Input<string> =
            cert.source === "acme"
                ? hostSiteScript("install", args.prefix, { site: this.config, watch: cert.client.servedFile })
                : pulumi.secret(pulumi.all([cert.certPem, cert.keyPem]).apply(([certPem, keyPem]) => hostSiteScript("install", args.prefix, { site: this.config, cert: certPem, key: keyPem })));
        this.site = args.host.run(
            `${name}-site`,
            { create: "sudo -n sh -s", stdin: install, delete: hostSiteCommand(hostSiteScript("remove", args.prefix)) },
            // With ACME, nginx -t needs the placeholder the ACME container puts in place at start.
            { dependsOn: [...args.upstreams, ...(acme ? [acme.container] : [])] },
        );
        this.registerOutputs({ siteFile: this.siteFile });
    }
}
