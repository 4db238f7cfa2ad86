// What every component of a stack is given: the host it runs on and the names it derives from.
import * as pulumi from "@pulumi/pulumi";
import type { AcmeClient } from "./acme-client";
import type { VpsHost } from "./vps-host";

export interface StackScope {
    host: VpsHost;
    /** `vps-stack-<stack>`: the prefix of every container, network and volume name. */
    prefix: string;
    stack: string;
}

/** Where a proxy takes its certificate from: files (made by the stack's CA or provided), or the ACME client's. */
export type ServedCertificate =
    | { source: "files"; certPem: pulumi.Input<string>; keyPem: pulumi.Input<string> }
    | { source: "acme"; client: AcmeClient };
