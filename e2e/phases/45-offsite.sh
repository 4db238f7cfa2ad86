# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase offsite
# The off-site copy and the loss of the VPS. A real S3-compatible store (SeaweedFS, built from its Go
# module) listens on the Docker bridge's gateway: an address of this machine that the uploader's network
# reaches through the host. The drill: rows written continuously, a moment T noted, then the "VPS" is lost
# at once (the database, the WAL receiver and the uploader killed; the stack destroyed with its volumes;
# the backup directory deleted); the same stack is deployed again as on a new host, and the database is
# restored from the store alone: to the latest write (at most rpoSeconds lost), then to T (every row
# committed before T, none after).
S3_DIR="$E2E/s3"
RPO=20
offsite_cmd() { run_ssh_line "$(out "$STACK" backup --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).offsite.commands[process.argv[1]])' "$1")"; }
uploaded_since() { # uploaded_since EPOCH: wait (bounded) until an upload that started after EPOCH succeeded
    local deadline=$((SECONDS + 6 * RPO)) started
    while ((SECONDS < deadline)); do
        started=$(sed -n 's/^started=//p' "$E2E/backups/$STACK/offsite-last-success" 2>/dev/null)
        [ -n "$started" ] && [ "$started" -ge "$1" ] && return 0
        sleep 1
    done
    echo "no successful upload started after $1 within $((6 * RPO))s"
    cat "$E2E/backups/$STACK/offsite-last-failure" 2>/dev/null
    return 1
}

start_store() {
    local gw
    gw=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}') && [ -n "$gw" ] || { echo "no gateway on Docker's bridge network"; return 1; }
    bash e2e/lib/seaweedfs.sh build >>"$LOG" 2>&1 || { echo "SeaweedFS could not be built (e2e/lib/seaweedfs.sh build)"; return 1; }
    eval "$(bash e2e/lib/seaweedfs.sh start "$S3_DIR" "$gw")" || return 1
    echo "store at $S3_ENDPOINT"
}
enable_offsite() {
    local secret
    secret=$(sed -n 's/^aws_secret_access_key *= *//p' "$S3_CREDENTIALS") && [ -n "$secret" ] || { echo "no secret key in $S3_CREDENTIALS"; return 1; }
    pulumi config set --stack "$STACK" --path backup.rpoSeconds "$RPO" &&
        pulumi config set --stack "$STACK" --path backup.offsite.endpoint "$S3_ENDPOINT" &&
        pulumi config set --stack "$STACK" --path backup.offsite.insecureHttp true &&
        pulumi config set --stack "$STACK" --path backup.offsite.bucket vps-stack-e2e &&
        pulumi config set --stack "$STACK" --path backup.offsite.pathStyle true &&
        pulumi config set --stack "$STACK" --path backup.offsite.accessKeyId "$S3_ACCESS_KEY_ID" &&
        pulumi config set --stack "$STACK" --secret --path secrets.OFFSITE_SECRET_ACCESS_KEY "$secret" &&
        pulumi config set --stack "$STACK" --secret --path secrets.OFFSITE_PASSPHRASE "e2e passphrase $(head -c 12 /dev/urandom | base64)" &&
        pulumi config set --stack "$STACK" --path 'apps[0].volumes[0].name' files &&
        pulumi config set --stack "$STACK" --path 'apps[0].volumes[0].path' /srv/files || return 1
    local start=$SECONDS
    up "$STACK" || return 1
    uploaded_since "$(($(date +%s) - 5))" || return 1
    note "first upload off-site $((SECONDS - start))s after the up started"
    offsite_cmd check
}
# Encrypted on the VPS: a marker written into the database is in the local WAL, and in no file of the store.
encrypted() {
    local marker
    marker="offsite-marker-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql_e2e "CREATE TABLE IF NOT EXISTS e2e_marker (v text); INSERT INTO e2e_marker VALUES ('$marker')" >/dev/null || return 1
    local t
    t=$(date +%s)
    uploaded_since "$t" || return 1
    grep -rlqa -- "$marker" "$E2E/backups/$STACK/wal" || { echo "the marker is not even in the local WAL: the check proves nothing"; return 1; }
    if grep -rlqa -- "$marker" "$S3_DIR"; then echo "the marker is readable in the store: $(grep -rla -- "$marker" "$S3_DIR" | head -3)"; return 1; fi
}

# An app volume's files: written, archived (the output's 'volumes' command), shipped with the rest.
VOLUME="vps-stack-$STACK-api-files"
volume_sums() { docker run --rm --network none -v "$1:/v:ro" --entrypoint sh postgres:16-alpine -c 'cd /v && find . -type f | sort | xargs -r sha256sum'; }
volume_archived() {
    docker run --rm --network none -v "$VOLUME:/v" --entrypoint sh postgres:16-alpine -c \
        'head -c 300000 /dev/urandom >/v/blob.bin && mkdir -p /v/sub && echo "uploaded by a user" >/v/sub/note.txt && chmod 640 /v/sub/note.txt' || return 1
    volume_sums "$VOLUME" >"$E2E/volume.sha256" || return 1
    [ "$(wc -l <"$E2E/volume.sha256")" = 2 ] || { echo "the files are not in the volume"; return 1; }
    local t
    t=$(date +%s)
    run_output_cmd volumes || return 1
    uploaded_since "$((t + 1))"
}

# The writer commits a row every 100 ms and logs "n epoch.ns" once the commit returned.
WRITER_LOG="$E2E/dr-writer.log"
start_writer() {
    psql_e2e "CREATE TABLE IF NOT EXISTS e2e_dr (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())" >/dev/null || return 1
    : >"$WRITER_LOG"
    (
        for n in $(seq 1 3000); do
            at=$(docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "INSERT INTO e2e_dr (n) VALUES ($n) RETURNING extract(epoch FROM at)" 2>/dev/null) || exit 0
            echo "$n $at" >>"$WRITER_LOG"
            sleep 0.1
        done
    ) &
    WRITER_PID=$!
}
lose_the_vps() {
    start_writer || return 1
    sleep 8
    DR_T=$(psql_e2e "SELECT clock_timestamp()") && DR_T_EPOCH=$(psql_e2e "SELECT extract(epoch FROM '$DR_T'::timestamptz)") || return 1
    echo "T = $DR_T"
    # Long enough for T's WAL to be off-site, and for writes after T.
    sleep $((RPO + 10))
    kill "$WRITER_PID" 2>/dev/null
    docker kill "vps-stack-$STACK-offsite" "vps-stack-$STACK-wal" "vps-stack-$STACK-postgres" >/dev/null || return 1
    LOSS_EPOCH=$(date +%s.%N)
    wait "$WRITER_PID" 2>/dev/null
    LAST_ROW=$(tail -n 1 "$WRITER_LOG")
    echo "lost at $LOSS_EPOCH; the writer's last acknowledged row: $LAST_ROW"
    pulumi destroy --yes --non-interactive --stack "$STACK" || return 1
    [ -z "$(docker volume ls -q --filter "label=vps-stack.stack=$STACK")" ] || { echo "volumes left after destroy"; return 1; }
    rm -rf "$E2E/backups/$STACK"
}
new_host_up() {
    up "$STACK" || return 1
    [ "$(psql_e2e "SELECT to_regclass('e2e_dr') IS NULL")" = t ] || { echo "the new database is not empty"; return 1; }
    # On a new host the uploader holds: an empty directory must not become the newest off-site snapshot.
    sleep $((RPO / 2 + 5))
    [ ! -e "$E2E/backups/$STACK/offsite-last-success" ] || { echo "the uploader uploaded the new host's empty directory"; return 1; }
}
restored_latest() {
    local start=$SECONDS max lost
    restore_pitr --from-offsite --confirm || return 1
    note "restore from off-site to the latest write: $((SECONDS - start))s"
    max=$(psql_e2e "SELECT extract(epoch FROM max(at)) FROM e2e_dr") || return 1
    lost=$(awk -v l="$LOSS_EPOCH" -v m="$max" 'BEGIN { printf "%.1f", l - m }')
    note "writes lost with the VPS: the last $lost s (rpoSeconds $RPO); rows $(psql_e2e 'SELECT count(*) FROM e2e_dr') of ${LAST_ROW%% *} acknowledged"
    awk -v l="$lost" -v r="$RPO" 'BEGIN { exit !(l <= r) }' || { echo "lost $lost s of writes, more than rpoSeconds ($RPO)"; return 1; }
    # No hole: every acknowledged row up to the newest restored one is there.
    [ "$(psql_e2e "SELECT count(*) = max(n) FROM e2e_dr")" = t ] || { echo "rows missing below the newest restored one"; return 1; }
    [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ] || { echo "older rows lost"; return 1; }
}
restored_to_t() {
    local snapshot expected got
    # The snapshot the first restore used: the newest from before the loss (uploads resumed since).
    snapshot=$(sed -n 's/^restore: off-site snapshot \([0-9a-f]*\).*/\1/p' "$LOG" | tail -n 1)
    [ -n "$snapshot" ] || { echo "the first restore did not say which snapshot it used"; return 1; }
    restore_pitr --from-offsite --snapshot "$snapshot" --to "$DR_T" --confirm || return 1
    expected=$(awk -v t="$DR_T_EPOCH" '$2 <= t' "$WRITER_LOG" | wc -l)
    got=$(psql_e2e "SELECT count(*) FROM e2e_dr") || return 1
    [ "$(psql_e2e "SELECT count(*) FROM e2e_dr WHERE at > '$DR_T'")" = 0 ] || { echo "rows after T are there"; return 1; }
    [ "$got" -ge "$expected" ] || { echo "$got rows, expected the $expected committed before T"; return 1; }
    note "restore from off-site to T: $got rows, $expected acknowledged before T"
}
# The weekly verification test-restores what is off-site: the newest dump, fetched back from the store.
verified_offsite() {
    local out
    offsite_cmd fetch || return 1
    out=$(run_output_cmd verify 2>&1)
    echo "$out"
    grep -q "(the off-site copy)" <<<"$out" && grep -q "verification ok" <<<"$out"
}
volume_restored() {
    local snapshot
    snapshot=$(sed -n 's/^restore: off-site snapshot \([0-9a-f]*\).*/\1/p' "$LOG" | head -n 1)
    [ -z "$(volume_sums "$VOLUME")" ] || { echo "the new host's volume is not empty"; return 1; }
    restore_pitr --volume api-files --from-offsite --snapshot "$snapshot" --confirm || return 1
    diff <(volume_sums "$VOLUME") "$E2E/volume.sha256" || { echo "the volume's files differ from before the loss"; return 1; }
    health_ok "$STACK" "$HTTPS_PORT" >/dev/null || { echo "the app does not answer after the volume's restore"; return 1; }
}
# The new host's backups go on: a dump, the uploader (adopted), and the backup job's check.
adopted() { run_output_cmd now && offsite_cmd now && offsite_cmd check && run_output_cmd check; }
disable_offsite() {
    pulumi config rm --stack "$STACK" --path backup.offsite && pulumi config rm --stack "$STACK" --path backup.rpoSeconds &&
        pulumi config rm --stack "$STACK" --path 'apps[0].volumes' &&
        pulumi config rm --stack "$STACK" --path secrets.OFFSITE_SECRET_ACCESS_KEY && pulumi config rm --stack "$STACK" --path secrets.OFFSITE_PASSPHRASE || return 1
    if ! up "$STACK"; then
        docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "vps-stack-$STACK-backup" 2>&1 | tail -n 5
        return 1
    fi
    pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
}

check "O1. a real S3-compatible store runs on this machine (SeaweedFS on Docker's bridge gateway)" start_store
check "O2. with backup.offsite, pulumi up starts the uploader; its first upload succeeds and its check passes" enable_offsite
check "O3. encrypted before it leaves: a row's marker is in the local WAL and in no file of the store" encrypted
check "O3b. an app volume's files are archived and shipped with the rest" volume_archived
check "O4. the VPS is lost: writes running, T noted, database and uploader killed, stack destroyed with its volumes, backups deleted" lose_the_vps
check "O5. the same stack on a \"new host\": an empty database, and the uploader holds instead of uploading the empty directory" new_host_up
check "O6. scripts/restore.sh --from-offsite: the latest write, at most rpoSeconds lost, no hole" restored_latest
check "O7. scripts/restore.sh --from-offsite --to T: every row committed before T, none after" restored_to_t
check "O7b. scripts/restore.sh --volume --from-offsite: the app volume's files come back byte for byte" volume_restored
check "O8. backups go on on the new host: a dump, an upload (the uploader adopted its directory), both checks pass" adopted
check "O8b. the verification test-restores the newest dump fetched back from the store, not the local file" verified_offsite
check "O9. the off-site copy and the volume removed from the config: pulumi up removes them, no change left" disable_offsite
docker volume ls -q --filter "label=vps-stack.stack=$STACK" --filter label=vps-stack.safety-copy | xargs -r docker volume rm >>"$LOG" 2>&1
bash e2e/lib/seaweedfs.sh stop "$S3_DIR" >>"$LOG" 2>&1
