#!/usr/bin/env bash
# Point-in-time recovery prototype for docs/decisions/0003-backups.md, candidate (c): PostgreSQL's own
# pg_basebackup + pg_receivewal (the binaries of the postgres image: nothing added to the server) and
# restic for encryption and the off-site upload to an S3-compatible store. Measures, on this machine:
#   - base backup time (pg_basebackup, then restic to the store) for a pgbench database of PITR_SCALE,
#   - the RPO: with a row committed every 100 ms, the "host" is lost at once (postgres, the WAL receiver
#     and the uploader killed with SIGKILL, data and local backups deleted); restore to latest from the
#     store alone and count the committed rows that are missing,
#   - a restore to a timestamp between two known commits: exactly the rows before it,
#   - the restore time (RTO: restic restore + untar + WAL replay),
#   - that the store holds no plaintext (every object downloaded and searched for a marker that every
#     row carries, with a plaintext object as a positive control).
# Prints one "RESULT key=value" line per figure. Not in CI.
#
#   bash bench/pitr-prototype.sh
#
# Settings (environment): PITR_SCALE (pgbench scale, default 20, about 300 MB), PITR_WRITE_SECONDS
# (writes after the base backup, default 150), PITR_SHIP_INTERVAL (seconds between uploads of the WAL
# directory, default 30: half of backup.rpoSeconds' default), PITR_S3=seaweedfs|moto (default:
# seaweedfs when its binary is in the cache, else moto; PITR_S3=seaweedfs builds it, about 7 minutes
# cold), PITR_WORK (scratch directory, default /tmp/proto-pitr-run, deleted at the start and at the end
# unless PITR_KEEP=1).
#
# Runs as root on the host with Debian's PostgreSQL 15 (the e2e's postgres stand-in runs the same
# binaries), as processes on loopback, not containers: the e2e's fault phase restarts dockerd. Installs
# what it needs: postgresql-15 and restic with apt-get; the S3 server either from the cache
# (${VPS_STACK_CACHE:-~/.cache/vps-stack}/bench/weed, SeaweedFS built from its Go module and started by
# e2e/lib/seaweedfs.sh) or moto's standalone server from PyPI in a venv. Bounded: one database, one writer at
# 10 rows/s, a few hundred requests to the local store; everything is killed and deleted on exit.
set -euo pipefail

SCALE=${PITR_SCALE:-20}
WRITE_SECONDS=${PITR_WRITE_SECONDS:-150}
SHIP_INTERVAL=${PITR_SHIP_INTERVAL:-30}
WORK=${PITR_WORK:-/tmp/proto-pitr-run}
CACHE="${VPS_STACK_CACHE:-${HOME:-/root}/.cache/vps-stack}/bench"
PGBIN=/usr/lib/postgresql/15/bin
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MARKER=PITR-PLAINTEXT-MARKER

log() { printf '[pitr %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
result() { printf 'RESULT %s\n' "$*" | tee -a "$WORK/results.txt"; }
ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
STORE_PID=
cleanup() {
    set +e
    for pid in "${PIDS[@]}" $STORE_PID; do kill -9 "$pid" 2>/dev/null; done
    for d in "$WORK"/pg "$WORK"/restore-*/data; do
        if [ -f "$d/postmaster.pid" ]; then kill -9 "$(head -n 1 "$d/postmaster.pid")" 2>/dev/null; fi
    done
    sleep 1
    if [ "${PITR_KEEP:-}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and PostgreSQL runs as the postgres user)"

# ------------------------------------------------------------------------------------------ install
install_tools() {
    local missing=()
    [ -x "$PGBIN/postgres" ] || missing+=(postgresql-15 postgresql-client-15)
    command -v restic >/dev/null || missing+=(restic)
    command -v python3 >/dev/null || missing+=(python3 python3-venv)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # boto3 reads the store back for the plaintext check (and moto is the fallback store).
    if [ ! -x "$CACHE/venv/bin/moto_server" ]; then
        log "pip install moto[server] (venv in $CACHE/venv)"
        python3 -m venv "$CACHE/venv"
        "$CACHE/venv/bin/pip" install -q 'moto[server]' boto3
    fi
}

# ------------------------------------------------------------------------------------------ the store
# SeaweedFS is built and started by e2e/lib/seaweedfs.sh, the tests' and the e2e's store too.
S3_PORT=
S3_LOG=
start_store() {
    # The store's key is a file too (restic and boto3 both read the AWS shared credentials file).
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    if [ "$S3_KIND" = seaweedfs ]; then
        local out
        out=$(bash "$ROOT/e2e/lib/seaweedfs.sh" start "$WORK/s3" 127.0.0.1) || die "the S3 server did not start"
        eval "$out"
        S3_PORT=${S3_ENDPOINT##*:}
        STORE_PID=$S3_PID
        S3_LOG="$WORK/s3/weed.log"
        export AWS_SHARED_CREDENTIALS_FILE="$S3_CREDENTIALS"
    else
        S3_PORT=$(free_port)
        S3_LOG="$WORK/s3.log"
        local secret
        secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
        (umask 077 && printf '[default]\naws_access_key_id = proto-access-key\naws_secret_access_key = %s\n' "$secret" >"$WORK/aws-credentials")
        export AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
        "$CACHE/venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$S3_LOG" 2>&1 &
        STORE_PID=$!
    fi
    local i
    for i in $(seq 1 60); do
        if "$CACHE/venv/bin/python" - "$S3_PORT" <<'PY' 2>/dev/null; then return 0; fi
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
try:
    s3.create_bucket(Bucket="proto-backups")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
s3.list_objects_v2(Bucket="proto-backups")
PY
        sleep 1
        [ "$i" = 60 ] && { tail -n 20 "$S3_LOG" >&2; die "the S3 server did not start"; }
    done
}

store_mb() {
    "$CACHE/venv/bin/python" - "$S3_PORT" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
n = sum(o["Size"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="proto-backups") for o in p.get("Contents", []))
print(f"{n / 1048576:.1f}")
PY
}

# ------------------------------------------------------------------------------------------ PostgreSQL
pg() { runuser -u postgres -- "$PGBIN/$1" "${@:2}"; }
psql_q() { "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$1" -U postgres -d app -c "$2"; }

start_pg() { # DATADIR PORT
    pg pg_ctl -D "$1" -o "-p $2 -k $WORK/sock" -l "$WORK/logs/$(basename "$(dirname "$1")")-$(basename "$1").log" -w -t 600 start >/dev/null
}

wait_promoted() { # PORT
    local i
    for i in $(seq 1 1200); do
        [ "$(psql_q "$1" 'select pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
        sleep 0.5
    done
    die "recovery did not finish"
}

# ------------------------------------------------------------------------------------------ run
if [ -d "$WORK" ]; then
    for d in "$WORK"/pg "$WORK"/restore-*/data; do
        if [ -f "$d/postmaster.pid" ]; then kill -9 "$(head -n 1 "$d/postmaster.pid")" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
fi
mkdir -p "$WORK" "$CACHE" "$WORK/sock" "$WORK/logs" "$WORK/local/wal" "$WORK/local/base"
chown postgres "$WORK/sock" "$WORK/logs"
install_tools
if [ -n "${PITR_S3:-}" ]; then
    S3_KIND=$PITR_S3
elif [ -x "$CACHE/weed" ]; then
    S3_KIND=seaweedfs
else
    S3_KIND=moto
fi
[ "$S3_KIND" = seaweedfs ] && { bash "$ROOT/e2e/lib/seaweedfs.sh" build >/dev/null || die "no SeaweedFS binary and no go to build it"; }
start_store
result "store=$S3_KIND"

# Secrets are files: the replication password (pgpass) and restic's passphrase.
umask 077
printf '%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >"$WORK/restic-passphrase"
PGPW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '127.0.0.1:*:*:postgres:%s\n' "$PGPW" >"$WORK/pgpass"
printf '%s\n' "$PGPW" >"$WORK/pwfile"
chown postgres "$WORK/pwfile"
export PGPASSFILE="$WORK/pgpass"
umask 022
export RESTIC_REPOSITORY="s3:http://127.0.0.1:$S3_PORT/proto-backups/stack" RESTIC_PASSWORD_FILE="$WORK/restic-passphrase"
export RESTIC_CACHE_DIR="$WORK/restic-cache"
RESTIC=(restic -o s3.bucket-lookup=path -o s3.region=us-east-1 -q)
"${RESTIC[@]}" init --repository-version 2 >/dev/null

PORT=$(free_port)
mkdir -p "$WORK/pg"
chown postgres "$WORK/pg"
pg initdb -D "$WORK/pg" -U postgres --pwfile="$WORK/pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
cat >>"$WORK/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 4
max_slot_wal_keep_size = '2GB'
shared_buffers = '256MB'
timezone = 'UTC'
CONF
echo 'host replication postgres 127.0.0.1/32 scram-sha-256' >>"$WORK/pg/pg_hba.conf"
start_pg "$WORK/pg" "$PORT"
runuser -u postgres -- "$PGBIN/createdb" -h "$WORK/sock" -p "$PORT" app

# The WAL receiver: a replication slot, so WAL it has not received stays on the server (capped by
# max_slot_wal_keep_size); --synchronous flushes every write, so the local copy lags by milliseconds.
"$PGBIN/pg_receivewal" -h 127.0.0.1 -p "$PORT" -U postgres --slot=proto_wal --create-slot --if-not-exists -w
"$PGBIN/pg_receivewal" -h 127.0.0.1 -p "$PORT" -U postgres --slot=proto_wal -D "$WORK/local/wal" --synchronous -w -n >"$WORK/receivewal.log" 2>&1 &
PIDS+=($!)

t0=$(ms)
"$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q app >/dev/null 2>&1
result "pgbench_init_seconds=$(secs_since "$t0") db_size_mb=$(psql_q "$PORT" "select pg_database_size('app')/1048576")"
psql_q "$PORT" "create table ticks (id bigserial primary key, ts timestamptz not null default clock_timestamp(), note text not null)"

# Base backup (tar, uncompressed so restic deduplicates between base backups, and compresses).
t0=$(ms)
"$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -w -D "$WORK/local/base/base-1" -Ft -X fetch --checkpoint=fast
result "basebackup_local_seconds=$(secs_since "$t0") basebackup_mb=$(du -sm "$WORK/local/base" | cut -f 1)"
t0=$(ms)
"${RESTIC[@]}" backup --host proto --tag base "$WORK/local/base"
result "basebackup_upload_seconds=$(secs_since "$t0") store_mb_after_base=$(store_mb)"

# Steady writes: one autocommitted insert every 100 ms over one session; ids tell the order.
(
    while :; do
        echo "insert into ticks (note) values ('$MARKER ' || clock_timestamp());"
        sleep 0.1
    done | "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d app >/dev/null 2>&1
) &
PIDS+=($!)
WRITER=$!

# The uploader: the WAL directory (finished segments and the current .partial) every SHIP_INTERVAL s.
(
    while :; do
        s=$(ms)
        restic -o s3.bucket-lookup=path -o s3.region=us-east-1 -q backup --host proto --tag wal "$WORK/local/wal" &&
            printf '%s %s\n' "$s" "$(ms)" >>"$WORK/shipped"
        sleep "$SHIP_INTERVAL"
    done
) &
PIDS+=($!)
SHIPPER=$!

log "writing for ${WRITE_SECONDS}s with uploads every ${SHIP_INTERVAL}s"
sleep "$WRITE_SECONDS"

# Positive control for the plaintext check: the marker is in the local WAL.
local_hits=$(grep -a -l -r "$MARKER" "$WORK/local/wal" | wc -l)

# The host is lost: everything dies at once.
pm=$(head -n 1 "$WORK/pg/postmaster.pid")
disaster=$(ms)
pkill -9 -P "$SHIPPER" 2>/dev/null || true
kill -9 "$SHIPPER" "$pm" 2>/dev/null || true
for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
wait "${PIDS[@]}" 2>/dev/null || true
pkill -9 -P "$WRITER" 2>/dev/null || true
sleep 3
shipped_count=$(wc -l <"$WORK/shipped")
result "wal_uploads=$shipped_count wal_upload_seconds_max=$(awk '{ d = ($2 - $1) / 1000; if (d > m) m = d } END { printf "%.1f", m }' "$WORK/shipped")"
# Worst case: the start of the last upload that finished before the disaster, to the disaster.
last_start=$(tail -n 1 "$WORK/shipped" | cut -d ' ' -f 1)

# Ground truth: crash recovery of the killed server's own data directory says what was committed.
rm -f "$WORK/pg/postmaster.pid"
start_pg "$WORK/pg" "$PORT"
psql_q "$PORT" "copy (select id, extract(epoch from ts) from ticks order by id) to stdout with csv" >"$WORK/truth.csv"
pg pg_ctl -D "$WORK/pg" -m immediate stop >/dev/null
truth_rows=$(wc -l <"$WORK/truth.csv")
truth_last=$(tail -n 1 "$WORK/truth.csv")
result "committed_rows=$truth_rows"

# ... and then gone, with the local backups.
rm -rf "$WORK/pg" "$WORK/local" "$WORK/restic-cache"

restore() { # NAME [TARGET_TIME] -> restored data directory on port RPORT
    local r="$WORK/restore-$1" t
    mkdir -p "$r"
    t=$(ms)
    RESTIC_CACHE_DIR="$r/cache" "${RESTIC[@]}" restore latest --tag base --target "$r/files"
    RESTIC_CACHE_DIR="$r/cache" "${RESTIC[@]}" restore latest --tag wal --target "$r/files"
    local fetch
    fetch=$(secs_since "$t")
    local base wal
    base=$(find "$r/files" -type d -name 'base-*' | sort | tail -n 1)
    wal=$(find "$r/files" -type d -name wal | head -n 1)
    # The segment being written when the host died: the newest .partial becomes a segment.
    local partial
    partial=$(find "$wal" -name '*.partial' | sort | tail -n 1)
    [ -n "$partial" ] && mv "$partial" "${partial%.partial}"
    mkdir -p "$r/data"
    tar -xf "$base/base.tar" -C "$r/data"
    if [ -f "$base/pg_wal.tar" ]; then tar -xf "$base/pg_wal.tar" -C "$r/data/pg_wal"; fi
    chown -R postgres "$r" && chmod 700 "$r/data"
    {
        echo "restore_command = 'cp $wal/%f %p'"
        if [ -n "${2:-}" ]; then
            echo "recovery_target_time = '$2'"
            echo "recovery_target_action = 'promote'"
        fi
    } >>"$r/data/postgresql.auto.conf"
    touch "$r/data/recovery.signal"
    RPORT=$(free_port)
    start_pg "$r/data" "$RPORT"
    wait_promoted "$RPORT"
    result "restore_${1}_fetch_seconds=$fetch restore_${1}_total_seconds=$(secs_since "$t")"
}

restore latest
got=$(psql_q "$RPORT" "select count(*) || ',' || max(id) || ',' || extract(epoch from max(ts)) from ticks")
got_rows=${got%%,*}
got_last_ts=${got##*,}
truth_last_ts=${truth_last#*,}
result "latest_restored_rows=$got_rows lost_rows=$((truth_rows - got_rows)) lost_seconds_of_writes=$(awk -v a="$truth_last_ts" -v b="$got_last_ts" 'BEGIN { printf "%.1f", a - b }')"
result "rpo_bound_seconds=$(awk -v s="$last_start" -v d="$disaster" 'BEGIN { printf "%.1f", (d - s) / 1000 }') (start of the last finished upload to the disaster)"
pg pg_ctl -D "$WORK/restore-latest/data" -m fast stop >/dev/null

# A timestamp 50 ms after the commit of the row in the middle of the writes (rows are 100 ms apart).
mid=$((truth_rows - (truth_rows - $(awk -F, 'NR == 1 { print $1 }' "$WORK/truth.csv")) / 2))
mid_row=$(awk -F, -v id="$mid" '$1 >= id { print; exit }' "$WORK/truth.csv")
target_epoch=$(awk -v t="${mid_row#*,}" 'BEGIN { printf "%.6f", t + 0.05 }')
target=$(date -u -d "@$target_epoch" '+%Y-%m-%d %H:%M:%S.%6N+00')
expected=$(awk -F, -v t="$target_epoch" '$2 < t { n++ } END { print n + 0 }' "$WORK/truth.csv")
restore pitr "$target"
got=$(psql_q "$RPORT" "select count(*) from ticks")
result "pitr_target='$target' expected_rows=$expected restored_rows=$got match=$([ "$expected" = "$got" ] && echo yes || echo NO)"
pg pg_ctl -D "$WORK/restore-pitr/data" -m fast stop >/dev/null

# Encryption: read every object back through the S3 API and look for the marker that every row
# carries (found in $local_hits local WAL files), with a plaintext object as a positive control.
"$CACHE/venv/bin/python" - "$S3_PORT" "$MARKER" <<'PY' | tee -a "$WORK/results.txt"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
marker = sys.argv[2].encode()
s3.put_object(Bucket="proto-backups", Key="control/plain.txt", Body=b"control " + marker)
objects = hits = size = 0
control = False
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="proto-backups"):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket="proto-backups", Key=o["Key"])["Body"].read()
        if o["Key"] == "control/plain.txt":
            control = marker in body
            continue
        objects += 1
        size += len(body)
        hits += marker in body or b"pgbench_accounts" in body
print(f"RESULT store_objects={objects} store_mb={size / 1048576:.1f} objects_with_plaintext={hits} positive_control_found={control}")
PY
result "local_wal_files_with_marker=$local_hits"
log "done: $WORK/results.txt"
cat "$WORK/results.txt" >&2
