// The machine a stack runs on: a Docker provider (over SSH with a pinned host key, or the local engine on
// dev) and a way to run shell commands there (remote over the same SSH, or local).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { expandHome } from "../config/paths";
import { dirExistsCommand, ensureDataDirCommand, removeDirCommand } from "../render/host";
import { knownHostsLine, sshOptions } from "../render/services";
import { ProvisionPlan } from "../config/provision";
import { HostProvision } from "./host-provision";

export const VPS_HOST_TYPE = "vps-stack:index:VpsHost";

export interface VpsHostArgs {
    /** SSH target; undefined means the local Docker engine (dev). */
    ssh?: {
        address: string;
        port: number;
        user: string;
        /** "<type> <base64>", pinned. */
        hostKey: string;
        /** Private key file; when unset the SSH agent is used. */
        privateKeyPath?: string;
        /** How long the shared master connection outlives its last use (host.controlPersist). */
        controlPersist: string;
    };
    /** host.provision: run before the Docker provider or any command touches the host. */
    provision?: ProvisionPlan & { privateKeyPath?: string };
    /** Credentials for private registries, passed to the Docker provider. */
    registryAuth?: { address: string; username: string; password: pulumi.Input<string> }[];
    /**
     * Where the known_hosts file and the SSH control sockets live on the deploying machine; one per
     * stack, so two stacks deployed at once never read each other's pinned key.
     * @default ~/.cache/vps-stack/<project>-<stack>
     */
    stateDir?: string;
}

export interface HostCommandArgs {
    create: pulumi.Input<string>;
    delete?: pulumi.Input<string>;
    stdin?: pulumi.Input<string>;
    triggers?: pulumi.Input<any[]>;
}

export class VpsHost extends pulumi.ComponentResource {
    readonly provider: docker.Provider;
    /** This stack's directory on the deploying machine (known_hosts, SSH sockets, built sites). */
    readonly stateDir: string;
    /** `ssh://user@address:port`, or undefined on the local engine. */
    readonly dockerHost?: string;
    readonly sshOptions: string[];
    private readonly connection?: command.types.input.remote.ConnectionArgs;
    private readonly hostName: string;
    /** What every use of the host waits for: provisioning, when the stack does it. */
    private readonly ready: pulumi.Resource[] = [];
    readonly provision?: HostProvision;

    constructor(name: string, args: VpsHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super(VPS_HOST_TYPE, name, {}, opts);
        this.hostName = name;
        const ssh = args.ssh;
        this.sshOptions = [];
        this.stateDir = expandHome(args.stateDir ?? path.join(os.homedir(), ".cache", "vps-stack", `${pulumi.getProject()}-${pulumi.getStack()}`));

        if (ssh) {
            const stateDir = this.stateDir;
            const knownHostsFile = path.join(stateDir, "known_hosts");
            const controlDir = path.join(stateDir, "ssh");
            // ssh needs the file before the provider's first dial, which happens during this very run.
            fs.mkdirSync(controlDir, { recursive: true, mode: 0o700 });
            fs.writeFileSync(knownHostsFile, knownHostsLine(ssh.address, ssh.port, ssh.hostKey), { mode: 0o600 });

            this.dockerHost = `ssh://${ssh.user}@${ssh.address}:${ssh.port}`;
            this.sshOptions = sshOptions({
                knownHostsFile,
                controlDir,
                controlPersist: ssh.controlPersist,
                privateKeyPath: ssh.privateKeyPath ? expandHome(ssh.privateKeyPath) : undefined,
            });
            this.connection = {
                host: ssh.address,
                port: ssh.port,
                user: ssh.user,
                hostKey: ssh.hostKey,
                ...(ssh.privateKeyPath
                    ? { privateKey: pulumi.secret(readKey(expandHome(ssh.privateKeyPath))) }
                    : { agentSocketPath: process.env.SSH_AUTH_SOCK }),
                dialErrorLimit: 10,
                perDialTimeout: 20,
            };
            if (args.provision) {
                this.provision = new HostProvision(
                    `${name}-provision`,
                    {
                        plan: args.provision,
                        address: ssh.address,
                        port: ssh.port,
                        deployKeyPath: ssh.privateKeyPath,
                        knownHostsFile,
                        controlDir,
                    },
                    { parent: this },
                );
                this.ready.push(this.provision);
            }
        }

        this.provider = new docker.Provider(
            `${name}-docker`,
            {
                host: this.dockerHost,
                sshOpts: ssh ? this.sshOptions : undefined,
                registryAuth: args.registryAuth,
            },
            // The engine may not exist before provisioning: the provider is configured after it.
            { parent: this, dependsOn: this.ready },
        );
        this.registerOutputs({ dockerHost: this.dockerHost });
    }

    private dataDirCommand?: command.remote.Command | command.local.Command;

    /**
     * The stack's data directory on the host ($HOME/.local/share/vps-stack/<stack> of the SSH user, which
     * it can write without sudo), as an absolute path: bind mounts need one.
     */
    dataDir(stack: string): pulumi.Output<string> {
        this.dataDirCommand ??= this.run(`${this.hostName}-data-dir`, {
            create: ensureDataDirCommand(stack),
        });
        return this.dataDirCommand.stdout.apply((out) => out.trim());
    }

    /**
     * Copies a local directory to `<data dir>/<name>/<basename of dir>` on the host, over SFTP (the
     * command provider's CopyToRemote), and removes that copy when the resource goes: its name carries
     * the content's hash, so a new site is a new copy and the old one is deleted once nothing uses it.
     * On dev the engine is local and the directory is used where it is.
     */
    copyDirectory(name: string, stack: string, localDir: string): HostDirectoryCopy {
        if (!this.connection) return { path: pulumi.output(localDir), ready: [] };
        const remoteDir = pulumi.interpolate`${this.dataDir(stack)}/${name}`;
        const copy = new command.remote.CopyToRemote(
            `${this.hostName}-copy-${name}`,
            { connection: this.connection, source: new pulumi.asset.FileArchive(localDir), remotePath: remoteDir },
            { parent: this, dependsOn: this.ready },
        );
        const mounted = pulumi.interpolate`${remoteDir}/${path.basename(localDir)}`;
        // The directory is deleted with this command, after the containers that mount it.
        const cleanup = this.run(
            `${this.hostName}-copy-${name}-dir`,
            {
                create: mounted.apply(dirExistsCommand),
                delete: remoteDir.apply(removeDirCommand),
            },
            { dependsOn: [copy] },
        );
        return { path: mounted, ready: [copy, cleanup] };
    }

    /** Runs a shell command on the host: over SSH on a VPS, locally on dev. */
    run(name: string, args: HostCommandArgs, opts?: pulumi.CustomResourceOptions): command.local.Command | command.remote.Command {
        // addPreviousOutputInEnv off: the provider would send the last output as environment variables,
        // which a default sshd (no AcceptEnv) refuses with a warning on every update and delete; and the
        // schema default differs between provider builds, which shows as a diff. Nothing here reads them.
        const common = {
            create: args.create,
            delete: args.delete,
            stdin: args.stdin,
            triggers: args.triggers,
            logging: "stdoutAndStderr" as const,
            addPreviousOutputInEnv: false,
        };
        if (this.connection) {
            const dependsOn = [...this.ready, ...dependencies(opts?.dependsOn)];
            return new command.remote.Command(name, { ...common, connection: this.connection }, { parent: this, ...opts, dependsOn });
        }
        return new command.local.Command(name, { ...common, interpreter: ["/bin/sh", "-c"] }, { parent: this, ...opts });
    }
}

export interface HostDirectoryCopy {
    /** Where the copy is on the host (for a bind mount). */
    path: pulumi.Output<string>;
    /** What a container mounting it must wait for. */
    ready: pulumi.Resource[];
}

function dependencies(d: pulumi.CustomResourceOptions["dependsOn"]): pulumi.Input<pulumi.Resource>[] {
    if (d === undefined) return [];
    return Array.isArray(d) ? d : [d as pulumi.Input<pulumi.Resource>];
}

function readKey(file: string): string {
    try {
        return fs.readFileSync(file, "utf8");
    } catch (e) {
        throw new pulumi.RunError(
            `vps-stack:host.privateKeyPath: cannot read ${file} (${(e as Error).message}); fix: pulumi config set --path 'host.privateKeyPath' ~/.ssh/id_ed25519`,
        );
    }
}
