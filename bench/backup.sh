#!/usr/bin/env bash
# Benchmark: the backup job's wall time against a plain `pg_dump -Fc` of the same database, in the same
# run, on a generated database of about 1 GB (pgbench scale 70). Prints both and their ratio (goal ≤ 1.1).
# Not part of CI (it takes minutes); run it by hand: bash bench/backup.sh [scale] [rounds]
set -euo pipefail
scale=${1:-70}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
script="$root/render/scripts/vps-stack-backup.sh"
bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (bash .ci/install-tools.sh)" >&2; exit 1; }
export PATH="$bin:$PATH"

work=$(mktemp -d /tmp/vps-stack-bench-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { as_pg pg_ctl -D "$work/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

as_pg initdb -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg pg_ctl -D "$work/data" -w -l "$work/server.log" -o "-p $port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=bench
createdb bench
echo "generating pgbench scale $scale..."
pgbench -q -i -s "$scale" bench >/dev/null 2>&1
echo "database size: $(psql -qAt -c "SELECT pg_size_pretty(pg_database_size('bench'))")"

export BACKUP_DIR="$work/backups" BACKUP_PREFIX=bench KEEP_DAILY=1 KEEP_WEEKLY=0 KEEP_MONTHLY=0
mkdir -p "$BACKUP_DIR"
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

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
echo "dump size: $(du -h "$BACKUP_DIR"/bench-*.dump | tail -n 1 | cut -f1)"
printf 'plain pg_dump -Fc: %.2fs  backup job: %.2fs  ratio: %.3f (goal <= 1.1)\n' \
    "$(echo "$plain_total / $rounds" | bc -l)" "$(echo "$job_total / $rounds" | bc -l)" "$(echo "$job_total / $plain_total" | bc -l)"
