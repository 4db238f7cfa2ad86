#!/usr/bin/env bash
# Benchmark of the backups on a generated database of about 1 GB (pgbench scale 70), with the product's own
# scripts (render/scripts/vps-stack-backup.sh and vps-stack-offsite.sh) against a local PostgreSQL and a
# local S3 store (SeaweedFS, e2e/lib/seaweedfs.sh). Prints, then sums up in a final table:
#   1. the backup job's wall time against a plain `pg_dump -Fc` of the same database, and their ratio
#      (goal <= 1.1); the size of that dump is what one nightly dump sends off-site;
#   2. the time of a base backup (`vps-stack-backup base`, a replication role, `receive-wal` running);
#   3. the WAL lag under a pgbench write load (LOAD_SECONDS, LOAD_CLIENTS clients): the server's current
#      LSN minus the receiver's flushed LSN, sampled every second, max and p95, in bytes and in seconds of
#      writes at the load's mean WAL rate: the local RPO;
#   4. the bytes an off-site upload adds (`vps-stack-offsite upload`, restic to SeaweedFS; the marker's
#      `added`, and the store's growth on disk): right after the base backup, then every UPLOAD_INTERVAL s
#      during the load (and once after it), extrapolated to
#      bytes/day for that load, against one nightly dump; and each upload's duration (RPO off-site =
#      interval + upload time);
#   5. the time of a full restore (RTO): `pitr-restore-into` of the base backup and the load's WAL until
#      promoted, and `vps-stack-offsite restore-into` from the store (fresh cache) followed by the same.
# Not part of CI (it takes minutes, and about 4x the database's size on disk); run it by hand, as root
# (PostgreSQL runs as the postgres user; the restore is run as the product runs it, as root):
#   bash bench/backup.sh [scale] [rounds]
# Settings (environment): LOAD_SECONDS (default 60), LOAD_CLIENTS (4), UPLOAD_INTERVAL (30),
# PITR_WAIT_SECONDS (900). Every step has a timeout; servers, the store and the temporary directory go
# away on exit.
set -euo pipefail
scale=${1:-70}
rounds=${2:-3}
load_seconds=${LOAD_SECONDS:-60}
load_clients=${LOAD_CLIENTS:-4}
upload_interval=${UPLOAD_INTERVAL:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
script="$root/render/scripts/vps-stack-backup.sh"
offsite_script="$root/render/scripts/vps-stack-offsite.sh"
seaweedfs="$root/e2e/lib/seaweedfs.sh"
bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (bash .ci/install-tools.sh)" >&2; exit 1; }
command -v restic >/dev/null || { echo "restic is not installed" >&2; exit 1; }
export PATH="$bin:$PATH"
# The store's key comes from its credentials file only (vps-stack-offsite refuses these variables).
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY RESTIC_PASSWORD

work=$(mktemp -d /tmp/vps-stack-bench-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# Background work (the WAL receiver, the load, the sampler, the uploader) and the step being waited for.
pids=()
child=""
store_started=""
cleanup() {
    set +e
    trap - EXIT INT TERM
    [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done
    [ -z "$child" ] || wait "$child" 2>/dev/null
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    # A restore that was interrupted stops its own server; one left running would hold its directory.
    for d in "$work"/restore-*; do
        [ -f "$d/postmaster.pid" ] && kill -INT "$(head -n 1 "$d/postmaster.pid")" 2>/dev/null
    done
    as_pg pg_ctl -D "$work/data" -m fast -t 60 stop >/dev/null 2>&1
    [ -z "$store_started" ] || bash "$seaweedfs" stop "$work/s3" >/dev/null 2>&1
    sleep 1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# A step in the background, waited for: a signal interrupts the wait at once (a foreground command would
# defer the trap until it ends), and timeout bounds it.
bounded() { # SECONDS COMMAND...
    local limit=$1 st=0
    shift
    timeout "$limit" "$@" &
    child=$!
    wait "$child" || st=$?
    child=""
    [ "$st" != 124 ] || echo "TIMEOUT after ${limit}s: $*" >&2
    return "$st"
}
ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
mb() { awk -v b="$1" 'BEGIN { if (b >= 10 * 1073741824) printf "%.1f GB", b / 1073741824; else printf "%.1f MB", b / 1048576 }'; }
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

echo "machine: $(nproc) cores, $(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, $work on $(df --output=source "$work" | tail -n 1) ($(df -h --output=size "$work" | tail -n 1 | tr -d ' '))"
as_pg initdb -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
# The server is left at its defaults (wal_level replica, 10 WAL senders, 128 MB shared buffers, max_wal_size 1 GB).
as_pg pg_ctl -D "$work/data" -w -t 120 -l "$work/server.log" -o "-p $port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=bench
sql() { psql -X -qAt -c "$1"; }
createdb bench
echo "generating pgbench scale $scale..."
t0=$(ms)
bounded 3600 pgbench -q -i -s "$scale" bench >/dev/null 2>&1
db_bytes=$(sql "SELECT pg_database_size('bench')")
echo "database size: $(sql "SELECT pg_size_pretty(pg_database_size('bench'))") (generated in $(secs_since "$t0")s)"

# --------------------------------------------------------------------------- 1. nightly dump vs pg_dump
export BACKUP_DIR="$work/backups" BACKUP_PREFIX=bench KEEP_DAILY=1 KEEP_WEEKLY=0 KEEP_MONTHLY=0
mkdir -p "$BACKUP_DIR"
seconds() { local s e; s=$(date +%s.%N); bounded 3600 "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

plain_total=0
job_total=0
for i in $(seq "$rounds"); do
    p=$(seconds pg_dump --format=custom --file="$work/plain.dump")
    rm -f "$work/plain.dump"
    j=$(seconds sh "$script" run)
    echo "round $i: pg_dump -Fc ${p}s, backup job ${j}s"
    plain_total=$(echo "$plain_total + $p" | bc)
    job_total=$(echo "$job_total + $j" | bc)
done
dump_file=$(find "$BACKUP_DIR" -maxdepth 1 -name 'bench-*.dump' | sort | tail -n 1)
dump_bytes=$(wc -c <"$dump_file")
echo "dump size: $(du -h "$dump_file" | cut -f1)"
plain_avg=$(echo "$plain_total / $rounds" | bc -l)
job_avg=$(echo "$job_total / $rounds" | bc -l)
ratio=$(echo "$job_total / $plain_total" | bc -l)
printf 'plain pg_dump -Fc: %.2fs  backup job: %.2fs  ratio: %.3f (goal <= 1.1)\n' "$plain_avg" "$job_avg" "$ratio"

# --------------------------------------------------------------------------- the store and the WAL receiver
# Base backups, WAL and uploads in a directory of their own: what the uploads add is then the base
# backup and the WAL alone, not the dumps above.
pitr_dir="$work/pitr"
mkdir -p "$pitr_dir"
log "starting SeaweedFS"
bash "$seaweedfs" build >/dev/null
store_started=1
store=$(bash "$seaweedfs" start "$work/s3" 127.0.0.1)
eval "$store"
(umask 077 && head -c 32 /dev/urandom | base64 >"$work/restic-passphrase")
backup_env=(env BACKUP_DIR="$pitr_dir" BACKUP_PREFIX=bench WAL_USER=vps_stack_wal WAL_SLOT=vps_stack_wal
    PITR_WAIT_SECONDS="${PITR_WAIT_SECONDS:-900}")
offsite_env=(env BACKUP_DIR="$pitr_dir" OFFSITE_HOST=bench RESTIC_REPOSITORY="s3:$S3_ENDPOINT/vps-stack-bench/bench"
    RESTIC_PASSWORD_FILE="$work/restic-passphrase" AWS_SHARED_CREDENTIALS_FILE="$S3_CREDENTIALS"
    AWS_DEFAULT_REGION=us-east-1 S3_PATH_STYLE=1 RESTIC_CACHE_DIR="$work/restic-cache")
backup() { "${backup_env[@]}" sh "$script" "$@"; }
bounded 120 "${offsite_env[@]}" sh "$offsite_script" init 2>>"$work/offsite.log"

# The replication role (initdb --auth=trust trusts replication from 127.0.0.1 too: no password file).
sql "CREATE ROLE vps_stack_wal LOGIN REPLICATION"
setsid "${backup_env[@]}" sh "$script" receive-wal >"$work/receive-wal.log" 2>&1 &
pids+=($!)
for i in $(seq 1 60); do
    backup wal-check >/dev/null 2>&1 && break
    [ "$i" -lt 60 ] || { cat "$work/receive-wal.log" >&2; echo "the WAL receiver did not start streaming within 30 s" >&2; exit 1; }
    sleep 0.5
done

# The receiver's flushed position behind the server's current one.
lag_sql="SELECT extract(epoch FROM clock_timestamp()), pg_current_wal_lsn() - '0/0'::pg_lsn,
    pg_current_wal_lsn() - r.flush_lsn
    FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = 'vps_stack_wal'"
caught_up() { # waits (at most $1 s) until the receiver has flushed everything written so far
    local target i
    target=$(sql "SELECT pg_current_wal_lsn()")
    for i in $(seq 1 "$1"); do
        [ "$(sql "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON r.pid = s.active_pid
            WHERE s.slot_name = 'vps_stack_wal' AND r.flush_lsn >= '$target'")" = 1 ] && return 0
        sleep 1
    done
    echo "the WAL receiver did not catch up with $target within $1 s" >&2
    return 1
}

# --------------------------------------------------------------------------- 2. base backup
log "base backup (vps-stack-backup base)"
t0=$(ms)
bounded 3600 "${backup_env[@]}" sh "$script" base 2>>"$work/base.log"
base_seconds=$(secs_since "$t0")
base_bytes=$(sed -n 's/^size=//p' "$pitr_dir/last-base-success")
echo "base backup: ${base_seconds}s, $(mb "$base_bytes") (base.tar + backup_manifest)"

# --------------------------------------------------------------------------- 4. the upload after it
# An upload that finds a WAL segment renamed while it read it uploads again at once; its marker's `added`
# is then the second attempt's only (the first one's new data is in the store already).
upload() { # LABEL: one upload; appends "LABEL START_MS SECONDS ADDED RETRIED" to $work/uploads
    local s st=0
    s=$(ms)
    bounded 1200 "${offsite_env[@]}" sh "$offsite_script" upload 2>"$work/upload.err" || st=$?
    cat "$work/upload.err" >>"$work/offsite.log"
    if [ "$st" != 0 ]; then
        echo "upload $1 failed (status $st); see below" >&2
        tail -n 20 "$work/offsite.log" >&2
        return 1
    fi
    printf '%s %s %s %s %s\n' "$1" "$s" "$(secs_since "$s")" "$(sed -n 's/^added=//p' "$pitr_dir/offsite-last-success")" \
        "$(grep -c 'uploading again' "$work/upload.err" || true)" >>"$work/uploads"
}
# What the store holds on disk (SeaweedFS's data directory: restic's packs, compressed and encrypted).
store_bytes() { du -sb "$work/s3/data" | cut -f 1; }
store_before=$(store_bytes)
log "upload after the base backup (vps-stack-offsite upload)"
upload base
store_base=$(store_bytes)
read -r _ _ upload_base_seconds upload_base_added _ < <(tail -n 1 "$work/uploads")
echo "upload after the base backup: ${upload_base_seconds}s, added $(mb "$upload_base_added"), the store grew by $(mb $((store_base - store_before)))"

# --------------------------------------------------------------------------- 3. WAL lag under load
log "pgbench load: ${load_seconds}s, $load_clients clients; lag sampled every second; uploads every ${upload_interval}s"
bounded 60 psql -X -qAt -c "CHECKPOINT" >/dev/null
load_start=$(ms)
lsn_start=$(sql "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
setsid timeout $((load_seconds + 60)) pgbench -n -T "$load_seconds" -c "$load_clients" -j 2 bench >"$work/pgbench.log" 2>&1 &
load_pid=$!
pids+=("$load_pid")
(
    # One sample a second for as long as the load runs (and at most its length + 60 s).
    end=$((load_seconds + 60))
    while kill -0 "$load_pid" 2>/dev/null && [ $(($(ms) - load_start)) -lt $((end * 1000)) ]; do
        sql "$lag_sql" | tr '|' ' ' >>"$work/lag" || true
        sleep 1
    done
) &
sampler=$!
pids+=("$sampler")
(
    trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; exit 143' TERM
    # An upload every interval from the load's start (the next at once when one takes longer), while it runs.
    n=0
    while :; do
        n=$((n + 1))
        next=$((load_start + n * upload_interval * 1000))
        while [ "$(ms)" -lt "$next" ] && kill -0 "$load_pid" 2>/dev/null; do sleep 0.2; done
        kill -0 "$load_pid" 2>/dev/null || break
        upload "load-$n" || true
    done
) &
uploader=$!
pids+=("$uploader")
st=0
wait "$load_pid" || st=$?
load_end=$(ms)
[ "$st" = 0 ] || { cat "$work/pgbench.log" >&2; echo "pgbench failed (status $st)" >&2; exit 1; }
lsn_end=$(sql "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
wait "$sampler" || true
wait "$uploader" || true
caught_up 120
# The WAL of the load's last interval: the upload that ships it.
upload final
store_end=$(store_bytes)
store_load=$((store_end - store_base))
load_secs=$(awk -v a="$load_start" -v b="$load_end" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
wal_bytes=$(awk -v a="$lsn_start" -v b="$lsn_end" 'BEGIN { printf "%.0f", b - a }')
wal_rate=$(awk -v w="$wal_bytes" -v s="$load_secs" 'BEGIN { printf "%.0f", w / s }')
tps=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$work/pgbench.log" | head -n 1)
echo "load: ${load_secs}s, ${tps:-?} tps, WAL written $(mb "$wal_bytes") ($(mb "$wal_rate")/s)"
# p95: the value below which 95% of the samples are (nearest rank).
read -r samples lag_max lag_p95 < <(awk '{ print $3 }' "$work/lag" | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print 0, "n/a", "n/a"; exit }
    r = int(0.95 * NR); if (r < 0.95 * NR) r++; print NR, v[NR], v[r] }')
lag_s() { awk -v b="$1" -v r="$wal_rate" 'BEGIN { if (b == "n/a" || r == 0) print "n/a"; else printf "%.3f", b / r }'; }
echo "WAL lag (receiver flush behind the server), $samples samples: max $lag_max bytes ($(lag_s "$lag_max") s), p95 $lag_p95 bytes ($(lag_s "$lag_p95") s)"

# Uploads of the load: every line but the first (after the base backup).
load_uploads=$(awk '$1 != "base"' "$work/uploads")
n_uploads=$(printf '%s\n' "$load_uploads" | wc -l)
load_added=$(printf '%s\n' "$load_uploads" | awk '{ s += $4 } END { printf "%.0f", s }')
per_day=$(awk -v a="$load_added" -v s="$load_secs" 'BEGIN { printf "%.0f", a / s * 86400 }')
store_per_day=$(awk -v a="$store_load" -v s="$load_secs" 'BEGIN { printf "%.0f", a / s * 86400 }')
upload_max=$(printf '%s\n' "$load_uploads" | awk '{ if ($3 > m) m = $3 } END { printf "%.1f", m }')
upload_mean=$(printf '%s\n' "$load_uploads" | awk '{ s += $3 } END { printf "%.1f", s / NR }')
echo "uploads during and after the load:"
printf '%s\n' "$load_uploads" | awk '{ printf "  %-8s %6.1fs  added %.1f MB%s\n", $1, $3, $4 / 1048576, ($5 > 0 ? " (uploaded twice: a segment was renamed while read)" : "") }'
retried=$(printf '%s\n' "$load_uploads" | awk '$5 > 0 { n++ } END { print n + 0 }')
echo "the store grew by $(mb "$store_load") over these uploads"

# --------------------------------------------------------------------------- 5. RTO
log "restore from the local backups (pitr-restore-into)"
t0=$(ms)
bounded 3600 "${backup_env[@]}" sh "$script" pitr-restore-into "$work/restore-local" >"$work/restore-local.out" 2>>"$work/restore.log"
rto_local=$(secs_since "$t0")
recovered_local=$(sed -n 's/^recovered_to=//p' "$work/restore-local.out")
rm -rf "$work/restore-local"
echo "RTO local: ${rto_local}s (recovered to $recovered_local)"

log "restore from the store (vps-stack-offsite restore-into, then pitr-restore-into)"
t0=$(ms)
bounded 3600 "${offsite_env[@]}" RESTIC_CACHE_DIR="$work/restic-cache-new-host" sh "$offsite_script" restore-into "$work/fetched" >/dev/null 2>>"$work/restore.log"
fetch_seconds=$(secs_since "$t0")
t1=$(ms)
bounded 3600 "${backup_env[@]}" BACKUP_DIR="$work/fetched" sh "$script" pitr-restore-into "$work/restore-offsite" >"$work/restore-offsite.out" 2>>"$work/restore.log"
replay_offsite=$(secs_since "$t1")
rto_offsite=$(secs_since "$t0")
recovered_offsite=$(sed -n 's/^recovered_to=//p' "$work/restore-offsite.out")
rm -rf "$work/restore-offsite" "$work/fetched"
echo "RTO off-site: ${rto_offsite}s (fetch ${fetch_seconds}s + recovery ${replay_offsite}s; recovered to $recovered_offsite)"

# --------------------------------------------------------------------------- the table
load_min=$(awk -v s="$load_secs" 'BEGIN { printf "%.1f", s / 60 }')
cat <<TABLE

| Figure | Value |
|---|---|
| Database (pgbench scale $scale) | $(mb "$db_bytes") |
| Plain \`pg_dump -Fc\` / backup job (\`run\`), mean of $rounds | $(printf '%.1f s / %.1f s (ratio %.3f, goal <= 1.1)' "$plain_avg" "$job_avg" "$ratio") |
| Nightly dump (\`pg_dump -Fc\`) size | $(mb "$dump_bytes") |
| Base backup (\`vps-stack-backup base\`) | ${base_seconds} s, $(mb "$base_bytes") |
| Load (\`pgbench -T $load_seconds -c $load_clients\`) | ${load_secs} s, ${tps:-?} tps, WAL $(mb "$wal_bytes") ($(mb "$wal_rate")/s) |
| WAL lag, local RPO ($samples samples, 1/s): max | $lag_max bytes ($(lag_s "$lag_max") s of writes) |
| WAL lag, local RPO: p95 | $lag_p95 bytes ($(lag_s "$lag_p95") s of writes) |
| Upload after the base backup: \`added\`, store growth, duration | $(mb "$upload_base_added"), $(mb $((store_base - store_before))), ${upload_base_seconds} s |
| Uploads of the load ($n_uploads, every ${upload_interval} s and one after; $retried uploaded twice): \`added\`, store growth | $(mb "$load_added"), $(mb "$store_load") |
| Off-site bytes/day at this load (EXTRAPOLATED from $load_min min of pgbench): \`added\`, store growth | $(mb "$per_day"), $(mb "$store_per_day") |
| A day of nightly dumps off-site (one \`pg_dump -Fc\`) | $(mb "$dump_bytes") |
| Upload duration per interval: mean / max (RPO off-site = ${upload_interval} s + this) | ${upload_mean} s / ${upload_max} s |
| RTO local (\`pitr-restore-into\`, base + load WAL, to promotion) | ${rto_local} s |
| RTO off-site (\`vps-stack-offsite restore-into\` + \`pitr-restore-into\`) | ${rto_offsite} s (fetch ${fetch_seconds} s + recovery ${replay_offsite} s) |
TABLE
echo "The bytes/day figure is an extrapolation from $load_min minutes of pgbench load (${tps:-?} tps), not a measured day."
