// vps-stack's policy pack: `pulumi preview --policy-pack policy` judges every resource of the stack, and the
// whole stack, against the program's invariants (policies.ts). Mandatory policies fail the preview.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("vps-stack", { policies });
