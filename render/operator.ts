// Commands an operator runs from a workstation (stack outputs): on a VPS they go through ssh, on dev they
// run here.

/** Where the stack's host is reached; undefined on dev (the local engine). */
export interface SshTarget {
    address: string;
    port: number;
    user: string;
}

/** `cmd` as the operator types it: through ssh on a VPS, as is on dev. */
export function onHost(ssh: SshTarget | undefined, cmd: string): string {
    return ssh ? `ssh -p ${ssh.port} ${ssh.user}@${ssh.address} ${cmd}` : cmd;
}
