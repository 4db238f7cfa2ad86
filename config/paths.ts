// Paths from config, as an operator types them on the deploying machine.
import * as os from "os";
import * as path from "path";

/** "~/x" is the deploying user's home, as in a shell; other paths are left as they are. */
export function expandHome(p: string): string {
    return p.startsWith("~/") ? path.join(os.homedir(), p.slice(2)) : p;
}
