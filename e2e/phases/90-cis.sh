# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "CIS Docker Benchmark"
# docker-bench-security (unmodified upstream, from the vendor folder beside the repository, like the
# toolchain's archives) over the first stack's containers, sections container_images and container_runtime.
# Its warnings, as "check-id service" pairs (the container's vps-stack.service label, "app" for an app,
# "-" for a check about the host or its images), must be exactly those in docs/cis-warnings.tsv.
CIS_ARCHIVE="${VPS_STACK_VENDOR:-$ROOT/../shared/vendor}/docker-bench-security-ff26d67.tar.gz"
CIS_SERVICES=" postgres redis backup wal nginx offsite acme "
cis_warnings() { # the bench's warnings over STACK's containers, sorted "id service" lines
    local dir out
    [ -f "$CIS_ARCHIVE" ] || { echo "no $CIS_ARCHIVE (set VPS_STACK_VENDOR)"; return 1; }
    dir=$(mktemp -d "$E2E/cis.XXXXXX") && out="$dir/out" && mkdir "$out" || return 1
    tar -xzf "$CIS_ARCHIVE" -C "$dir" || return 1
    (cd "$dir"/docker-bench-security-* && sh docker-bench-security.sh -c container_images,container_runtime -i "vps-stack-$STACK-" -l "$out/bench.log") >>"$LOG" 2>&1 || return 1
    [ -s "$out/bench.log.json" ] || { echo "the bench wrote no bench.log.json"; return 1; }
    local services
    services=$(docker ps --filter "label=vps-stack.stack=$STACK" --format '{{.Names}} {{.Label "vps-stack.service"}}')
    node -e '
        const [json, services, known] = process.argv.slice(1);
        const svc = new Map(services.trim().split("\n").map((l) => l.split(" ")));
        const role = (s) => (known.includes(` ${s} `) ? s : "app");
        const out = new Set();
        for (const section of JSON.parse(require("fs").readFileSync(json, "utf8")).tests ?? []) {
            for (const r of section.results ?? []) {
                if (r.result !== "WARN") continue;
                const names = (r.items ?? []).filter((i) => svc.has(i));
                if (names.length === 0) out.add(`${r.id} -`);
                for (const n of names) out.add(`${r.id} ${role(svc.get(n))}`);
            }
        }
        console.log([...out].sort().join("\n"));' "$out/bench.log.json" "$services" "$CIS_SERVICES"
}
cis_expected() { grep -v '^#' "$ROOT/docs/cis-warnings.tsv" | awk -F '\t' 'NF >= 3 { print $1 " " $2 }' | sort -u; }
cis_as_documented() {
    local actual expected
    actual=$(cis_warnings) || { echo "$actual"; return 1; }
    expected=$(cis_expected)
    note "warnings: $(tr '\n' ',' <<<"$actual")"
    if [ "$actual" != "$expected" ]; then
        echo "the bench's warnings differ from docs/cis-warnings.tsv (< documented, > found):"
        diff <(echo "$expected") <(echo "$actual") | grep '^[<>]' | tee -a "$NOTES"
        return 1
    fi
    echo "$(wc -l <<<"$actual") warnings, as documented"
}
check "C1. docker-bench-security (container images and runtime) on the stack's containers warns only as docs/cis-warnings.tsv says" cis_as_documented
pids_limited() { # every running container of the stack has its declared PIDs limit and a read-only root
    local c bad=0 want got ro
    for c in $(docker ps --filter "label=vps-stack.stack=$STACK" --format '{{.Names}}'); do
        want=$(docker inspect -f '{{index .Config.Labels "vps-stack.pids-limit"}}' "$c")
        got=$(docker inspect -f '{{.HostConfig.PidsLimit}}' "$c")
        ro=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$c")
        echo "$c pids=$got (declared $want) readOnly=$ro"
        [ -n "$want" ] && [ "$got" = "$want" ] || bad=1
        [ "$ro" = true ] || bad=1
    done
    return "$bad"
}
check "C2. every container of the stack runs with its declared PIDs limit and a read-only root" pids_limited
files_volumes() { # files reach containers read-only, and every replacement so far took its old files volume away
    local c v rw bad=0 n=0
    for c in $(docker ps -a --filter "label=vps-stack.stack=$STACK" --format '{{.Names}}'); do
        while read -r v rw; do
            case $v in *-files-*) [ "$rw" = false ] || { echo "$c mounts $v writable"; bad=1; } ;; esac
        done < <(docker inspect -f '{{range .Mounts}}{{.Name}} {{.RW}}{{"\n"}}{{end}}' "$c")
    done
    for v in $(docker volume ls -q --filter "label=vps-stack.stack=$STACK" | grep -- '-files-'); do
        n=$((n + 1))
        [ -n "$(docker ps -a -q --filter "volume=$v")" ] || { echo "$v is left with no container"; bad=1; }
    done
    echo "$n files volumes of the stack"
    [ "$n" -gt 0 ] && return "$bad"
}
check "C4. the files volumes are mounted read-only, and none is left behind by the replacements and releases before" files_volumes
check "C3. pulumi preview --expect-no-changes after the hardening (the values read back as written)" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
