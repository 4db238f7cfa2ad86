#!/bin/sh
# vps-stack-backup: scheduled pg_dump with checksums, retention, a heartbeat, test restores and a guarded
# restore. Runs in the stack's backup container (the PostgreSQL image, so pg_dump matches the server) and,
# in tests, directly on a machine with PostgreSQL. POSIX sh + awk: works with busybox, dash and bash.
#
#   vps-stack-backup run                      take a backup now (refuses if one is already running)
#   vps-stack-backup check                    exit 1 if the last good backup is too old, or the last run failed
#   vps-stack-backup verify [FILE]            restore FILE (default: latest) into a throwaway database and check it
#   vps-stack-backup restore [FILE] --confirm restore FILE (default: latest) into the database, after a safety dump
#   vps-stack-backup list                     backups, newest first
#   vps-stack-backup status                   markers of the last backup and verification
#   vps-stack-backup schedule                 run backups and verifications on their cron schedules (the container's main process)
#   vps-stack-backup retention                read backup names on stdin, print "keep NAME" / "delete NAME" (pure)
#   vps-stack-backup cron-match LISTS M H DOM MON DOW  exit 0 when the expanded schedule matches (pure)
#
# Settings (environment): PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE, BACKUP_DIR, BACKUP_PREFIX,
# KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY, MAX_AGE_HOURS, BACKUP_SCHEDULE, VERIFY_SCHEDULE (expanded to value
# lists by the program: see cron-match), TZ.
set -eu
# Backups, checksums and markers are the database's contents and metadata: private to the owner.
umask 077

BACKUP_DIR=${BACKUP_DIR:-/backups}
BACKUP_PREFIX=${BACKUP_PREFIX:-backup}
KEEP_DAILY=${KEEP_DAILY:-7}
KEEP_WEEKLY=${KEEP_WEEKLY:-4}
KEEP_MONTHLY=${KEEP_MONTHLY:-6}
MAX_AGE_HOURS=${MAX_AGE_HOURS:-26}
BACKUP_SCHEDULE=${BACKUP_SCHEDULE:-0 2 * * *}
VERIFY_SCHEDULE=${VERIFY_SCHEDULE:-0 4 * * 0}

LOCK_FILE="$BACKUP_DIR/.lock"
SUCCESS="$BACKUP_DIR/last-success"
FAILURE="$BACKUP_DIR/last-failure"
VERIFY_SUCCESS="$BACKUP_DIR/last-verify-success"
VERIFY_FAILURE="$BACKUP_DIR/last-verify-failure"
INSTALLED="$BACKUP_DIR/.installed"

log() { printf '%s vps-stack-backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Tests set VPS_STACK_NOW (epoch seconds) to move the clock.
now() { if [ -n "${VPS_STACK_NOW:-}" ]; then echo "$VPS_STACK_NOW"; else date -u +%s; fi; }

# Markers are key=value lines, written to a temporary name and renamed, so a reader never sees half.
write_marker() {
    file=$1
    shift
    tmp="$file.tmp.$$"
    : >"$tmp"
    for kv in "$@"; do printf '%s\n' "$kv" >>"$tmp"; done
    mv -f "$tmp" "$file"
}

marker_get() {
    [ -f "$1" ] || return 0
    sed -n "s/^$2=//p" "$1" | head -n 1
}

backup_pattern() { printf '%s-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.dump' "$BACKUP_PREFIX"; }

# Our backups only, oldest first: names sort by time because the prefix is fixed.
list_backups() {
    pattern=$(backup_pattern)
    for f in "$BACKUP_DIR"/$pattern; do
        [ -f "$f" ] && basename "$f"
    done | sort
}

latest_backup() { list_backups | tail -n 1; }

lock() {
    mkdir -p "$BACKUP_DIR"
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        log "another backup, verification or restore is running (lock: $LOCK_FILE); not starting a second one"
        exit 75
    fi
}

sha256_of() { sha256sum "$1" | cut -d ' ' -f 1; }

check_sum() {
    dump=$1
    [ -f "$dump.sha256" ] || die "no checksum beside $dump"
    expected=$(cut -d ' ' -f 1 "$dump.sha256")
    actual=$(sha256_of "$dump")
    [ "$expected" = "$actual" ] || die "checksum mismatch for $dump (expected $expected, got $actual)"
}

resolve_dump() {
    name=${1:-}
    if [ -z "$name" ] || [ "$name" = latest ]; then
        name=$(latest_backup)
        [ -n "$name" ] || die "no backup in $BACKUP_DIR"
    fi
    case $name in
        /*) printf '%s\n' "$name" ;;
        *) printf '%s\n' "$BACKUP_DIR/$name" ;;
    esac
}

# ---------------------------------------------------------------------------------------------------
# run: pg_dump -Fc to a temporary name, check it reads back, checksum, rename, marker, retention
# ---------------------------------------------------------------------------------------------------
dump_to() {
    # $1 final path. Leaves nothing behind on failure.
    final=$1
    dir=$(dirname "$final")
    base=$(basename "$final")
    partial="$dir/.$base.partial"
    trap 'rm -f "$partial" "$partial.sha256"' EXIT INT TERM
    if ! pg_dump --format=custom --no-password --file="$partial"; then
        rm -f "$partial"
        return 1
    fi
    # A dump that pg_restore cannot list is no backup.
    if ! pg_restore --list "$partial" >/dev/null; then
        rm -f "$partial"
        return 1
    fi
    sum=$(sha256_of "$partial")
    printf '%s  %s\n' "$sum" "$base" >"$partial.sha256"
    mv -f "$partial.sha256" "$final.sha256"
    mv -f "$partial" "$final"
    trap - EXIT INT TERM
    DUMP_SHA256=$sum
    DUMP_SIZE=$(wc -c <"$final" | tr -d ' ')
}

cmd_run() {
    lock
    started=$(now)
    name="$BACKUP_PREFIX-$(date -u +%Y%m%dT%H%M%SZ).dump"
    # Names are to the second; two runs within one second must not share one.
    while [ -e "$BACKUP_DIR/$name" ]; do
        sleep 1
        name="$BACKUP_PREFIX-$(date -u +%Y%m%dT%H%M%SZ).dump"
    done
    log "backup of ${PGDATABASE:-?} on ${PGHOST:-local}:${PGPORT:-5432} to $BACKUP_DIR/$name"
    if ! dump_to "$BACKUP_DIR/$name"; then
        write_marker "$FAILURE" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "reason=pg_dump failed"
        die "backup FAILED: pg_dump failed; no file was kept"
    fi
    write_marker "$SUCCESS" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "file=$name" "size=$DUMP_SIZE" "sha256=$DUMP_SHA256" "seconds=$(($(now) - started))"
    rm -f "$FAILURE"
    log "backup ok: $name ($DUMP_SIZE bytes, sha256 $DUMP_SHA256)"
    prune
}

prune() {
    list_backups | sort -r | retention | while read -r action name; do
        if [ "$action" = delete ]; then
            rm -f "$BACKUP_DIR/$name" "$BACKUP_DIR/$name.sha256"
            log "retention: deleted $name"
        fi
    done
}

# ---------------------------------------------------------------------------------------------------
# retention: pure. Newest-first names on stdin (others are ignored, never deleted). Keeps the newest
# backup, those from the future, and, like borg's prune, the newest backup of each of the last
# KEEP_DAILY days, then KEEP_WEEKLY ISO weeks, then KEEP_MONTHLY months that have backups; a backup
# kept by an earlier rule does not count towards a later one.
# ---------------------------------------------------------------------------------------------------
retention() {
    awk -v prefix="$BACKUP_PREFIX" -v now="$(now)" -v kd="$KEEP_DAILY" -v kw="$KEEP_WEEKLY" -v km="$KEEP_MONTHLY" '
    function days_from_civil(y, m, d,    era, yoe, doy, doe) {
        y -= (m <= 2)
        era = int((y >= 0 ? y : y - 399) / 400)
        yoe = y - era * 400
        doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
        doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
        return era * 146097 + doe - 719468
    }
    function year_of_days(z,    era, doe, yoe, y, doy, mp, m) {
        z += 719468
        era = int((z >= 0 ? z : z - 146096) / 146097)
        doe = z - era * 146097
        yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
        y = yoe + era * 400
        doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
        mp = int((5 * doy + 2) / 153)
        m = mp + (mp < 10 ? 3 : -9)
        return y + (m <= 2)
    }
    function iso_week(days,    wd, thu, y, jan1) {
        wd = (days + 3) % 7          # 0 = Monday
        if (wd < 0) wd += 7
        thu = days - wd + 3
        y = year_of_days(thu)
        jan1 = days_from_civil(y, 1, 1)
        return sprintf("%04d-W%02d", y, int((thu - jan1) / 7) + 1)
    }
    {
        name = $0
        n = length(name)
        stamp = substr(name, n - 20, 16)     # YYYYMMDDTHHMMSSZ
        if (substr(name, 1, n - 21) != prefix "-" || substr(name, n - 4) != ".dump" || stamp !~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z$/) next
        y = substr(stamp, 1, 4) + 0; mo = substr(stamp, 5, 2) + 0; d = substr(stamp, 7, 2) + 0
        days = days_from_civil(y, mo, d)
        epoch = days * 86400 + substr(stamp, 10, 2) * 3600 + substr(stamp, 12, 2) * 60 + substr(stamp, 14, 2)
        count++
        names[count] = name
        future[count] = (epoch > now)
        day[count] = substr(stamp, 1, 8)
        week[count] = iso_week(days)
        month[count] = substr(stamp, 1, 6)
    }
    function apply_rule(keyname, limit,    i, last, kept, k) {
        if (limit <= 0) return
        last = ""; kept = 0
        for (i = 1; i <= count; i++) {
            if (future[i]) continue
            k = (keyname == "day") ? day[i] : (keyname == "week") ? week[i] : month[i]
            if (k == last) continue
            last = k
            if (!(i in keep)) {
                keep[i] = keyname
                if (++kept >= limit) return
            }
        }
    }
    END {
        for (i = 1; i <= count; i++) if (future[i]) keep[i] = "future"
        apply_rule("day", kd)
        apply_rule("week", kw)
        apply_rule("month", km)
        # Whatever the rules say, the newest backup stays.
        for (i = 1; i <= count; i++) if (!future[i]) { keep[i] = "newest"; break }
        for (i = 1; i <= count; i++) print ((i in keep) ? "keep" : "delete"), names[i]
    }'
}

# ---------------------------------------------------------------------------------------------------
# check: the heartbeat. Fails when the last backup or verification failed, or the last good backup is
# older than MAX_AGE_HOURS. A fresh install gets MAX_AGE_HOURS of grace before its first backup.
# ---------------------------------------------------------------------------------------------------
cmd_check() {
    t=$(now)
    max=$((MAX_AGE_HOURS * 3600))
    ok_time=$(marker_get "$SUCCESS" time)
    fail_time=$(marker_get "$FAILURE" time)
    vfail_time=$(marker_get "$VERIFY_FAILURE" time)
    # A success removes the failure marker, so a failure marker is always the latest news.
    if [ -n "$fail_time" ]; then
        echo "FAIL: the last backup failed at $(marker_get "$FAILURE" iso): $(marker_get "$FAILURE" reason)"
        exit 1
    fi
    if [ -n "$vfail_time" ]; then
        echo "FAIL: the last verification failed at $(marker_get "$VERIFY_FAILURE" iso): $(marker_get "$VERIFY_FAILURE" reason)"
        exit 1
    fi
    if [ -z "$ok_time" ]; then
        installed=$(marker_get "$INSTALLED" time)
        if [ -n "$installed" ] && [ $((t - installed)) -lt "$max" ]; then
            echo "OK: no backup yet; the first is due within ${MAX_AGE_HOURS}h of installation"
            exit 0
        fi
        echo "FAIL: no successful backup in $BACKUP_DIR"
        exit 1
    fi
    age=$((t - ok_time))
    if [ "$age" -gt "$max" ]; then
        echo "FAIL: the last good backup ($(marker_get "$SUCCESS" file)) is $((age / 3600))h old; the limit is ${MAX_AGE_HOURS}h"
        exit 1
    fi
    echo "OK: last good backup $(marker_get "$SUCCESS" file), $((age / 60)) minutes ago, $(marker_get "$SUCCESS" size) bytes"
}

# ---------------------------------------------------------------------------------------------------
# verify: restore into a throwaway database and compare what came back with what the dump lists
# ---------------------------------------------------------------------------------------------------
sql() { psql --no-password --no-psqlrc -v ON_ERROR_STOP=1 -qAt "$@"; }

verify_failed() {
    write_marker "$VERIFY_FAILURE" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "file=${VERIFY_FILE:-?}" "reason=$1"
    die "verification FAILED: $1"
}

cmd_verify() {
    lock
    dump=$(resolve_dump "${1:-}")
    VERIFY_FILE=$(basename "$dump")
    [ -f "$dump" ] || verify_failed "no such backup: $dump"
    ( check_sum "$dump" ) || verify_failed "checksum mismatch"
    db="vps_stack_verify_$(now)_$$"
    log "verifying $VERIFY_FILE in throwaway database $db"
    sql -d "${PGDATABASE:-postgres}" -c "CREATE DATABASE \"$db\"" || verify_failed "cannot create database $db"
    # shellcheck disable=SC2064 # expand $db now
    trap "sql -d '${PGDATABASE:-postgres}' -c 'DROP DATABASE IF EXISTS \"$db\"' >/dev/null 2>&1 || true" EXIT INT TERM
    if ! pg_restore --no-password --no-owner --no-privileges --exit-on-error --dbname="$db" "$dump"; then
        verify_failed "pg_restore into a throwaway database failed"
    fi
    expected=$(pg_restore --list "$dump" | grep -c ' TABLE DATA ' || true)
    tables=$(sql -d "$db" -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
    if [ "$tables" -lt "$expected" ]; then
        verify_failed "restored $tables tables, the dump lists $expected"
    fi
    counts=$(sql -d "$db" -c "SELECT string_agg(format('%s=%s', t, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', t), false, true, '')))[1]::text), ',' ORDER BY t) FROM (SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) s")
    rows=$(printf '%s' "$counts" | tr ',' '\n' | awk -F= '{s += $2} END {print s + 0}')
    rm -f "$VERIFY_FAILURE"
    write_marker "$VERIFY_SUCCESS" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "file=$VERIFY_FILE" "tables=$tables" "rows=$rows" "counts=$counts"
    log "verification ok: $VERIFY_FILE restores $tables tables, $rows rows"
}

# ---------------------------------------------------------------------------------------------------
# restore: guarded, with a safety dump of the current database first
# ---------------------------------------------------------------------------------------------------
cmd_restore() {
    confirm=no
    file=""
    for arg in "$@"; do
        case $arg in
            --confirm) confirm=yes ;;
            -*) die "unknown option $arg" ;;
            *) file=$arg ;;
        esac
    done
    dump=$(resolve_dump "$file")
    [ -f "$dump" ] || die "no such backup: $dump"
    if [ "$confirm" != yes ]; then
        die "restoring $(basename "$dump") REPLACES the contents of database ${PGDATABASE:-?}; run again with --confirm to proceed"
    fi
    lock
    check_sum "$dump"
    safety="$BACKUP_DIR/$BACKUP_PREFIX-pre-restore-$(date -u +%Y%m%dT%H%M%SZ).dump"
    log "safety dump of the current database to $safety (kept until you delete it)"
    dump_to "$safety" || die "the safety dump failed; nothing was restored"
    target=${PGDATABASE:?PGDATABASE is not set}
    admin=${PGADMINDB:-postgres}
    staging="${target}_restoring_$(now)"
    old="${target}_before_restore_$(now)"
    log "restoring $(basename "$dump") into a new database $staging"
    sql -d "$admin" -c "CREATE DATABASE \"$staging\"" || die "cannot create database $staging; nothing was restored"
    if ! pg_restore --no-password --no-owner --no-privileges --single-transaction --exit-on-error --dbname="$staging" "$dump"; then
        sql -d "$admin" -c "DROP DATABASE IF EXISTS \"$staging\"" || true
        die "restore failed; $target was not touched (safety dump: $safety)"
    fi
    # Swap: the live database is only touched once a complete copy is ready. Other sessions are cut off
    # (the apps reconnect by themselves) and kept off while the names change.
    log "swapping $staging in as $target"
    sql -d "$admin" -c "ALTER DATABASE \"$target\" ALLOW_CONNECTIONS false" || die "cannot lock $target; nothing was changed (restored copy: $staging)"
    swapped=no
    for _ in 1 2 3 4 5; do
        sql -d "$admin" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$target' AND pid <> pg_backend_pid()" >/dev/null
        if sql -d "$admin" -c "ALTER DATABASE \"$target\" RENAME TO \"$old\"" 2>/dev/null; then swapped=yes; break; fi
        sleep 1
    done
    if [ "$swapped" != yes ]; then
        sql -d "$admin" -c "ALTER DATABASE \"$target\" ALLOW_CONNECTIONS true" || true
        die "could not take $target offline for the swap; nothing was changed (restored copy: $staging)"
    fi
    sql -d "$admin" -c "ALTER DATABASE \"$staging\" RENAME TO \"$target\"" || die "could not rename $staging to $target; the previous database is $old"
    sql -d "$admin" -c "DROP DATABASE \"$old\"" || log "could not drop $old; drop it by hand once you are satisfied"
    log "restore ok: ${PGDATABASE:-?} now holds $(basename "$dump") (safety dump: $(basename "$safety"))"
}

cmd_list() {
    list_backups | sort -r | while read -r name; do
        printf '%s\t%s bytes\n' "$name" "$(wc -c <"$BACKUP_DIR/$name" | tr -d ' ')"
    done
}

cmd_status() {
    for f in "$SUCCESS" "$FAILURE" "$VERIFY_SUCCESS" "$VERIFY_FAILURE"; do
        [ -f "$f" ] || continue
        echo "[$(basename "$f")]"
        cat "$f"
    done
    cmd_check || true
}

# ---------------------------------------------------------------------------------------------------
# cron-match: pure. The schedule arrives already expanded by the program (cron-parser, see
# components/sinks/cron.ts): each of the 5 fields is "*" or a list of integers, so matching is list
# membership and the cron semantics live in one place. Day of month and day of week match either when both
# are lists, both when one is "*". Anything else is refused (exit 2) rather than guessed at.
# ---------------------------------------------------------------------------------------------------
cron_match() {
    awk -v expr="$1" -v m="$2" -v h="$3" -v dom="$4" -v mon="$5" -v dow="$6" '
    function field_match(f, v,    parts, n, i) {
        if (f == "*") return 1
        n = split(f, parts, ",")
        for (i = 1; i <= n; i++) if (parts[i] + 0 == v) return 1
        return 0
    }
    BEGIN {
        if (split(expr, f, " ") != 5) exit 2
        for (i = 1; i <= 5; i++) if (f[i] != "*" && f[i] !~ /^[0-9]+(,[0-9]+)*$/) exit 2
        domm = field_match(f[3], dom + 0)
        dowm = field_match(f[5], dow + 0)
        if (f[3] != "*" && f[5] != "*") daym = domm || dowm
        else daym = domm && dowm
        exit !(field_match(f[1], m + 0) && field_match(f[2], h + 0) && field_match(f[4], mon + 0) && daym)
    }'
}

cmd_schedule() {
    mkdir -p "$BACKUP_DIR"
    chmod 700 "$BACKUP_DIR" || log "cannot restrict $BACKUP_DIR to its owner"
    [ -f "$INSTALLED" ] || write_marker "$INSTALLED" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    log "scheduled: backups at '$BACKUP_SCHEDULE', verification at '$VERIFY_SCHEDULE' (TZ=${TZ:-UTC}); keep $KEEP_DAILY daily, $KEEP_WEEKLY weekly, $KEEP_MONTHLY monthly"
    last=""
    while :; do
        key=$(date +%Y%m%d%H%M)
        if [ "$key" != "$last" ]; then
            last=$key
            # shellcheck disable=SC2046 # split into the five fields on purpose
            set -- $(date +'%M %H %d %m %w')
            if cron_match "$BACKUP_SCHEDULE" "$@"; then ("$0" run) || log "scheduled backup failed (see above); the check now fails"; fi
            if cron_match "$VERIFY_SCHEDULE" "$@"; then ("$0" verify) || log "scheduled verification failed (see above); the check now fails"; fi
        fi
        sleep $((61 - $(date +%S | sed 's/^0//')))
    done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    run) cmd_run ;;
    check) cmd_check ;;
    verify) cmd_verify "$@" ;;
    restore) cmd_restore "$@" ;;
    list) cmd_list ;;
    status) cmd_status ;;
    schedule) cmd_schedule ;;
    retention) retention ;;
    cron-match) cron_match "$@" ;;
    *)
        sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
        exit 2
        ;;
esac
