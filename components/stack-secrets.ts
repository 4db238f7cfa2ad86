// Every password and key the stack generates, from @pulumi/random: stored encrypted in the stack's state,
// never in the repo. A rotation token (config `rotate.<name>`) is a keeper: changing it regenerates.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export const STACK_SECRETS_TYPE = "vps-stack:index:StackSecrets";

/** Length of secrets apps mark "generate" (JWT_SECRET and friends). */
export const GENERATED_SECRET_LENGTH = 64;

export interface StackSecretsArgs {
    postgresPasswordLength: number;
    redisPasswordLength: number;
    /** Names of app secrets to generate, e.g. JWT_SECRET. */
    generated: string[];
    /** A password for the WAL receiver's replication role (backup.pitr); it rotates with postgres's. */
    wal?: boolean;
    /** Rotation tokens by secret ("postgres", "redis" or a generated secret's name). */
    rotate: Record<string, string>;
}

export class StackSecrets extends pulumi.ComponentResource {
    readonly postgresPassword: pulumi.Output<string>;
    readonly redisPassword: pulumi.Output<string>;
    readonly walPassword?: pulumi.Output<string>;
    readonly generated: Record<string, pulumi.Output<string>>;

    constructor(name: string, args: StackSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super(STACK_SECRETS_TYPE, name, {}, opts);
        // Alphanumeric only: the values go into URLs and config files where quoting is fragile; 32 such
        // characters are ~190 bits.
        const password = (id: string, length: number, rotateKey: string) =>
            new random.RandomPassword(
                `${name}-${id}`,
                {
                    length,
                    special: false,
                    minLower: 2,
                    minUpper: 2,
                    minNumeric: 2,
                    keepers: { rotation: args.rotate[rotateKey] ?? "initial" },
                },
                { parent: this },
            ).result;

        this.postgresPassword = password("postgres-password", args.postgresPasswordLength, "postgres");
        this.redisPassword = password("redis-password", args.redisPasswordLength, "redis");
        if (args.wal) this.walPassword = password("postgres-wal-password", args.postgresPasswordLength, "postgres");
        this.generated = Object.fromEntries(
            [...new Set(args.generated)].sort().map((n) => [n, password(`secret-${n.toLowerCase().replace(/_/g, "-")}`, GENERATED_SECRET_LENGTH, n)]),
        );
        this.registerOutputs({});
    }
}
