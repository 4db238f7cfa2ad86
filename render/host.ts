// Shell commands the stack runs on its host for its own files (the data directory, copied sites).
import { shellWord } from "../sinks/shell";

/**
 * Creates the stack's data directory ($HOME/.local/share/vps-stack/<stack> of the SSH user, which it can
 * write without sudo) and prints its absolute path: bind mounts need one.
 */
export function ensureDataDirCommand(stack: string): string {
    return `d="$HOME/.local/share/vps-stack/${stack}" && mkdir -p "$d" && cd "$d" && pwd -P`;
}

export const dirExistsCommand = (dir: string) => `test -d ${shellWord(dir)}`;
export const removeDirCommand = (dir: string) => `rm -rf ${shellWord(dir)}`;
