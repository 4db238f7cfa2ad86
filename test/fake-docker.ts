// A fake `docker` (and `curl`/`wget`) for running the release scripts (render/release.ts) without a
// Docker daemon: put `bin` first on PATH. It records every call's argv exactly (one file per call, NUL
// separated, so any value reads back unchanged) and answers from files the test writes:
//   state/<container>   `docker inspect` states, one per line; each call takes the next, the last repeats
//                       (no file: the container is missing, inspect fails). state.default: for any name.
//   image-id            `docker inspect -f {{.Image}}`   (default sha256:new)
//   repo-digest         `docker image inspect`           (default: none)
//   workers             `docker exec` (the drain's count of old nginx workers), one per call, last repeats;
//                       no file: exec fails (no proxy)
//   run-exit            exit code of `docker run` (default: run the -c script with sh, as the container would)
//   curl-fail           URLs that the fake curl and wget do not get an answer from, one per line
import * as fs from "fs";
import * as path from "path";

const DOCKER = `#!/bin/sh
d=$FAKE_DOCKER_DIR
n=$(ls "$d/calls" | wc -l)
printf '%s\\0' "$@" > "$d/calls/$((1000000 + n))"
# The next line of a script file; the last one repeats.
next() {
    [ -f "$1" ] || return 1
    line=$(head -n 1 "$1")
    if [ "$(wc -l < "$1")" -gt 1 ]; then tail -n +2 "$1" > "$1.tmp" && mv "$1.tmp" "$1"; fi
    printf '%s\\n' "$line"
}
case "$1" in
inspect)
    fmt=$3 name=$4
    case "$fmt" in
        *State.Status*)
            case "$name" in
                */*|.*|"") f=$d/state.default ;;
                *) f=$d/state/$name; [ -f "$f" ] || f=$d/state.default ;;
            esac
            next "$f" || { echo "Error: No such object: $name" >&2; exit 1; } ;;
        *.Image*) cat "$d/image-id" 2>/dev/null || echo sha256:new ;;
        *) echo "fake docker: unexpected inspect format $fmt" >&2; exit 2 ;;
    esac ;;
image) [ -f "$d/repo-digest" ] && cat "$d/repo-digest"; exit 0 ;;
logs) echo "line one of $4"; echo "line two of $4 (stderr)" >&2 ;;
rm|rmi|stop) exit 0 ;;
run)
    [ -f "$d/run-exit" ] && exit "$(cat "$d/run-exit")"
    while [ $# -gt 0 ] && [ "$1" != --entrypoint ]; do shift; done
    shift 3
    exec sh "$@" ;;
exec) next "$d/workers" || exit 1 ;;
*) echo "fake docker: unexpected command $1" >&2; exit 2 ;;
esac
`;

const HTTP_CLIENT = `#!/bin/sh
for u; do :; done
if [ -f "$FAKE_DOCKER_DIR/curl-fail" ] && grep -qxF -- "$u" "$FAKE_DOCKER_DIR/curl-fail"; then exit 22; fi
exit 0
`;

export interface FakeDocker {
    dir: string;
    bin: string;
    /** Environment for a script run: the fakes first on PATH. */
    env: NodeJS.ProcessEnv;
    /** Every docker call so far, in order, as argv arrays. */
    calls(): string[][];
    states(container: string, ...states: string[]): void;
    set(file: "state.default" | "image-id" | "repo-digest" | "workers" | "run-exit" | "curl-fail", lines: (string | number)[]): void;
}

export function fakeDocker(dir: string): FakeDocker {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.mkdirSync(path.join(dir, "calls"), { recursive: true });
    fs.mkdirSync(path.join(dir, "state"), { recursive: true });
    fs.writeFileSync(path.join(bin, "docker"), DOCKER, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "curl"), HTTP_CLIENT, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "wget"), HTTP_CLIENT, { mode: 0o755 });
    return {
        dir,
        bin,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_DOCKER_DIR: dir },
        calls: () =>
            fs
                .readdirSync(path.join(dir, "calls"))
                .sort()
                .map((f) => fs.readFileSync(path.join(dir, "calls", f), "utf8").split("\0").slice(0, -1)),
        states: (container, ...states) => fs.writeFileSync(path.join(dir, "state", container), states.join("\n") + "\n"),
        set: (file, lines) => fs.writeFileSync(path.join(dir, file), lines.join("\n") + "\n"),
    };
}
