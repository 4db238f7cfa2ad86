// nginx.mode "host" (seed 000): the stack's site goes into the host's own nginx over SSH instead of an
// nginx container. vps-stack-nginx-site.sh does the work as root (sudo -n): certificates into a root-only
// directory, the site into sites-available/-enabled, `nginx -t` before any reload (a rejected site puts
// the previous files back and fails `pulumi up` with nginx's message), removal on destroy.
import * as fs from "fs";
import * as path from "path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { NginxSite, renderNginxSiteFile } from "./render/nginx";
import { VpsHost } from "./vps-host";

export const HOST_NGINX_SITE_TYPE = "vps-stack:index:HostNginxSite";

export const HOST_SITE_SCRIPT = path.join(__dirname, "host-nginx", "vps-stack-nginx-site.sh");
/** Root-only directory of a stack's certificates on the host. */
export const hostTlsDir = (name: string) => `/etc/vps-stack/${name}`;

/**
 * The shell program piped to `sudo -n sh -s`: the script's functions, then one call with the data as
 * base64 words (no quoting to get wrong, and nothing secret on any command line).
 */
export function hostSiteScript(action: "install" | "remove", name: string, data?: { site: string; cert: string; key: string }): string {
    if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`hostSiteScript: invalid site name ${name}`);
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const call = action === "install" ? `vps_site_install ${name} '${b64(data!.site)}' '${b64(data!.cert)}' '${b64(data!.key)}'` : `vps_site_remove ${name}`;
    return `${fs.readFileSync(HOST_SITE_SCRIPT, "utf8")}\n${call}\n`;
}

export interface HostNginxSiteArgs {
    host: VpsHost;
    /** `vps-stack-<stack>`: the site's file name and its certificates' directory. */
    prefix: string;
    /** What to serve; upstreams are the apps' 127.0.0.1 ports. */
    site: Omit<NginxSite, "certificatePath" | "keyPath" | "namespace">;
    certificatePem: pulumi.Input<string>;
    keyPem: pulumi.Input<string>;
    /** The app containers: the site is installed once they are up. */
    upstreams: docker.Container[];
}

export class HostNginxSite extends pulumi.ComponentResource {
    readonly siteFile: string;
    readonly config: string;

    constructor(name: string, args: HostNginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
        super(HOST_NGINX_SITE_TYPE, name, {}, opts);
        const tls = hostTlsDir(args.prefix);
        this.siteFile = `/etc/nginx/sites-available/${args.prefix}.conf`;
        this.config = renderNginxSiteFile({
            ...args.site,
            certificatePath: `${tls}/fullchain.pem`,
            keyPath: `${tls}/privkey.pem`,
            namespace: `${args.prefix.replace(/-/g, "_")}_`,
        });
        const remove = Buffer.from(hostSiteScript("remove", args.prefix)).toString("base64");
        args.host.run(
            `${name}-site`,
            {
                create: "sudo -n sh -s",
                stdin: pulumi.secret(
                    pulumi
                        .all([args.certificatePem, args.keyPem])
                        .apply(([cert, key]) => hostSiteScript("install", args.prefix, { site: this.config, cert, key })),
                ),
                delete: `printf '%s' '${remove}' | base64 -d | sudo -n sh -s`,
            },
            { dependsOn: args.upstreams },
        );
        this.registerOutputs({ siteFile: this.siteFile });
    }
}
