// host.provision: a fresh VPS made a hardened Docker host before anything else touches it. The work runs
// from the deploying machine (render/scripts/vps-stack-provision-driver.sh): the first time as the one-time
// access (root or a sudo user), afterwards as the deploy user through its single sudo rule, since root
// login is then refused. The bundle is the command's stdin, so `pulumi preview --diff` shows the very
// lines that would change on the host. Deleting the resource leaves the host as it is.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { expandHome } from "../config/paths";
import { ProvisionPlan, provisionBundle, provisionDriver, provisionScript } from "../render/provision";

export const HOST_PROVISION_TYPE = "vps-stack:index:HostProvision";

export interface HostProvisionArgs {
    plan: ProvisionPlan & { privateKeyPath?: string };
    address: string;
    port: number;
    /** The deploy user's key (host.privateKeyPath); undefined: the SSH agent. */
    deployKeyPath?: string;
    /** The pinned host key, as the known_hosts file VpsHost writes. */
    knownHostsFile: string;
    /** Where VpsHost's shared SSH connections live (a stale one of the deploy user is closed). */
    controlDir: string;
}

export class HostProvision extends pulumi.ComponentResource {
    readonly command: command.local.Command;

    constructor(name: string, args: HostProvisionArgs, opts?: pulumi.ComponentResourceOptions) {
        super(HOST_PROVISION_TYPE, name, {}, opts);
        const p = args.plan;
        this.command = new command.local.Command(
            `${name}-apply`,
            {
                create: provisionDriver(),
                interpreter: ["/bin/bash", "-c"],
                stdin: provisionBundle(p),
                environment: {
                    VPS_ADDRESS: args.address,
                    VPS_PORT: String(args.port),
                    VPS_KNOWN_HOSTS: args.knownHostsFile,
                    VPS_CONTROL_DIR: args.controlDir,
                    VPS_USER: p.user,
                    VPS_KEY: args.deployKeyPath ? expandHome(args.deployKeyPath) : "",
                    VPS_PROVISION_USER: p.provisionUser,
                    VPS_PROVISION_KEY: p.privateKeyPath ? expandHome(p.privateKeyPath) : "",
                    VPS_STACK_PROVISION_SCRIPT: provisionScript(),
                },
                logging: "stdoutAndStderr",
                addPreviousOutputInEnv: false,
            },
            { parent: this },
        );
        this.registerOutputs({});
    }
}
