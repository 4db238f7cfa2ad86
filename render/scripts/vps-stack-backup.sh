#!/bin/sh
# vps-stack-backup: scheduled pg_dump with checksums, retention, a heartbeat, test restores and a guarded
# restore; continuous WAL (pg_receivewal), base backups (pg_basebackup) and point-in-time recovery. Runs in
# the stack's backup and WAL containers (the PostgreSQL image, so the tools match the server) and, in tests,
# directly on a machine with PostgreSQL. POSIX sh + awk: works with busybox, dash and bash.
#
#   vps-stack-backup run                      take a backup now (refuses if one is already running)
#   vps-stack-backup check                    exit 1 if the last good backup (or base backup) is too old, or the last run failed
#   vps-stack-backup verify [FILE]            restore FILE (default: latest) into a throwaway database and check it
#   vps-stack-backup restore [FILE] --confirm restore FILE (default: latest) into the database, after a safety dump
#   vps-stack-backup volumes                  archive the app volumes in VOLUMES now (tar.gz + sha256, retention per volume)
#   vps-stack-backup list                     backups and base backups, newest first, and the WAL range
#   vps-stack-backup status                   markers of the last backup, verification and base backup
#   vps-stack-backup schedule                 run backups, verifications and base backups on their cron schedules (the container's main process);
#                                             at its start, what was interrupted, failed or fell due while it was not running
#   vps-stack-backup base                     take a base backup now (pg_basebackup), then expire old ones and the WAL they needed
#   vps-stack-backup receive-wal              stream WAL into BACKUP_DIR/wal with pg_receivewal (the WAL container's main process)
#   vps-stack-backup wal-check                exit 0 when the replication slot exists and a receiver is streaming from it
#   vps-stack-backup pitr-restore-into DIR [--to TIME]  recover the newest fitting base backup and the WAL into the
#                                             empty directory DIR, to TIME (default: the end of the WAL), as root
#   vps-stack-backup retention                read backup names on stdin, print "keep NAME" / "delete NAME" (pure)
#   vps-stack-backup cron-match LISTS M H DOM MON DOW  exit 0 when the expanded schedule matches (pure)
#
# Settings (environment): PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE, BACKUP_DIR, BACKUP_PREFIX, VOLUMES
# VOLUMES_DIR VOLUME_SCHEDULE,
# KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY, MAX_AGE_HOURS, BACKUP_SCHEDULE, VERIFY_SCHEDULE, BASE_SCHEDULE (expanded
# to value lists by the program: see cron-match; BASE_SCHEDULE empty = no base backups), TZ; WAL_USER (the
# replication role, its password in PGPASSFILE), WAL_SLOT, PITR_DAYS, BASE_MAX_AGE_HOURS, PITR_WAIT_SECONDS;
# OFFSITE (1 = vps-stack-offsite uploads BACKUP_DIR: retention deletes only what it has shipped, and the
# check watches its uploads), OFFSITE_MAX_AGE (seconds).
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
# The app volumes to archive ("<app>-<volume>" ids, mounted read-only under VOLUMES_DIR) and when.
VOLUMES=${VOLUMES:-}
VOLUMES_DIR=${VOLUMES_DIR:-/volumes}
VOLUME_SCHEDULE=${VOLUME_SCHEDULE:-}
WAL_USER=${WAL_USER:-vps_stack_wal}
WAL_SLOT=${WAL_SLOT:-vps_stack_wal}
BASE_SCHEDULE=${BASE_SCHEDULE:-}
PITR_DAYS=${PITR_DAYS:-7}
BASE_MAX_AGE_HOURS=${BASE_MAX_AGE_HOURS:-26}
PITR_WAIT_SECONDS=${PITR_WAIT_SECONDS:-600}
OFFSITE=${OFFSITE:-0}
OFFSITE_MAX_AGE=${OFFSITE_MAX_AGE:-600}

LOCK_FILE="$BACKUP_DIR/.lock"
SUCCESS="$BACKUP_DIR/last-success"
FAILURE="$BACKUP_DIR/last-failure"
VERIFY_SUCCESS="$BACKUP_DIR/last-verify-success"
VERIFY_FAILURE="$BACKUP_DIR/last-verify-failure"
INSTALLED="$BACKUP_DIR/.installed"
# Written by `run` when it starts and removed when it ends, either way: left behind, it says the run was
# killed (the host went down, the container was stopped) before it could record anything.
RUN_STARTED="$BACKUP_DIR/.run-started"
# The last minute the scheduler looked at its schedules: what it missed while it was not running.
SCHEDULER_TICK="$BACKUP_DIR/.scheduler-tick"
VOLUMES_SUCCESS="$BACKUP_DIR/last-volumes-success"
VOLUMES_FAILURE="$BACKUP_DIR/last-volumes-failure"
WAL_DIR="$BACKUP_DIR/wal"
BASE_DIR="$BACKUP_DIR/base"
BASE_LOCK_FILE="$BACKUP_DIR/.lock-base"
BASE_SUCCESS="$BACKUP_DIR/last-base-success"
BASE_FAILURE="$BACKUP_DIR/last-base-failure"
# Written by vps-stack-offsite, the uploader, in its own container.
OFFSITE_SUCCESS="$BACKUP_DIR/offsite-last-success"
OFFSITE_FAILURE="$BACKUP_DIR/offsite-last-failure"
OFFSITE_INSTALLED="$BACKUP_DIR/.offsite-installed"
# A WAL segment file name: 24 upper-case hex digits (timeline, log, segment).
HEX8='[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]'
SEGMENT="$HEX8$HEX8$HEX8"

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

# failed_last SUCCESS FAILURE: the job's last run failed (its failure marker is at least as recent as its
# success marker), for the jobs whose success does not remove the failure marker.
failed_last() {
    fl_ok=$(marker_get "$1" time)
    fl_bad=$(marker_get "$2" time)
    [ -n "$fl_bad" ] && { [ -z "$fl_ok" ] || [ "$fl_bad" -ge "$fl_ok" ]; }
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
    # Not fatal: the dump itself says whether the disk can take it.
    write_marker "$RUN_STARTED" "time=$started" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null || rm -f "$RUN_STARTED.tmp.$$"
    if ! dump_to "$BACKUP_DIR/$name"; then
        write_marker "$FAILURE" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "reason=pg_dump failed"
        rm -f "$RUN_STARTED"
        die "backup FAILED: pg_dump failed; no file was kept"
    fi
    write_marker "$SUCCESS" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "file=$name" "size=$DUMP_SIZE" "sha256=$DUMP_SHA256" "seconds=$(($(now) - started))"
    rm -f "$FAILURE" "$RUN_STARTED"
    log "backup ok: $name ($DUMP_SIZE bytes, sha256 $DUMP_SHA256)"
    prune
}

prune() {
    list_backups | sort -r | retention | while read -r action name; do
        if [ "$action" = delete ]; then
            if ! offsite_shipped "$BACKUP_DIR/$name" "$BACKUP_DIR/$name.sha256"; then
                log "retention: kept $name: not off-site yet"
                continue
            fi
            rm -f "$BACKUP_DIR/$name" "$BACKUP_DIR/$name.sha256"
            log "retention: deleted $name"
        fi
    done
}

# With OFFSITE=1, true when every PATH (files, or directories and what they hold) is in an off-site
# snapshot: the last successful upload started after the newest modification. Seconds are whole, so
# "after" is strict: an upload that started in the same second may have read an older version. The
# same test as `vps-stack-offsite shipped MTIME+1`. Without OFFSITE, everything counts as shipped.
offsite_shipped() {
    [ "$OFFSITE" = 1 ] || return 0
    shipped_at=$(marker_get "$OFFSITE_SUCCESS" started)
    case $shipped_at in '' | *[!0-9]*) return 1 ;; esac
    newest=$(find "$@" -exec stat -c %Y {} \; 2>/dev/null | sort -n | tail -n 1)
    [ -n "$newest" ] || return 0
    [ "$shipped_at" -gt "$newest" ]
}

# ---------------------------------------------------------------------------------------------------
# retention: pure. Newest-first names on stdin (others are ignored, never deleted). Keeps the newest
# backup, those from the future, and, like borg's prune, the newest backup of each of the last
# KEEP_DAILY days, then KEEP_WEEKLY ISO weeks, then KEEP_MONTHLY months that have backups; a backup
# kept by an earlier rule does not count towards a later one.
# ---------------------------------------------------------------------------------------------------
retention() {
    awk -v prefix="${RETENTION_PREFIX:-$BACKUP_PREFIX}" -v suffix="${RETENTION_SUFFIX:-.dump}" -v now="$(now)" -v kd="$KEEP_DAILY" -v kw="$KEEP_WEEKLY" -v km="$KEEP_MONTHLY" '
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
        sl = length(suffix)
        stamp = substr(name, n - sl - 15, 16)     # YYYYMMDDTHHMMSSZ
        if (substr(name, 1, n - sl - 16) != prefix "-" || substr(name, n - sl + 1) != suffix || stamp !~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z$/) next
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
# older than MAX_AGE_HOURS. A fresh install gets MAX_AGE_HOURS of grace before its first backup. With
# BASE_SCHEDULE, the same for base backups: the last base backup failed, or the newest complete one is
# older than BASE_MAX_AGE_HOURS (with as much grace after installation).
# ---------------------------------------------------------------------------------------------------
cmd_check() {
    t=$(now)
    max=$((MAX_AGE_HOURS * 3600))
    ok_time=$(marker_get "$SUCCESS" time)
    fail_time=$(marker_get "$FAILURE" time)
    vfail_time=$(marker_get "$VERIFY_FAILURE" time)
    installed=$(marker_get "$INSTALLED" time)
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
        if [ -n "$installed" ] && [ $((t - installed)) -lt "$max" ]; then
            dump_ok="OK: no backup yet; the first is due within ${MAX_AGE_HOURS}h of installation"
        else
            echo "FAIL: no successful backup in $BACKUP_DIR"
            exit 1
        fi
    else
        age=$((t - ok_time))
        if [ "$age" -gt "$max" ]; then
            echo "FAIL: the last good backup ($(marker_get "$SUCCESS" file)) is $((age / 3600))h old; the limit is ${MAX_AGE_HOURS}h"
            exit 1
        fi
        dump_ok="OK: last good backup $(marker_get "$SUCCESS" file), $((age / 60)) minutes ago, $(marker_get "$SUCCESS" size) bytes"
    fi
    [ -z "$BASE_SCHEDULE" ] || check_base "$t" "$installed"
    [ "$OFFSITE" != 1 ] || check_offsite "$t" "$installed"
    volumes_ok=$(volumes_check) || { echo "$volumes_ok"; exit 1; }
    echo "$dump_ok"
    [ -z "$BASE_SCHEDULE" ] || echo "$base_ok"
    [ "$OFFSITE" != 1 ] || echo "$offsite_ok"
    [ -z "$volumes_ok" ] || echo "$volumes_ok"
}

# The uploader's markers, so that this container's health shows an off-site problem too: its last
# upload failed after its last success, or its last success started more than OFFSITE_MAX_AGE s ago.
# Grace for the first upload: OFFSITE_MAX_AGE s from the later of this container's and the uploader's
# first start (the off-site copy may be added to a stack long installed).
check_offsite() {
    t=$1
    installed=$2
    ok_started=$(marker_get "$OFFSITE_SUCCESS" started)
    ok_finished=$(marker_get "$OFFSITE_SUCCESS" finished)
    ofail_time=$(marker_get "$OFFSITE_FAILURE" time)
    if [ -n "$ofail_time" ] && { [ -z "$ok_finished" ] || [ "$ofail_time" -ge "$ok_finished" ]; }; then
        echo "FAIL: the last off-site upload failed at $(marker_get "$OFFSITE_FAILURE" iso): $(marker_get "$OFFSITE_FAILURE" reason)"
        exit 1
    fi
    if [ -z "$ok_started" ]; then
        since=$(marker_get "$OFFSITE_INSTALLED" time)
        if [ -z "$since" ] || { [ -n "$installed" ] && [ "$installed" -gt "$since" ]; }; then since=$installed; fi
        if [ -n "$since" ] && [ $((t - since)) -le "$OFFSITE_MAX_AGE" ]; then
            offsite_ok="OK: no off-site upload yet; the first is due within ${OFFSITE_MAX_AGE}s"
            return 0
        fi
        echo "FAIL: no successful off-site upload (the uploader writes $OFFSITE_SUCCESS)"
        exit 1
    fi
    oage=$((t - ok_started))
    if [ "$oage" -gt "$OFFSITE_MAX_AGE" ]; then
        echo "FAIL: the last successful off-site upload started ${oage}s ago; the limit is ${OFFSITE_MAX_AGE}s"
        exit 1
    fi
    offsite_ok="OK: last off-site upload ${oage}s ago, snapshot $(marker_get "$OFFSITE_SUCCESS" snapshot)"
}

check_base() {
    t=$1
    installed=$2
    bmax=$((BASE_MAX_AGE_HOURS * 3600))
    if failed_last "$BASE_SUCCESS" "$BASE_FAILURE"; then
        echo "FAIL: the last base backup failed at $(marker_get "$BASE_FAILURE" iso): $(marker_get "$BASE_FAILURE" reason)"
        exit 1
    fi
    newest=$(list_bases | tail -n 1)
    if [ -z "$newest" ]; then
        if [ -n "$installed" ] && [ $((t - installed)) -lt "$bmax" ]; then
            base_ok="OK: no base backup yet; the first is due within ${BASE_MAX_AGE_HOURS}h of installation"
            return 0
        fi
        echo "FAIL: no complete base backup in $BASE_DIR: point-in-time recovery is impossible until one is taken"
        exit 1
    fi
    bfinished=${newest%% *}
    bname=$(echo "$newest" | cut -d ' ' -f 2)
    bage=$((t - bfinished))
    if [ "$bage" -gt "$bmax" ]; then
        echo "FAIL: the newest base backup ($bname) is $((bage / 3600))h old; the limit is ${BASE_MAX_AGE_HOURS}h"
        exit 1
    fi
    base_ok="OK: newest base backup $bname, $((bage / 60)) minutes ago"
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
    source=local
    # With an off-site copy, the scheduled verification test-restores what is off-site: the newest dump
    # that the uploader fetched back from the store (once a day), not the local file.
    if [ "$OFFSITE" = 1 ] && { [ -z "${1:-}" ] || [ "$1" = latest ]; }; then
        fetched=$(marker_get "$BACKUP_DIR/offsite-fetch" file)
        ftime=$(marker_get "$BACKUP_DIR/offsite-fetch" time)
        VERIFY_FILE=${fetched:-?}
        if [ -z "$fetched" ] || [ ! -f "$BACKUP_DIR/offsite-verify/$fetched" ]; then
            verify_failed "no dump fetched back from the off-site copy yet (the uploader does it once a day: vps-stack-offsite fetch-dump)"
        fi
        if [ $(($(now) - ftime)) -gt 172800 ]; then
            verify_failed "the dump fetched back from off-site is $((($(now) - ftime) / 3600))h old: the uploader's daily fetch fails (docker logs of the offsite container)"
        fi
        dump="$BACKUP_DIR/offsite-verify/$fetched"
        source=off-site
        # The same bytes as the local dump, while that one is still here.
        if [ -f "$BACKUP_DIR/$fetched.sha256" ] && [ "$(cut -d ' ' -f 1 "$BACKUP_DIR/$fetched.sha256")" != "$(cut -d ' ' -f 1 "$dump.sha256" 2>/dev/null)" ]; then
            verify_failed "the off-site copy of $fetched is not the local one (their sha256 differ)"
        fi
    fi
    VERIFY_FILE=$(basename "$dump")
    [ -f "$dump" ] || verify_failed "no such backup: $dump"
    ( check_sum "$dump" ) || verify_failed "checksum mismatch"
    db="vps_stack_verify_$(now)_$$"
    log "verifying $VERIFY_FILE (the $source copy) in throwaway database $db"
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
    write_marker "$VERIFY_SUCCESS" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "file=$VERIFY_FILE" "source=$source" "tables=$tables" "rows=$rows" "counts=$counts"
    log "verification ok: $VERIFY_FILE ($source) restores $tables tables, $rows rows"
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

# ---------------------------------------------------------------------------------------------------
# Continuous WAL and base backups. The WAL container streams the server's WAL into $WAL_DIR with
# pg_receivewal (flushed on every write; the segment being written is XXXXXXXX.partial); base backups
# are pg_basebackup tars in $BASE_DIR/$BACKUP_PREFIX-<time>/, each with a `done` marker written last.
# Together they restore to any moment after the oldest kept base backup (pitr-restore-into).
# ---------------------------------------------------------------------------------------------------
base_pattern() { printf '%s-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z' "$BACKUP_PREFIX"; }

iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "@$1"; }

# Complete base backups, oldest first, one a line: "FINISHED NAME START_WAL" (a directory without a valid
# `done` marker is not one, and is never used or deleted).
list_bases() {
    [ -d "$BASE_DIR" ] || return 0
    pattern=$(base_pattern)
    for d in "$BASE_DIR"/$pattern; do
        [ -f "$d/done" ] || continue
        f=$(marker_get "$d/done" finished)
        w=$(marker_get "$d/done" start_wal)
        case $f in '' | *[!0-9]*) continue ;; esac
        # shellcheck disable=SC2254 # a pattern on purpose
        case $w in $SEGMENT) ;; *) continue ;; esac
        printf '%s %s %s\n' "$f" "$(basename "$d")" "$w"
    done | sort -k1,1n -k2,2
}

# The files in $WAL_DIR pg_receivewal made: segments, at most one .partial, timeline .history files.
list_wal() {
    [ -d "$WAL_DIR" ] || return 0
    for f in "$WAL_DIR"/$SEGMENT "$WAL_DIR"/$SEGMENT.partial "$WAL_DIR"/$HEX8.history; do
        [ -f "$f" ] && basename "$f"
    done | sort
}

wal_range() {
    segments=$(list_wal | grep -v '\.history$' || true)
    if [ -z "$segments" ]; then
        echo "wal/: no WAL segment"
    else
        printf 'wal/: %s segments, %s .. %s\n' "$(echo "$segments" | wc -l | tr -d ' ')" "$(echo "$segments" | head -n 1)" "$(echo "$segments" | tail -n 1)"
    fi
}

valid_slot() {
    case $WAL_SLOT in
        '' | *[!abcdefghijklmnopqrstuvwxyz0123456789_]*) die "WAL_SLOT '$WAL_SLOT' is not a replication slot name (lower-case letters, digits and _ only)" ;;
    esac
    [ ${#WAL_SLOT} -le 63 ] || die "WAL_SLOT '$WAL_SLOT' is longer than 63 characters"
}

# ---------------------------------------------------------------------------------------------------
# base: pg_basebackup -Ft into base/.NAME.partial, the `done` marker, rename; markers; then retention:
# keep the base backups that finished within PITR_DAYS days and always the newest complete one, and
# remove the WAL older than the oldest kept one needs. Its own lock: a base backup never blocks a dump.
# ---------------------------------------------------------------------------------------------------
base_failed() {
    rm -rf "$BASE_PARTIAL"
    write_marker "$BASE_FAILURE" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "reason=$1"
    die "base backup FAILED: $1; nothing was kept"
}

cmd_base() {
    mkdir -p "$BASE_DIR"
    exec 8>"$BASE_LOCK_FILE"
    if ! flock -n 8; then
        log "another base backup is running (lock: $BASE_LOCK_FILE); not starting a second one"
        exit 75
    fi
    # With the lock held, a partial directory is what a killed run left.
    for p in "$BASE_DIR"/.$(base_pattern).partial; do
        [ -e "$p" ] || continue
        rm -rf "$p"
        log "removed $(basename "$p"), left by an interrupted base backup"
    done
    started=$(now)
    name="$BACKUP_PREFIX-$(date -u +%Y%m%dT%H%M%SZ)"
    while [ -e "$BASE_DIR/$name" ]; do
        sleep 1
        name="$BACKUP_PREFIX-$(date -u +%Y%m%dT%H%M%SZ)"
    done
    BASE_PARTIAL="$BASE_DIR/.$name.partial"
    trap 'rm -rf "$BASE_PARTIAL"' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    log "base backup of ${PGHOST:-local}:${PGPORT:-5432} as $WAL_USER to $BASE_DIR/$name"
    if ! pg_basebackup -D "$BASE_PARTIAL" -Ft -X fetch --checkpoint=fast --no-password -U "$WAL_USER" -l "vps-stack $name"; then
        base_failed "pg_basebackup failed"
    fi
    [ -f "$BASE_PARTIAL/base.tar" ] || base_failed "pg_basebackup wrote no base.tar"
    # "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)": the first segment recovery needs.
    label=$(tar -xOf "$BASE_PARTIAL/base.tar" backup_label) || base_failed "cannot read backup_label in base.tar"
    start_wal=$(printf '%s\n' "$label" | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]*\)).*$/\1/p' | head -n 1)
    # shellcheck disable=SC2254 # a pattern on purpose
    case $start_wal in $SEGMENT) ;; *) base_failed "no START WAL LOCATION in the backup_label of base.tar" ;; esac
    size=0
    for f in "$BASE_PARTIAL"/*; do size=$((size + $(wc -c <"$f"))); done
    write_marker "$BASE_PARTIAL/done" "started=$started" "finished=$(now)" "start_wal=$start_wal" "size=$size"
    mv "$BASE_PARTIAL" "$BASE_DIR/$name"
    trap - EXIT INT TERM
    write_marker "$BASE_SUCCESS" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "name=$name" "start_wal=$start_wal" "size=$size" "seconds=$(($(now) - started))"
    rm -f "$BASE_FAILURE"
    log "base backup ok: $name ($size bytes, WAL from $start_wal)"
    prune_bases
}

prune_bases() {
    keep_from=$(($(now) - PITR_DAYS * 86400))
    newest=$(list_bases | tail -n 1 | cut -d ' ' -f 2)
    if [ -z "$newest" ]; then
        log "no complete base backup: no base backup or WAL is removed"
        return 0
    fi
    list_bases | while read -r finished bname _; do
        if [ "$finished" -ge "$keep_from" ] || [ "$bname" = "$newest" ]; then continue; fi
        if ! offsite_shipped "$BASE_DIR/$bname"; then
            log "retention: kept base backup $bname: not off-site yet"
            continue
        fi
        rm -rf "${BASE_DIR:?}/$bname"
        log "retention: deleted base backup $bname (finished $(iso_of "$finished"), more than $PITR_DAYS days ago)"
    done
    # The timeline is ignored (pg_archivecleanup does the same): the earliest position any kept base needs.
    oldest_wal=$(list_bases | awk '{ k = substr($3, 9) ""; if (w == "" || k < m) { m = k; w = $3 } } END { print w }')
    if [ -z "$oldest_wal" ] || [ ! -d "$WAL_DIR" ]; then return 0; fi
    # What pg_archivecleanup would remove: all of it is off-site, or none of it goes.
    doomed=$(list_wal | awk -v before="$(echo "$oldest_wal" | cut -c 9-)" '!/\.history$/ && substr($0, 9, 16) "" < before ""')
    set --
    for f in $doomed; do set -- "$@" "$WAL_DIR/$f"; done
    if [ $# -gt 0 ] && ! offsite_shipped "$@"; then
        log "retention: kept the WAL before $oldest_wal: not off-site yet (written since the last upload started)"
        return 0
    fi
    if pg_archivecleanup "$WAL_DIR" "$oldest_wal"; then
        log "retention: WAL before $oldest_wal removed (the oldest kept base backup starts there)"
    else
        log "retention: pg_archivecleanup failed; the WAL before $oldest_wal stays"
    fi
}

# ---------------------------------------------------------------------------------------------------
# receive-wal: the WAL container's main process. pg_receivewal runs as a background child that the
# shell waits for, so that a SIGTERM (docker stop) is handled at once and passed on; a shell defers
# traps until a foreground command ends.
# ---------------------------------------------------------------------------------------------------
CHILD=""
run_child() {
    "$@" &
    CHILD=$!
    st=0
    wait "$CHILD" || st=$?
    CHILD=""
    return "$st"
}

receiver_stop() {
    trap - TERM INT
    log "WAL receiver: stopping (signal)"
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit 0
}

cmd_receive_wal() {
    valid_slot
    mkdir -p "$WAL_DIR"
    trap receiver_stop TERM INT
    log "WAL receiver: slot $WAL_SLOT as $WAL_USER on ${PGHOST:-local}:${PGPORT:-5432} into $WAL_DIR"
    while :; do
        if ! run_child pg_receivewal --create-slot --if-not-exists --slot "$WAL_SLOT" -U "$WAL_USER" --no-password; then
            log "WAL receiver: cannot create or find the replication slot $WAL_SLOT (server down?); retrying in 2 s"
            run_child sleep 2 || true
            continue
        fi
        log "WAL receiver: streaming from slot $WAL_SLOT"
        st=0
        run_child pg_receivewal -D "$WAL_DIR" --slot "$WAL_SLOT" -U "$WAL_USER" --synchronous --no-password --no-loop || st=$?
        log "WAL receiver: pg_receivewal exited (status $st); reconnecting in 2 s"
        run_child sleep 2 || true
    done
}

# wal-check: the WAL container's healthcheck.
cmd_wal_check() {
    valid_slot
    if ! out=$(PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} psql --no-password --no-psqlrc -qAt -U "$WAL_USER" -d postgres \
        -c "SELECT active FROM pg_replication_slots WHERE slot_name = '$WAL_SLOT'" 2>&1); then
        echo "FAIL: cannot ask ${PGHOST:-local}:${PGPORT:-5432} about slot $WAL_SLOT as $WAL_USER: $(echo "$out" | head -n 1)"
        exit 1
    fi
    case $out in
        t) echo "OK: replication slot $WAL_SLOT is active (a WAL receiver is streaming)" ;;
        f)
            echo "FAIL: replication slot $WAL_SLOT exists but no WAL receiver is connected to it"
            exit 1
            ;;
        '')
            echo "FAIL: no replication slot $WAL_SLOT on ${PGHOST:-local}:${PGPORT:-5432}"
            exit 1
            ;;
        *)
            echo "FAIL: unexpected answer about slot $WAL_SLOT: $out"
            exit 1
            ;;
    esac
}

# ---------------------------------------------------------------------------------------------------
# pitr-restore-into DIR [--to TIME]: base backup + WAL into the empty DIR (a new volume), recovered by a
# private PostgreSQL (no TCP, a socket in a temporary directory) until it promotes, then stopped cleanly.
# DIR is then a primary on a new timeline, ready to be the database's volume. Run as root in a
# throwaway container of the server's image; nothing live is touched.
# ---------------------------------------------------------------------------------------------------

# TIME -> "EPOCH .FRACTION" (the fraction may be empty) for ISO forms:
# YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][ ][Z|UTC|+HH[[:]MM]|-HH[[:]MM]]. The same in every shell (busybox's
# date -d is limited); without an offset TIME is UTC.
time_to_epoch() {
    awk -v s="$1" '
    function days_from_civil(y, m, d,    era, yoe, doy, doe) {
        y -= (m <= 2)
        era = int((y >= 0 ? y : y - 399) / 400)
        yoe = y - era * 400
        doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
        doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
        return era * 146097 + doe - 719468
    }
    BEGIN {
        if (s !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]/) exit 1
        y = substr(s, 1, 4) + 0; mo = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0
        rest = substr(s, 11); h = 0; mi = 0; se = 0; off = 0
        if (rest ~ /^[ T][0-9][0-9]:[0-9][0-9]/) {
            h = substr(rest, 2, 2) + 0; mi = substr(rest, 5, 2) + 0; rest = substr(rest, 7)
            if (rest ~ /^:[0-9][0-9]/) {
                se = substr(rest, 2, 2) + 0; rest = substr(rest, 4)
                if (match(rest, /^\.[0-9]+/)) { frac = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1) }
            }
        }
        sub(/^ /, "", rest)
        if (rest == "" || rest == "Z" || rest == "UTC") off = 0
        else if (rest ~ /^[+-][0-9][0-9]$/ || rest ~ /^[+-][0-9][0-9]:?[0-9][0-9]$/) {
            om = substr(rest, 4); sub(/^:/, "", om)
            off = (substr(rest, 2, 2) * 3600 + om * 60) * (substr(rest, 1, 1) == "-" ? -1 : 1)
        } else exit 1
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) exit 1
        printf "%.0f %s\n", days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off, frac
    }'
}

# The command prefix that runs a program as the postgres user: the official images have gosu (Debian)
# or su-exec (Alpine); util-linux setpriv elsewhere. Not root: we already are whoever we are.
pg_runner() {
    [ "$(id -u)" = 0 ] || return 0
    if command -v gosu >/dev/null 2>&1; then
        echo "gosu postgres"
    elif command -v su-exec >/dev/null 2>&1; then
        echo "su-exec postgres"
    elif command -v setpriv >/dev/null 2>&1; then
        echo "setpriv --reuid=postgres --regid=postgres --init-groups"
    else
        log "ERROR: none of gosu, su-exec or setpriv is installed: cannot run PostgreSQL as the postgres user"
        return 1
    fi
}

PG_PID=""
PITR_WORK=""
pitr_cleanup() {
    if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
        log "stopping the recovering PostgreSQL"
        kill -INT "$PG_PID" 2>/dev/null || true
        i=0
        while kill -0 "$PG_PID" 2>/dev/null && [ "$i" -lt 60 ]; do
            sleep 1
            i=$((i + 1))
        done
        kill -KILL "$PG_PID" 2>/dev/null || true
    fi
    [ -z "$PITR_WORK" ] || rm -rf "$PITR_WORK"
}

# SQL on the private server, as whichever role exists (the bootstrap superuser's name is the image's
# POSTGRES_USER, unknown here; the temporary pg_hba trusts the socket).
pitr_sql() {
    for role in postgres ${PGUSER:-} ${POSTGRES_USER:-}; do
        if out=$(psql --no-password --no-psqlrc -qAt -h "$PITR_WORK/run" -p 5432 -U "$role" -d postgres -c "$1" 2>/dev/null); then
            printf '%s\n' "$out"
            return 0
        fi
    done
    return 1
}

pitr_failed() {
    # $1: the server's exit status
    if grep -q 'recovery ended before configured recovery target was reached' "$PG_LOG"; then
        last=$(last_replayed)
        reason="no WAL reaches $PITR_TO: the WAL in $WAL_DIR ends before it${last:+ (the last transaction in it committed at $last)}; without --to the restore goes to the end of the WAL"
    elif grep -q 'requested recovery stop point is before consistent recovery point' "$PG_LOG"; then
        reason="$PITR_TO is before the end of base backup $PITR_BASE; an older base backup is needed"
    elif grep -q -e 'WAL ends before end of online backup' -e 'could not locate required checkpoint record' -e 'could not find redo location' -e 'WAL ends before consistent recovery point' "$PG_LOG"; then
        reason="WAL that base backup $PITR_BASE needs is missing from $WAL_DIR and from base.tar"
    else
        reason="PostgreSQL exited (status $1) before the recovery finished"
    fi
    log "the last lines of the recovering PostgreSQL's log:"
    tail -n 25 "$PG_LOG" >&2
    die "point-in-time restore FAILED: $reason. $PITR_DIR is left as it is: delete it"
}

# The commit time of the last transaction replayed, from the log (empty when none was).
last_replayed() { sed -n 's/.*last completed transaction was at log time \(.*\)$/\1/p' "$PG_LOG" | tail -n 1; }

cmd_pitr_restore_into() {
    PITR_DIR=""
    PITR_TO=""
    while [ $# -gt 0 ]; do
        case $1 in
            --to)
                [ $# -ge 2 ] || die "--to needs a TIME"
                PITR_TO=$2
                shift 2
                ;;
            --to=*)
                PITR_TO=${1#--to=}
                shift
                ;;
            -*) die "unknown option $1" ;;
            *)
                [ -z "$PITR_DIR" ] || die "one DIR only (usage: pitr-restore-into DIR [--to TIME])"
                PITR_DIR=$1
                shift
                ;;
        esac
    done
    [ -n "$PITR_DIR" ] || die "usage: pitr-restore-into DIR [--to TIME]"
    case $PITR_DIR in /*) ;; *) PITR_DIR="$(pwd)/$PITR_DIR" ;; esac
    mkdir -p "$PITR_DIR"
    [ -z "$(ls -A "$PITR_DIR")" ] || die "$PITR_DIR is not empty: restore into an empty directory (a new volume)"

    # The base backup: the newest that finished before the target (its consistency point is earlier).
    if [ -n "$PITR_TO" ]; then
        # PostgreSQL gets the same instant in one form it always reads: at startup it knows no zone
        # abbreviation (not even Z), and without an offset it would use the server's time zone.
        if parsed=$(time_to_epoch "$PITR_TO"); then
            target=${parsed%% *}
            frac=${parsed#* }
        elif target=$(date -u -d "$PITR_TO" +%s 2>/dev/null) && [ -n "$target" ]; then
            frac=""
        else
            die "cannot read the time '$PITR_TO': give YYYY-MM-DD HH:MM:SS[.frac][Z|+HH[:MM]] (no offset = UTC)"
        fi
        pg_target="$(date -u -d "@$target" '+%Y-%m-%d %H:%M:%S')$frac+00"
        [ "$pg_target" = "$PITR_TO" ] || log "recovery target: '$PITR_TO' is $pg_target"
        chosen=$(list_bases | awk -v t="$target" '$1 < t + 0' | tail -n 1)
        if [ -z "$chosen" ]; then
            oldest=$(list_bases | head -n 1)
            [ -n "$oldest" ] || die "no complete base backup in $BASE_DIR: there is nothing to restore from"
            die "no base backup finished before $PITR_TO (the oldest, $(echo "$oldest" | cut -d ' ' -f 2), finished at $(iso_of "${oldest%% *}")): cannot recover to that time"
        fi
    else
        chosen=$(list_bases | tail -n 1)
        [ -n "$chosen" ] || die "no complete base backup in $BASE_DIR: there is nothing to restore from"
    fi
    PITR_BASE=$(echo "$chosen" | cut -d ' ' -f 2)
    start_wal=$(echo "$chosen" | cut -d ' ' -f 3)
    [ -f "$BASE_DIR/$PITR_BASE/base.tar" ] || die "base backup $PITR_BASE has no base.tar"
    pg_bin=$(command -v postgres) || die "postgres is not on PATH"
    runas=$(pg_runner) || exit 1

    PITR_WORK=$(mktemp -d "${TMPDIR:-/tmp}/vps-stack-pitr.XXXXXX")
    trap pitr_cleanup EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    # restore_command is a shell command line: the path must need no quoting.
    case $PITR_WORK in *[!A-Za-z0-9/._-]*) die "temporary directory $PITR_WORK has characters restore_command cannot take" ;; esac
    staging="$PITR_WORK/wal"
    mkdir "$staging" "$PITR_WORK/run"
    PG_LOG="$PITR_WORK/postgres.log"

    log "restoring base backup $PITR_BASE (finished $(iso_of "${chosen%% *}"), WAL from $start_wal) into $PITR_DIR, to ${PITR_TO:-the end of the WAL}"
    tar -xf "$BASE_DIR/$PITR_BASE/base.tar" -C "$PITR_DIR" || die "cannot unpack $PITR_BASE/base.tar into $PITR_DIR"
    if [ -f "$BASE_DIR/$PITR_BASE/backup_manifest" ] && command -v pg_verifybackup >/dev/null 2>&1; then
        pg_verifybackup -q -m "$BASE_DIR/$PITR_BASE/backup_manifest" "$PITR_DIR" ||
            die "base backup $PITR_BASE does not match its backup_manifest (damaged?); $PITR_DIR is left as it is: delete it"
    fi

    # The WAL from the base backup's start on (the timeline is ignored, as in pg_archivecleanup) and
    # every timeline history, copied: the receiver and the base job's cleanup keep changing $WAL_DIR.
    from=$(echo "$start_wal" | cut -c 9-)
    list_wal | awk -v from="$from" '/\.history$/ || (length($0) == 24 && substr($0, 9) "" >= from "")' >"$PITR_WORK/wal-list"
    while read -r seg; do
        cp "$WAL_DIR/$seg" "$staging/$seg" || die "cannot copy $WAL_DIR/$seg"
    done <"$PITR_WORK/wal-list"
    # The segment pg_receivewal is writing: recovery reads it under its final name. It may have been
    # completed (renamed) since the listing.
    partial=$(list_wal | grep '\.partial$' | tail -n 1 || true)
    if [ -n "$partial" ] && [ ! -e "$staging/${partial%.partial}" ]; then
        cp "$WAL_DIR/$partial" "$staging/${partial%.partial}" 2>/dev/null || cp "$WAL_DIR/${partial%.partial}" "$staging/${partial%.partial}" ||
            die "cannot copy $WAL_DIR/$partial"
    fi
    staged=$(find "$staging" -type f | wc -l | tr -d ' ')
    log "staged $staged WAL files$([ -z "$partial" ] || echo ", the newest from $partial")"

    touch "$PITR_DIR/recovery.signal"
    # Recovery settings go on the command line, never into DIR's files: the restored volume keeps its
    # own postgresql.conf and pg_hba.conf untouched. Our own pg_hba (trust, socket only) and ident file.
    printf 'local all all trust\n' >"$PITR_WORK/run/pg_hba.conf"
    : >"$PITR_WORK/run/pg_ident.conf"
    : >"$PG_LOG"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres:postgres "$PITR_DIR" "$PITR_WORK" || die "cannot give $PITR_DIR to the postgres user"
    fi
    chmod 700 "$PITR_DIR"
    set -- -D "$PITR_DIR" -c port=5432 -c listen_addresses= -c unix_socket_directories="$PITR_WORK/run" \
        -c hba_file="$PITR_WORK/run/pg_hba.conf" -c ident_file="$PITR_WORK/run/pg_ident.conf" \
        -c archive_mode=off -c "restore_command=cp $staging/%f %p 2>/dev/null" \
        -c recovery_target_action=promote -c recovery_target_timeline=latest \
        -c timezone=UTC -c lc_messages=C -c logging_collector=off -c log_destination=stderr
    if [ -n "$PITR_TO" ]; then set -- "$@" -c "recovery_target_time=$pg_target"; fi
    # Recovery refuses to start with fewer connections, workers, senders, prepared transactions or locks
    # than the server that wrote the WAL (the live server gets them on its command line, which the base
    # backup does not hold); pg_control records them.
    controldata=$(command -v pg_controldata || echo "$(dirname "$pg_bin")/pg_controldata")
    for setting in $(LC_ALL=C "$controldata" "$PITR_DIR" | awk -F': *' '
        $1 == "max_connections setting" { print "max_connections=" $2 }
        $1 == "max_worker_processes setting" { print "max_worker_processes=" $2 }
        $1 == "max_wal_senders setting" { print "max_wal_senders=" $2 }
        $1 == "max_prepared_xacts setting" { print "max_prepared_transactions=" $2 }
        $1 == "max_locks_per_xact setting" { print "max_locks_per_transaction=" $2 }'); do
        set -- "$@" -c "$setting"
    done
    # shellcheck disable=SC2086 # the runner is a command and its arguments
    $runas "$pg_bin" "$@" >"$PG_LOG" 2>&1 &
    PG_PID=$!

    # Promoted = the postmaster reports "ready" (postmaster.pid's status line) and SQL agrees.
    waited=0
    ready_seen=0
    while :; do
        if ! kill -0 "$PG_PID" 2>/dev/null; then
            st=0
            wait "$PG_PID" || st=$?
            PG_PID=""
            pitr_failed "$st"
        fi
        pm_status=$(sed -n 8p "$PITR_DIR/postmaster.pid" 2>/dev/null | tr -d ' ' || true)
        if [ "$pm_status" = ready ]; then
            in_recovery=$(pitr_sql "SELECT pg_is_in_recovery()" || true)
            [ "$in_recovery" != f ] || break
            # Ready is only reported once recovery has ended; no role to confirm it is no reason to wait.
            if [ -z "$in_recovery" ] && [ "$ready_seen" -ge 10 ]; then break; fi
            ready_seen=$((ready_seen + 1))
        fi
        if [ "$waited" -ge "$PITR_WAIT_SECONDS" ]; then
            tail -n 25 "$PG_LOG" >&2
            die "point-in-time restore FAILED: not promoted after ${PITR_WAIT_SECONDS}s (raise PITR_WAIT_SECONDS for a long replay). $PITR_DIR is left as it is: delete it"
        fi
        if [ "$waited" -gt 0 ] && [ $((waited % 10)) = 0 ]; then
            last=$(sed -n 's/.*restored log file "\([^"]*\)" from archive.*/\1/p' "$PG_LOG" | tail -n 1)
            log "recovering for ${waited}s$([ -z "$last" ] || echo ", replaying $last")"
        fi
        sleep 1
        waited=$((waited + 1))
    done

    replay=$(pitr_sql "SELECT coalesce(pg_last_xact_replay_timestamp()::text, '')" || true)
    [ -n "$replay" ] || replay=$(last_replayed)
    timeline=$(sed -n 's/.*selected new timeline ID: \([0-9]*\).*/\1/p' "$PG_LOG" | tail -n 1)
    if [ -n "$replay" ]; then
        log "recovered to $replay (the last transaction replayed); promoted on timeline ${timeline:-?}"
    else
        log "recovered to the end of base backup $PITR_BASE (no transaction replayed after it); promoted on timeline ${timeline:-?}"
    fi

    kill -INT "$PG_PID"
    i=0
    while kill -0 "$PG_PID" 2>/dev/null; do
        [ "$i" -lt 300 ] || die "PostgreSQL did not stop within 300 s after recovery; $PITR_DIR is left as it is"
        sleep 1
        i=$((i + 1))
    done
    st=0
    wait "$PG_PID" || st=$?
    PG_PID=""
    [ "$st" = 0 ] || die "PostgreSQL stopped with status $st after recovery; $PITR_DIR is left as it is: delete it"
    rm -rf "$PITR_WORK"
    PITR_WORK=""
    trap - EXIT INT TERM
    log "point-in-time restore ok: $PITR_DIR holds base backup $PITR_BASE recovered to ${replay:-its end}"
    printf 'base=%s\ntarget=%s\nrecovered_to=%s\ntimeline=%s\n' "$PITR_BASE" "${PITR_TO:-latest}" "$replay" "$timeline"
}

cmd_list() {
    list_backups | sort -r | while read -r name; do
        printf '%s\t%s bytes\n' "$name" "$(wc -c <"$BACKUP_DIR/$name" | tr -d ' ')"
    done
    # Base backups and WAL only where there are any: a stack without them lists as before.
    list_bases | sort -k1,1nr | while read -r finished name start_wal; do
        printf 'base/%s\t%s bytes\tfinished %s\tWAL from %s\n' "$name" "$(marker_get "$BASE_DIR/$name/done" size)" "$(iso_of "$finished")" "$start_wal"
    done
    if [ -n "$(list_wal)" ]; then wal_range; fi
}

cmd_status() {
    for f in "$SUCCESS" "$FAILURE" "$VERIFY_SUCCESS" "$VERIFY_FAILURE" "$BASE_SUCCESS" "$BASE_FAILURE" "$OFFSITE_SUCCESS" "$OFFSITE_FAILURE"; do
        [ -f "$f" ] || continue
        echo "[$(basename "$f")]"
        cat "$f"
    done
    if [ -n "$(list_bases)" ] || [ -n "$(list_wal)" ]; then
        echo "[base backups, newest first]"
        list_bases | sort -k1,1nr | while read -r finished name start_wal; do
            printf 'base/%s\tfinished %s\tWAL from %s\n' "$name" "$(iso_of "$finished")" "$start_wal"
        done
        wal_range
    fi
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

# due CRON FROM TO: the schedule matches a minute from FROM to TO (epoch seconds of whole minutes, both
# included). Past a day of minutes it assumes so rather than spend the time.
due() {
    [ -n "$1" ] || return 1
    m=$2
    n=0
    while [ "$m" -le "$3" ]; do
        n=$((n + 1))
        [ "$n" -le 1440 ] || return 0
        # shellcheck disable=SC2046 # split into the five fields on purpose
        cron_match "$1" $(date -d "@$m" +'%M %H %d %m %w') && return 0
        m=$((m + 60))
    done
    return 1
}

# missed CRON: the schedule matched a minute after the last one the scheduler looked at and before the
# current one: it was not running then (the host was down, the container stopped).
missed() {
    tick=$(marker_get "$SCHEDULER_TICK" time)
    case $tick in '' | *[!0-9]*) return 1 ;; esac
    due "$1" $((tick / 60 * 60 + 60)) $(($(now) / 60 * 60 - 60))
}

# Why a job is due at the scheduler's start although its schedule does not say so now (empty: it is
# not): its last run was killed or failed, or its time came while the scheduler was not running. A host
# rebooted at backup time (PostgreSQL stops first, so the dump fails) would otherwise wait a day for the
# next backup, its check failing all the while.
catch_up_reason() {
    case $1 in
        run)
            if [ -f "$RUN_STARTED" ]; then
                echo "the backup started at $(marker_get "$RUN_STARTED" iso) was interrupted"
            elif [ -f "$FAILURE" ]; then
                echo "the last backup failed at $(marker_get "$FAILURE" iso) ($(marker_get "$FAILURE" reason))"
            elif missed "$BACKUP_SCHEDULE"; then
                echo "a backup fell due while the scheduler was not running"
            fi
            ;;
        base)
            # Without any base backup, the loop takes the first one anyway.
            [ -n "$BASE_SCHEDULE" ] && [ -n "$(list_bases)" ] || return 0
            partial=""
            for p in "$BASE_DIR"/.$(base_pattern).partial; do [ -e "$p" ] && partial=1; done
            if [ -n "$partial" ]; then
                echo "a base backup was interrupted"
            elif failed_last "$BASE_SUCCESS" "$BASE_FAILURE"; then
                echo "the last base backup failed at $(marker_get "$BASE_FAILURE" iso) ($(marker_get "$BASE_FAILURE" reason))"
            elif missed "$BASE_SCHEDULE"; then
                echo "a base backup fell due while the scheduler was not running"
            fi
            ;;
        volumes)
            [ -n "$VOLUMES" ] && [ -n "$VOLUME_SCHEDULE" ] || return 0
            if failed_last "$VOLUMES_SUCCESS" "$VOLUMES_FAILURE"; then
                echo "the last archive of the app volumes failed at $(marker_get "$VOLUMES_FAILURE" iso)"
            elif missed "$VOLUME_SCHEDULE"; then
                echo "an archive of the app volumes fell due while the scheduler was not running"
            fi
            ;;
    esac
}

# db_ready SECONDS: PostgreSQL accepts connections within SECONDS (after a reboot it may start after us).
db_ready() {
    deadline=$(($(date +%s) + $1))
    while :; do
        pg_isready -q -t 5 >/dev/null 2>&1 && return 0
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 2
    done
}

cmd_schedule() {
    mkdir -p "$BACKUP_DIR"
    chmod 700 "$BACKUP_DIR" || log "cannot restrict $BACKUP_DIR to its owner"
    [ -f "$INSTALLED" ] || write_marker "$INSTALLED" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    log "scheduled: backups at '$BACKUP_SCHEDULE', verification at '$VERIFY_SCHEDULE', base backups at '${BASE_SCHEDULE:-never}' (TZ=${TZ:-UTC}); keep $KEEP_DAILY daily, $KEEP_WEEKLY weekly, $KEEP_MONTHLY monthly; base backups and WAL for $PITR_DAYS days"
    catch_up_run=$(catch_up_reason run)
    catch_up_base=$(catch_up_reason base)
    catch_up_volumes=$(catch_up_reason volumes)
    # Every minute is looked at once, from the current one on (not again if a restart came within it).
    next=$(($(now) / 60 * 60))
    tick=$(marker_get "$SCHEDULER_TICK" time)
    case $tick in '' | *[!0-9]*) ;; *) [ "$tick" -lt "$next" ] || next=$((tick + 60)) ;; esac
    db_wait=60
    first_base_try=0
    while :; do
        cur=$(($(now) / 60 * 60))
        if [ "$cur" -lt "$next" ]; then
            sleep $((61 - $(date +%S | sed 's/^0//')))
            continue
        fi
        # The minutes from NEXT to now: one, unless a run took longer than a minute; then what fell due
        # meanwhile runs once, now, instead of never.
        from=$next
        next=$((cur + 60))
        # Not fatal: on a full disk the scheduler must go on, and its runs report the real problem.
        write_marker "$SCHEDULER_TICK" "time=$cur" 2>/dev/null || rm -f "$SCHEDULER_TICK.tmp.$$"
        run_due=""
        base_due=""
        due "$BACKUP_SCHEDULE" "$from" "$cur" && run_due=1
        [ -z "$BASE_SCHEDULE" ] || ! due "$BASE_SCHEDULE" "$from" "$cur" || base_due=1
        # Catching up, unless the schedule runs the job now anyway: once PostgreSQL answers (a minute's
        # wait the first time, then a try a minute).
        [ -z "$run_due" ] || catch_up_run=""
        [ -z "$base_due" ] || catch_up_base=""
        if [ -n "$catch_up_run$catch_up_base" ]; then
            if db_ready "$db_wait"; then
                if [ -n "$catch_up_run" ]; then
                    log "$catch_up_run: taking a backup now"
                    ("$0" run) || log "the catch-up backup failed (see above); the check still fails"
                    catch_up_run=""
                fi
                if [ -n "$catch_up_base" ]; then
                    log "$catch_up_base: taking a base backup now"
                    ("$0" base) || log "the catch-up base backup failed (see above); the check still fails"
                    catch_up_base=""
                fi
            elif [ "$db_wait" -gt 0 ]; then
                log "to catch up ($catch_up_run$catch_up_base): PostgreSQL does not answer yet; trying again every minute"
            fi
            db_wait=0
        fi
        # Point-in-time recovery starts at a base backup: without one (a new stack, PITR just turned
        # on, a new host), take it now rather than at the next scheduled time; retried every 5 minutes.
        if [ -n "$BASE_SCHEDULE" ] && [ -z "$(list_bases)" ] && [ $(($(now) - first_base_try)) -ge 300 ]; then
            first_base_try=$(now)
            base_due=""
            log "no base backup yet: taking the first one now"
            ("$0" base) || log "the first base backup failed (see above); tried again in 5 minutes"
        fi
        if [ -n "$run_due" ]; then ("$0" run) || log "scheduled backup failed (see above); the check now fails"; fi
        if due "$VERIFY_SCHEDULE" "$from" "$cur"; then ("$0" verify) || log "scheduled verification failed (see above); the check now fails"; fi
        if [ -n "$base_due" ]; then ("$0" base) || log "scheduled base backup failed (see above); the check now fails"; fi
        if [ -n "$VOLUMES" ] && [ -n "$VOLUME_SCHEDULE" ]; then
            if due "$VOLUME_SCHEDULE" "$from" "$cur"; then
                ("$0" volumes) || log "scheduled volume archive failed (see above); the check now fails"
            elif [ -n "$catch_up_volumes" ]; then
                log "$catch_up_volumes: archiving them now"
                ("$0" volumes) || log "the catch-up volume archive failed (see above); the check still fails"
            fi
            catch_up_volumes=""
        fi
    done
}

# ---------------------------------------------------------------------------------------------------
# volumes: each app volume in VOLUMES (mounted read-only under VOLUMES_DIR) archived as
# volumes/<id>-<time>.tar.gz with its sha256, made under a temporary name; the dumps' retention per
# volume. Restored by scripts/restore.sh --volume, on the host.
# ---------------------------------------------------------------------------------------------------

cmd_volumes() {
    [ -n "$VOLUMES" ] || die "no app volume to archive (VOLUMES is empty)"
    mkdir -p "$BACKUP_DIR/volumes"
    exec 8>"$BACKUP_DIR/.lock-volumes"
    flock -n 8 || { log "another volume archive is running; not starting a second one"; exit 75; }
    started=$(now)
    failed=""
    for id in $VOLUMES; do
        case $id in *[!a-z0-9-]* | '') die "bad volume id '$id'" ;; esac
        src="$VOLUMES_DIR/$id"
        name="$id-$(date -u +%Y%m%dT%H%M%SZ).tar.gz"
        partial="$BACKUP_DIR/volumes/.$name.partial"
        if [ ! -d "$src" ]; then
            log "ERROR: volume $id is not mounted at $src"
            failed="$failed $id"
            continue
        fi
        # Owners, modes and times as they are: a restore puts back exactly these files.
        if ! tar -C "$src" -czf "$partial" . || ! tar -tzf "$partial" >/dev/null; then
            rm -f "$partial"
            log "ERROR: archive of volume $id failed"
            failed="$failed $id"
            continue
        fi
        printf '%s  %s
' "$(sha256_of "$partial")" "$name" >"$partial.sha256"
        mv -f "$partial.sha256" "$BACKUP_DIR/volumes/$name.sha256"
        mv -f "$partial" "$BACKUP_DIR/volumes/$name"
        log "volume $id archived: volumes/$name ($(wc -c <"$BACKUP_DIR/volumes/$name" | tr -d ' ') bytes)"
        for f in "$BACKUP_DIR/volumes/$id"-*.tar.gz; do [ -f "$f" ] && basename "$f"; done | sort -r |
            RETENTION_PREFIX=$id RETENTION_SUFFIX=.tar.gz retention | while read -r action old; do
                [ "$action" = delete ] || continue
                if ! offsite_shipped "$BACKUP_DIR/volumes/$old" "$BACKUP_DIR/volumes/$old.sha256"; then
                    log "retention: kept volumes/$old: not off-site yet"
                    continue
                fi
                rm -f "$BACKUP_DIR/volumes/$old" "$BACKUP_DIR/volumes/$old.sha256"
                log "retention: deleted volumes/$old"
            done
    done
    if [ -n "$failed" ]; then
        write_marker "$VOLUMES_FAILURE" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "reason=could not archive:$failed"
        die "volume archives FAILED for:$failed"
    fi
    write_marker "$VOLUMES_SUCCESS" "time=$(now)" "iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "volumes=$VOLUMES" "seconds=$(($(now) - started))"
    rm -f "$VOLUMES_FAILURE"
}

# Part of check: with VOLUMES, the last archive run must be good and younger than MAX_AGE_HOURS.
volumes_check() {
    [ -n "$VOLUMES" ] || return 0
    t=$(now)
    ok=$(marker_get "$VOLUMES_SUCCESS" time)
    if failed_last "$VOLUMES_SUCCESS" "$VOLUMES_FAILURE"; then
        echo "FAIL: the last archive of the app volumes failed at $(marker_get "$VOLUMES_FAILURE" iso): $(marker_get "$VOLUMES_FAILURE" reason)"
        return 1
    fi
    if [ -z "$ok" ]; then
        installed=$(marker_get "$INSTALLED" time)
        if [ -n "$installed" ] && [ $((t - installed)) -le $((MAX_AGE_HOURS * 3600)) ]; then return 0; fi
        echo "FAIL: no archive of the app volumes ($VOLUMES) yet"
        return 1
    fi
    if [ $((t - ok)) -gt $((MAX_AGE_HOURS * 3600)) ]; then
        echo "FAIL: the last archive of the app volumes is $(((t - ok) / 3600))h old; the limit is ${MAX_AGE_HOURS}h"
        return 1
    fi
    echo "OK: app volumes ($VOLUMES) archived $(((t - ok) / 60)) min ago"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    run) cmd_run ;;
    volumes) cmd_volumes ;;
    check) cmd_check ;;
    verify) cmd_verify "$@" ;;
    restore) cmd_restore "$@" ;;
    list) cmd_list ;;
    status) cmd_status ;;
    schedule) cmd_schedule ;;
    base) cmd_base ;;
    receive-wal) cmd_receive_wal ;;
    wal-check) cmd_wal_check ;;
    pitr-restore-into) cmd_pitr_restore_into "$@" ;;
    retention) retention ;;
    cron-match) cron_match "$@" ;;
    *)
        awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0" >&2
        exit 2
        ;;
esac
