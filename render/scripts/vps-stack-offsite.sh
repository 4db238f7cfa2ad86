#!/bin/sh
# vps-stack-offsite: the off-site copy of the backup directory (dumps, base backups, WAL), encrypted by
# restic on the VPS and sent to an S3-compatible store. Runs in the stack's restic container (the
# official restic image: Alpine, busybox) with the host's backup directory at BACKUP_DIR and, in tests,
# directly on a machine with restic 0.14 or later. POSIX sh + sed: works with busybox, dash and bash.
#
#   vps-stack-offsite init                   create the repository when there is none (never over an existing one)
#   vps-stack-offsite upload                 one snapshot of BACKUP_DIR now (waits up to LOCK_WAIT s for one running)
#   vps-stack-offsite forget                 drop the snapshots the retention no longer keeps, and prune the store
#   vps-stack-offsite schedule               init, then upload every UPLOAD_INTERVAL s and forget every PRUNE_INTERVAL s (the container's main process)
#   vps-stack-offsite check                  exit 1 if the last upload failed or is older than MAX_UPLOAD_AGE (the healthcheck)
#   vps-stack-offsite shipped EPOCH          exit 0 when an upload that started at or after EPOCH succeeded
#   vps-stack-offsite status                 markers, the last 5 snapshots, the size of the latest in the store
#   vps-stack-offsite restore-into DIR [SNAPSHOT]  the backup directory as SNAPSHOT (default: the latest) held it, into
#                                            the empty directory DIR (then: vps-stack-backup pitr-restore-into with BACKUP_DIR=DIR)
#   vps-stack-offsite adopt [WHY]            take this directory as the history to upload (a new host holds until then)
#   vps-stack-offsite fetch-dump             the newest dump of the latest snapshot into BACKUP_DIR/offsite-verify/ (daily, by schedule)
#   vps-stack-offsite verify [PERCENT]       restic check, reading PERCENT% (default 10; 0: none) of the stored data back
#
# Settings (environment): RESTIC_REPOSITORY (s3:http[s]://host[:port]/bucket/prefix), RESTIC_PASSWORD_FILE,
# AWS_SHARED_CREDENTIALS_FILE, AWS_DEFAULT_REGION, S3_PATH_STYLE (1 = path-style bucket addressing),
# BACKUP_DIR, OFFSITE_HOST (the snapshots' host: the stack), UPLOAD_INTERVAL, KEEP_WITHIN KEEP_DAILY
# KEEP_WEEKLY KEEP_MONTHLY, MAX_UPLOAD_AGE, PRUNE_INTERVAL, LOCK_WAIT. Secrets only as files: the
# passphrase and the S3 key never appear in an environment variable or on a command line.
set -eu
# Markers and restored files are the database's metadata and contents: private to the owner.
umask 077

BACKUP_DIR=${BACKUP_DIR:-/backups}
OFFSITE_HOST=${OFFSITE_HOST:-vps-stack}
RESTIC_PASSWORD_FILE=${RESTIC_PASSWORD_FILE:-/run/secrets/restic-password}
AWS_SHARED_CREDENTIALS_FILE=${AWS_SHARED_CREDENTIALS_FILE:-/run/secrets/aws-credentials}
S3_PATH_STYLE=${S3_PATH_STYLE:-0}
# Half the RPO: a loss of the host loses at most an interval plus one upload's duration of writes.
UPLOAD_INTERVAL=${UPLOAD_INTERVAL:-30}
KEEP_WITHIN=${KEEP_WITHIN:-2d}
KEEP_DAILY=${KEEP_DAILY:-7}
KEEP_WEEKLY=${KEEP_WEEKLY:-4}
KEEP_MONTHLY=${KEEP_MONTHLY:-6}
# Two missed uploads and a minute for a slow one.
MAX_UPLOAD_AGE=${MAX_UPLOAD_AGE:-$((3 * UPLOAD_INTERVAL + 60))}
PRUNE_INTERVAL=${PRUNE_INTERVAL:-86400}
LOCK_WAIT=${LOCK_WAIT:-600}
export RESTIC_PASSWORD_FILE AWS_SHARED_CREDENTIALS_FILE

SUCCESS="$BACKUP_DIR/offsite-last-success"
FAILURE="$BACKUP_DIR/offsite-last-failure"
PRUNED="$BACKUP_DIR/offsite-last-prune"
PRUNE_FAILURE="$BACKUP_DIR/offsite-last-prune-failure"
VERIFY_SUCCESS="$BACKUP_DIR/offsite-last-verify-success"
VERIFY_FAILURE="$BACKUP_DIR/offsite-last-verify-failure"
INSTALLED="$BACKUP_DIR/.offsite-installed"
# A directory that never uploaded, facing a store that already has this stack's snapshots (a new host
# after a disaster, a backup directory deleted): uploading it would make an empty or unrelated snapshot
# the newest one. HOLD says the uploader waits; ADOPTED says this directory's history is the one to keep
# (written by `adopt`, after a restore, or when the store had nothing).
HOLD="$BACKUP_DIR/offsite-hold"
ADOPTED="$BACKUP_DIR/.offsite-adopted"
LOCK_FILE="$BACKUP_DIR/.lock-offsite"
TAG=vps-stack

log() { printf '%s vps-stack-offsite: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Tests set VPS_STACK_NOW (epoch seconds) to move the clock; uploads then carry that time too.
now() { if [ -n "${VPS_STACK_NOW:-}" ]; then echo "$VPS_STACK_NOW"; else date -u +%s; fi; }
iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "@$1"; }

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

is_number() { case ${1:-} in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

# What every command that talks to the store needs. The secrets' own variables are refused rather than
# ignored: restic would prefer them to the files, and `docker inspect` shows them.
need_repo() {
    [ -n "${RESTIC_REPOSITORY:-}" ] || die "RESTIC_REPOSITORY is not set (s3:https://host/bucket/prefix)"
    [ -z "${RESTIC_PASSWORD:-}" ] || die "RESTIC_PASSWORD is set: the passphrase comes from RESTIC_PASSWORD_FILE only"
    [ -z "${AWS_SECRET_ACCESS_KEY:-}" ] || die "AWS_SECRET_ACCESS_KEY is set: the S3 key comes from AWS_SHARED_CREDENTIALS_FILE only"
    [ -r "$RESTIC_PASSWORD_FILE" ] || die "cannot read the passphrase file $RESTIC_PASSWORD_FILE"
    case $RESTIC_REPOSITORY in
        s3:*) [ -r "$AWS_SHARED_CREDENTIALS_FILE" ] || die "cannot read the S3 credentials file $AWS_SHARED_CREDENTIALS_FILE" ;;
    esac
    for v in "UPLOAD_INTERVAL=$UPLOAD_INTERVAL" "MAX_UPLOAD_AGE=$MAX_UPLOAD_AGE" "PRUNE_INTERVAL=$PRUNE_INTERVAL" "KEEP_DAILY=$KEEP_DAILY" "KEEP_WEEKLY=$KEEP_WEEKLY" "KEEP_MONTHLY=$KEEP_MONTHLY"; do
        is_number "${v#*=}" || die "${v%%=*} must be a whole number, not '${v#*=}'"
    done
}

# ---------------------------------------------------------------------------------------------------
# restic runs in the background and the shell waits for it: a shell defers traps until a foreground
# command ends, and a SIGTERM must reach restic at once. restic stops cleanly on SIGINT (it removes
# its lock in the repository); 0.14 does not handle SIGTERM.
# ---------------------------------------------------------------------------------------------------
RESTIC_PID=""
restic_run() { # OUT ERR ARGS...: stdout to OUT, stderr to ERR
    r_out=$1
    r_err=$2
    shift 2
    if [ "$S3_PATH_STYLE" = 1 ]; then set -- -o s3.bucket-lookup=path "$@"; fi
    if [ -n "${AWS_DEFAULT_REGION:-}" ]; then set -- -o "s3.region=$AWS_DEFAULT_REGION" "$@"; fi
    restic "$@" >"$r_out" 2>"$r_err" &
    RESTIC_PID=$!
    r_st=0
    wait "$RESTIC_PID" || r_st=$?
    RESTIC_PID=""
    return "$r_st"
}

interrupted() {
    trap - INT TERM
    if [ -n "$RESTIC_PID" ]; then
        log "$1: stopping restic (it removes its lock)"
        kill -INT "$RESTIC_PID" 2>/dev/null || true
        wait "$RESTIC_PID" 2>/dev/null || true
    fi
    log "$1: interrupted by a signal; nothing was recorded"
    exit 143
}

WORK=""
work_dir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/vps-stack-offsite.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
}

# The message to record: restic's last "Fatal:" line, else its last line.
last_error() {
    line=$(grep -i 'fatal' "$1" 2>/dev/null | tail -n 1 || true)
    [ -n "$line" ] || line=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 || true)
    printf '%s\n' "${line:-restic exited with status ${2:-?} and said nothing}" | cut -c 1-300
}

# Waits up to LOCK_WAIT s for the uploader's lock (an upload is short), so that a command run by hand
# goes on after the scheduled upload it ran into; the scheduler itself passes nowait and skips a turn.
lock() {
    mkdir -p "$BACKUP_DIR"
    exec 9>"$LOCK_FILE"
    flock -n 9 && return 0
    if [ "${1:-}" = nowait ]; then
        log "an upload, forget or verify is running (lock: $LOCK_FILE); not starting a second one"
        exit 75
    fi
    waited=0
    until flock -n 9; do
        if [ "$waited" -ge "$LOCK_WAIT" ]; then
            log "the uploader's lock ($LOCK_FILE) is still held after ${LOCK_WAIT}s; giving up"
            exit 75
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# ---------------------------------------------------------------------------------------------------
# init: `restic cat config` tells an existing repository (0), a missing one, a wrong passphrase and an
# unreachable store apart; only a missing one is initialised. Exit 0 ok, 1 wrong passphrase or a
# failed init, 2 the store could not be asked (down, refused, no such host).
# ---------------------------------------------------------------------------------------------------
INIT_ERROR=""
repo_init() {
    st=0
    restic_run "$WORK/out" "$WORK/err" cat config || st=$?
    if [ "$st" = 0 ]; then
        log "repository $RESTIC_REPOSITORY exists and the passphrase opens it"
        return 0
    fi
    # restic 0.17 and later: 10 = no repository, 12 = wrong passphrase; 0.14 says it in words only.
    if [ "$st" = 12 ] || grep -q -e 'wrong password' -e 'no key found' "$WORK/err"; then
        INIT_ERROR="the passphrase in $RESTIC_PASSWORD_FILE does not open the existing repository $RESTIC_REPOSITORY; it is never initialised again over one: restore the right passphrase"
        return 1
    fi
    if [ "$st" = 10 ] || { grep -q 'unable to open config file' "$WORK/err" && grep -q -e 'does not exist' -e 'NoSuchKey' -e 'NoSuchBucket' "$WORK/err"; }; then
        log "no repository at $RESTIC_REPOSITORY yet: creating it"
        st=0
        restic_run "$WORK/out" "$WORK/err" init --repository-version 2 || st=$?
        if [ "$st" != 0 ]; then
            cat "$WORK/err" >&2
            INIT_ERROR="restic init failed: $(last_error "$WORK/err" "$st")"
            return 1
        fi
        log "repository created at $RESTIC_REPOSITORY"
        return 0
    fi
    cat "$WORK/err" >&2
    INIT_ERROR="cannot reach the repository $RESTIC_REPOSITORY: $(last_error "$WORK/err" "$st")"
    return 2
}

cmd_init() {
    need_repo
    work_dir
    st=0
    repo_init || st=$?
    [ "$st" = 0 ] || { log "ERROR: $INIT_ERROR"; exit "$st"; }
}

# ---------------------------------------------------------------------------------------------------
# upload: one snapshot of the whole directory. In-progress files are left out (they are renamed into
# place when complete, and picked up then), and so is the backup scheduler's state. The current WAL
# segment, NAME.partial, is not in progress in that sense: it holds the latest writes, and sending it is
# what keeps the RPO.
# ---------------------------------------------------------------------------------------------------
upload_once() {
    started=$(now)
    set -- backup --json --host "$OFFSITE_HOST" --tag "$TAG" \
        --exclude '.*.partial' --exclude '.*.partial.*' --exclude '.lock*' --exclude '*.tmp.[0-9]*' \
        --exclude 'pitr-before-*' --exclude 'offsite-*' --exclude '.offsite-*' \
        --exclude '.scheduler-tick' --exclude '.run-started' "$BACKUP_DIR"
    # restic reads --time in the local time zone, as date prints it.
    if [ -n "${VPS_STACK_NOW:-}" ]; then set -- "$@" --time "$(date -d "@$VPS_STACK_NOW" '+%Y-%m-%d %H:%M:%S')"; fi
    st=0
    restic_run "$WORK/out" "$WORK/err" "$@" || st=$?
    summary=$(grep '"message_type":"summary"' "$WORK/out" | tail -n 1 || true)
    snapshot=$(printf '%s\n' "$summary" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
    added=$(printf '%s\n' "$summary" | sed -n 's/.*"data_added":\([0-9]*\).*/\1/p')
    return "$st"
}

cmd_upload() {
    need_repo
    [ -d "$BACKUP_DIR" ] || die "no backup directory $BACKUP_DIR"
    lock "$1"
    work_dir
    if [ ! -f "$ADOPTED" ] && [ ! -f "$SUCCESS" ]; then
        st=0
        restic_run "$WORK/out" "$WORK/err" snapshots --json --host "$OFFSITE_HOST" --tag "$TAG" --latest 1 || st=$?
        if [ "$st" != 0 ]; then
            cat "$WORK/err" >&2
            reason=$(last_error "$WORK/err" "$st")
            write_marker "$FAILURE" "time=$(now)" "iso=$(iso_of "$(now)")" "started=$(now)" "reason=cannot list the store's snapshots: $reason"
            die "cannot list the store's snapshots: $reason"
        fi
        latest=$(sed -n 's/.*"short_id":"\([0-9a-f]*\)".*/\1/p' "$WORK/out" | tail -n 1)
        if [ -n "$latest" ]; then
            [ -f "$HOLD" ] || log "HOLDING: the store already has snapshots of $OFFSITE_HOST (the newest: $latest) and this directory never uploaded; restore from it (scripts/restore.sh --from-offsite) or take this directory as the new history (vps-stack-offsite adopt)"
            write_marker "$HOLD" "time=$(now)" "iso=$(iso_of "$(now)")" "snapshot=$latest"
            return 0
        fi
        write_marker "$ADOPTED" "time=$(now)" "iso=$(iso_of "$(now)")" "why=the store had no snapshot of $OFFSITE_HOST"
    fi
    trap 'interrupted upload' INT TERM
    log "upload of $BACKUP_DIR to $RESTIC_REPOSITORY (host $OFFSITE_HOST)"
    attempt=1
    while :; do
        st=0
        upload_once || st=$?
        # 3 = a snapshot was saved without some file: one that went away while read, such as the WAL
        # segment the receiver renamed when it was complete. Once more at once, rather than record a
        # failure for a race; a file that cannot be read twice is a failure.
        if [ "$st" = 3 ] && [ "$attempt" = 1 ]; then
            log "snapshot ${snapshot:-?} is incomplete ($(unread_items)); uploading again"
            attempt=2
            continue
        fi
        break
    done
    trap - INT TERM
    finished=$(now)
    if [ "$st" != 0 ] || [ -z "$snapshot" ]; then
        cat "$WORK/err" >&2
        if [ "$st" = 3 ]; then
            reason="incomplete snapshot ${snapshot:-?}: could not read $(unread_items)"
        else
            reason=$(last_error "$WORK/err" "$st")
        fi
        write_marker "$FAILURE" "time=$finished" "iso=$(iso_of "$finished")" "started=$started" "reason=$reason"
        die "upload FAILED: $reason; nothing local was touched"
    fi
    write_marker "$SUCCESS" "started=$started" "finished=$finished" "iso=$(iso_of "$started")" "snapshot=$snapshot" "added=${added:-}" "seconds=$((finished - started))"
    rm -f "$FAILURE"
    log "upload ok: snapshot $snapshot, ${added:-?} bytes added, $((finished - started))s"
}

unread_items() {
    items=$(sed -n 's/.*"message_type":"error".*"item":"\([^"]*\)".*/\1/p' "$WORK/out" | head -n 3 | tr '\n' ' ')
    [ -n "$items" ] || items=$(last_error "$WORK/err")
    printf '%s\n' "$items" | sed 's/ *$//'
}

# ---------------------------------------------------------------------------------------------------
# forget: GFS over the snapshots, like the local dumps' retention, plus every snapshot within
# KEEP_WITHIN of the newest. Each snapshot holds the whole directory, so the newest always has every
# kept dump, base backup and the WAL they need; older ones are the store's history. Then prune.
# ---------------------------------------------------------------------------------------------------
cmd_forget() {
    need_repo
    lock
    work_dir
    trap 'interrupted forget' INT TERM
    started=$(now)
    log "forget: keep within $KEEP_WITHIN of the newest, $KEEP_DAILY daily, $KEEP_WEEKLY weekly, $KEEP_MONTHLY monthly; prune"
    st=0
    restic_run "$WORK/out" "$WORK/err" forget --host "$OFFSITE_HOST" --tag "$TAG" --keep-within "$KEEP_WITHIN" \
        --keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --keep-monthly "$KEEP_MONTHLY" --prune || st=$?
    trap - INT TERM
    cat "$WORK/out" >&2
    if [ "$st" != 0 ]; then
        cat "$WORK/err" >&2
        reason=$(last_error "$WORK/err" "$st")
        write_marker "$PRUNE_FAILURE" "time=$(now)" "iso=$(iso_of "$(now)")" "reason=$reason"
        die "forget FAILED: $reason"
    fi
    # "remove 3 snapshots:" for each group that lost some.
    removed=$(sed -n 's/^remove \([0-9]*\) snapshots.*/\1/p' "$WORK/out" | awk '{ n += $1 } END { print n + 0 }')
    write_marker "$PRUNED" "time=$(now)" "iso=$(iso_of "$(now)")" "seconds=$(($(now) - started))" "removed=$removed"
    rm -f "$PRUNE_FAILURE"
    log "forget ok: $removed snapshots removed$([ "$removed" = 0 ] || echo ", the store pruned")"
}

# ---------------------------------------------------------------------------------------------------
# check: the healthcheck; reads markers only (no request to the store). Fails when the last upload
# failed after the last success, when the last success started more than MAX_UPLOAD_AGE s ago (what
# is off-site is older than that), or when the last verification found damage. A first start gets
# MAX_UPLOAD_AGE s of grace for its first upload.
# ---------------------------------------------------------------------------------------------------
cmd_check() {
    t=$(now)
    ok_started=$(marker_get "$SUCCESS" started)
    ok_finished=$(marker_get "$SUCCESS" finished)
    fail_time=$(marker_get "$FAILURE" time)
    vfail_time=$(marker_get "$VERIFY_FAILURE" time)
    vok_time=$(marker_get "$VERIFY_SUCCESS" time)
    installed=$(marker_get "$INSTALLED" time)
    if [ -n "$fail_time" ] && { [ -z "$ok_finished" ] || [ "$fail_time" -ge "$ok_finished" ]; }; then
        echo "FAIL: the last off-site upload failed at $(marker_get "$FAILURE" iso): $(marker_get "$FAILURE" reason)"
        exit 1
    fi
    if [ -n "$vfail_time" ] && { [ -z "$vok_time" ] || [ "$vfail_time" -ge "$vok_time" ]; }; then
        echo "FAIL: the last verification of the off-site store failed at $(marker_get "$VERIFY_FAILURE" iso): $(marker_get "$VERIFY_FAILURE" reason)"
        exit 1
    fi
    if [ -z "$ok_started" ] && [ -f "$HOLD" ] && [ ! -f "$ADOPTED" ]; then
        held="the store has snapshots of ${OFFSITE_HOST} (the newest: $(marker_get "$HOLD" snapshot)) and this directory never uploaded: restore from it (scripts/restore.sh --from-offsite) or adopt this directory (vps-stack-offsite adopt)"
        if [ -n "$installed" ] && [ $((t - installed)) -le "$MAX_UPLOAD_AGE" ]; then
            echo "OK: holding uploads: $held"
            return 0
        fi
        echo "FAIL: holding uploads: $held"
        exit 1
    fi
    if [ -z "$ok_started" ]; then
        if [ -n "$installed" ] && [ $((t - installed)) -le "$MAX_UPLOAD_AGE" ]; then
            echo "OK: no upload yet; the first is due within ${MAX_UPLOAD_AGE}s of the first start"
            return 0
        fi
        echo "FAIL: no successful upload to the off-site store (${RESTIC_REPOSITORY:-?})"
        exit 1
    fi
    age=$((t - ok_started))
    if [ "$age" -gt "$MAX_UPLOAD_AGE" ]; then
        echo "FAIL: the last successful off-site upload (snapshot $(marker_get "$SUCCESS" snapshot)) started ${age}s ago; the limit is ${MAX_UPLOAD_AGE}s"
        exit 1
    fi
    echo "OK: last off-site upload ${age}s ago, snapshot $(marker_get "$SUCCESS" snapshot), $(marker_get "$SUCCESS" added) bytes added"
}

# shipped EPOCH: a file last modified at EPOCH is in a snapshot when a successful upload started at or
# after EPOCH. vps-stack-backup's retention asks the same of the same marker (offsite_shipped there).
cmd_shipped() {
    is_number "${1:-}" || die "usage: shipped EPOCH (seconds since 1970)"
    started=$(marker_get "$SUCCESS" started)
    if [ -n "$started" ] && [ "$started" -ge "$1" ]; then
        echo "shipped: the upload of snapshot $(marker_get "$SUCCESS" snapshot) started at $(iso_of "$started"), not before $(iso_of "$1")"
        return 0
    fi
    echo "not shipped: no successful upload started at or after $(iso_of "$1")${started:+ (the last started at $(iso_of "$started"))}"
    exit 1
}

cmd_status() {
    for f in "$SUCCESS" "$FAILURE" "$PRUNED" "$PRUNE_FAILURE" "$VERIFY_SUCCESS" "$VERIFY_FAILURE"; do
        [ -f "$f" ] || continue
        echo "[$(basename "$f")]"
        cat "$f"
    done
    need_repo
    work_dir
    echo "[the last 5 snapshots of $OFFSITE_HOST]"
    if restic_run "$WORK/out" "$WORK/err" snapshots --host "$OFFSITE_HOST" --tag "$TAG" --latest 5; then
        cat "$WORK/out"
    else
        echo "cannot list the snapshots: $(last_error "$WORK/err")"
    fi
    # Raw data of the newest snapshot only: over every snapshot, stats walks thousands of trees.
    echo "[the latest snapshot in the store]"
    if restic_run "$WORK/out" "$WORK/err" stats --mode raw-data --host "$OFFSITE_HOST" --tag "$TAG" latest; then
        grep -v -e '^scanning' -e '^Stats in' -e '^[[:space:]]*$' "$WORK/out" || true
    else
        echo "cannot read the repository's stats: $(last_error "$WORK/err")"
    fi
    cmd_check || true
}

# ---------------------------------------------------------------------------------------------------
# restore-into DIR [SNAPSHOT]: restic restores absolute paths under its target; the snapshot's one
# path (the backup directory it was taken of) is restored into a staging directory inside DIR, and its
# contents moved up, so that DIR is the backup directory as it was.
# ---------------------------------------------------------------------------------------------------
cmd_restore_into() {
    dir=${1:-}
    snap=${2:-latest}
    [ -n "$dir" ] || die "usage: restore-into DIR [SNAPSHOT]"
    case $dir in /*) ;; *) dir="$(pwd)/$dir" ;; esac
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty: restore into an empty directory"
    need_repo
    work_dir
    st=0
    restic_run "$WORK/out" "$WORK/err" snapshots --json --host "$OFFSITE_HOST" --tag "$TAG" "$snap" || st=$?
    if [ "$st" != 0 ]; then
        if [ "$st" = 12 ] || grep -q -e 'wrong password' -e 'no key found' "$WORK/err"; then
            die "the passphrase in $RESTIC_PASSWORD_FILE does not open the repository $RESTIC_REPOSITORY"
        fi
        cat "$WORK/err" >&2
        die "cannot list the snapshots in $RESTIC_REPOSITORY: $(last_error "$WORK/err" "$st")"
    fi
    # One snapshot of one path: [{"time":"…","paths":["/backups"],…,"id":"…",…}]
    id=$(sed -n 's/.*"id":"\([0-9a-f]\{64\}\)".*/\1/p' "$WORK/out" | head -n 1)
    [ -n "$id" ] || die "no snapshot $snap of host $OFFSITE_HOST in $RESTIC_REPOSITORY: nothing to restore"
    src=$(sed -n 's/.*"paths":\["\([^"]*\)"[],].*/\1/p' "$WORK/out" | head -n 1)
    time=$(sed -n 's/.*"time":"\([^"]*\)".*/\1/p' "$WORK/out" | head -n 1)
    case $src in /*) ;; *) die "snapshot $id holds no absolute path ('$src')" ;; esac
    stage="$dir/.offsite-restore.$$"
    # shellcheck disable=SC2064 # the paths are fixed now
    trap "rm -rf '$WORK' '$stage'" EXIT
    trap 'interrupted restore-into' INT TERM
    log "restoring snapshot $id ($time) of $OFFSITE_HOST:$src into $dir"
    st=0
    restic_run "$WORK/out" "$WORK/err" restore "$id" --target "$stage" || st=$?
    trap - INT TERM
    if [ "$st" != 0 ]; then
        cat "$WORK/err" >&2
        rm -rf "$stage"
        die "restic restore failed: $(last_error "$WORK/err" "$st"); $dir is left empty"
    fi
    [ -d "$stage$src" ] || die "the restored snapshot has no $src"
    for f in "$stage$src"/* "$stage$src"/.[!.]* "$stage$src"/..?*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        mv "$f" "$dir/"
    done
    chmod "$(stat -c %a "$stage$src")" "$dir" 2>/dev/null || true
    rm -rf "$stage"
    files=$(find "$dir" -type f | wc -l | tr -d ' ')
    log "restore ok: $dir holds snapshot $id ($time), $files files"
    printf 'snapshot=%s\ntime=%s\npath=%s\nfiles=%s\n' "$id" "$time" "$src" "$files"
}

# ---------------------------------------------------------------------------------------------------
# fetch-dump: the newest dump of the latest snapshot, with its .sha256, into BACKUP_DIR/offsite-verify/
# (replacing what was there), for vps-stack-backup's verification: it then test-restores what is
# off-site, not the local copy. Marker offsite-fetch (time, file, snapshot). Run once a day by schedule.
# ---------------------------------------------------------------------------------------------------
FETCH="$BACKUP_DIR/offsite-fetch"
FETCH_DIR="$BACKUP_DIR/offsite-verify"
cmd_fetch_dump() {
    need_repo
    work_dir
    st=0
    restic_run "$WORK/out" "$WORK/err" ls --json --host "$OFFSITE_HOST" --tag "$TAG" latest || st=$?
    if [ "$st" != 0 ]; then
        cat "$WORK/err" >&2
        die "cannot list the latest snapshot: $(last_error "$WORK/err" "$st")"
    fi
    id=$(sed -n '/"struct_type":"snapshot"/s/.*"id":"\([0-9a-f]\{64\}\)".*/\1/p' "$WORK/out" | head -n 1)
    src=$(sed -n '/"struct_type":"snapshot"/s/.*"paths":\["\([^"]*\)"[],].*/\1/p' "$WORK/out" | head -n 1)
    if [ -z "$id" ] || [ -z "$src" ]; then die "no snapshot of host $OFFSITE_HOST in $RESTIC_REPOSITORY"; fi
    # The dumps at the top of the backup directory (<prefix>-YYYYMMDDTHHMMSSZ.dump), newest by the time in
    # their name.
    dump=$(sed -n 's/.*"path":"\([^"]*-[0-9]\{8\}T[0-9]\{6\}Z\.dump\)".*/\1/p' "$WORK/out" |
        awk -v dir="$src/" 'index($0, dir) == 1 && index(substr($0, length(dir) + 1), "/") == 0' |
        awk -F- '{ print $NF "\t" $0 }' | sort | tail -n 1 | cut -f 2)
    [ -n "$dump" ] || die "the latest off-site snapshot ($id) holds no dump"
    stage="$BACKUP_DIR/.offsite-fetch.$$"
    # shellcheck disable=SC2064 # the paths are fixed now
    trap "rm -rf '$WORK' '$stage'" EXIT
    st=0
    restic_run "$WORK/out" "$WORK/err" restore "$id" --target "$stage" --include "$dump" --include "$dump.sha256" || st=$?
    if [ "$st" != 0 ] || [ ! -f "$stage$dump" ] || [ ! -f "$stage$dump.sha256" ]; then
        cat "$WORK/err" >&2
        die "could not fetch $dump and its checksum from the store: $(last_error "$WORK/err" "$st")"
    fi
    rm -rf "$FETCH_DIR"
    mkdir -p "$FETCH_DIR"
    name=$(basename "$dump")
    mv "$stage$dump" "$FETCH_DIR/$name"
    mv "$stage$dump.sha256" "$FETCH_DIR/$name.sha256"
    write_marker "$FETCH" "time=$(now)" "iso=$(iso_of "$(now)")" "file=$name" "snapshot=$id"
    log "fetched $name from snapshot $id into $FETCH_DIR"
}

# ---------------------------------------------------------------------------------------------------
# verify [PERCENT]: restic check reads the index and the snapshots' trees, lists every object, and reads
# PERCENT% of the data packs back from the store (with a fresh cache): a missing object fails it, a
# damaged one when it is among those read.
# ---------------------------------------------------------------------------------------------------
cmd_verify() {
    pct=${1:-10}
    case $pct in '' | *[!0-9.]* | .* | *.*.*) die "usage: verify [PERCENT] (a number, e.g. 10 or 2.5; 0 reads no data)" ;; esac
    need_repo
    lock
    work_dir
    trap 'interrupted verify' INT TERM
    started=$(now)
    # restic reads at least one pack for any percentage: 0 means the structure and presence only.
    if [ "$(awk -v p="$pct" 'BEGIN { print (p + 0 > 0) }')" = 1 ]; then
        log "verify: restic check, reading $pct% of the data"
        set -- check --read-data-subset="$pct%"
    else
        log "verify: restic check (the index, every snapshot's trees, every object present; no data read)"
        set -- check
    fi
    st=0
    restic_run "$WORK/out" "$WORK/err" "$@" || st=$?
    trap - INT TERM
    cat "$WORK/out" >&2
    if [ "$st" != 0 ]; then
        cat "$WORK/err" >&2
        # What is wrong ("Pack ID does not match", "pack …: does not exist") rather than the summary.
        reason=$(cat "$WORK/out" "$WORK/err" | grep -e 'does not match' -e 'does not exist' -e 'not found' -e 'failed' -e 'rror' -e 'invalid' |
            grep -v -e '^Fatal: repository contains errors' -e 'retrying after' | head -n 1 || true)
        [ -n "$reason" ] || reason=$(last_error "$WORK/err" "$st")
        write_marker "$VERIFY_FAILURE" "time=$(now)" "iso=$(iso_of "$(now)")" "percent=$pct" "reason=$(printf '%s' "$reason" | cut -c 1-300)"
        die "verification of the off-site store FAILED: $reason"
    fi
    write_marker "$VERIFY_SUCCESS" "time=$(now)" "iso=$(iso_of "$(now)")" "percent=$pct" "seconds=$(($(now) - started))"
    rm -f "$VERIFY_FAILURE"
    log "verify ok: $pct% of the data read back"
}

# ---------------------------------------------------------------------------------------------------
# schedule: the container's main process. Uploads start every UPLOAD_INTERVAL s (an upload that takes
# longer starts the next at once); the work runs in a child that the shell waits for, so a SIGTERM
# (docker stop) is handled at once: a sleep is cut short, an upload asks restic to stop cleanly.
# ---------------------------------------------------------------------------------------------------
CHILD=""
run_child() {
    "$@" &
    CHILD=$!
    c_st=0
    wait "$CHILD" || c_st=$?
    CHILD=""
    return "$c_st"
}

scheduler_stop() {
    trap - TERM INT
    log "scheduler: stopping (signal)"
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit 0
}

# Sleeps until the epoch second $1 (real time: the schedule follows the clock, not VPS_STACK_NOW).
sleep_until() {
    left=$(($1 - $(date -u +%s)))
    [ "$left" -le 0 ] || run_child sleep "$left" || true
}

# The first step: a store that cannot be reached is retried; a wrong passphrase too (the secret file
# may be put right), each failure recorded, so the check says why there is no upload.
schedule_init() {
    work_dir
    st=0
    repo_init || st=$?
    [ "$st" != 0 ] || return 0
    write_marker "$FAILURE" "time=$(now)" "iso=$(iso_of "$(now)")" "reason=$INIT_ERROR"
    log "ERROR: $INIT_ERROR; trying again in ${UPLOAD_INTERVAL}s"
    return "$st"
}

cmd_schedule() {
    need_repo
    mkdir -p "$BACKUP_DIR"
    [ -f "$INSTALLED" ] || write_marker "$INSTALLED" "time=$(now)" "iso=$(iso_of "$(now)")"
    trap scheduler_stop TERM INT
    log "scheduled: upload every ${UPLOAD_INTERVAL}s to $RESTIC_REPOSITORY as host $OFFSITE_HOST; forget and prune every ${PRUNE_INTERVAL}s (keep within $KEEP_WITHIN, $KEEP_DAILY daily, $KEEP_WEEKLY weekly, $KEEP_MONTHLY monthly)"
    while :; do
        tick=$(date -u +%s)
        if run_child schedule_init; then break; fi
        sleep_until $((tick + UPLOAD_INTERVAL))
    done
    # A failed forget is tried again after an hour (or PRUNE_INTERVAL when shorter), not every upload.
    retry=$((PRUNE_INTERVAL < 3600 ? PRUNE_INTERVAL : 3600))
    last_try=0
    last_fetch_try=0
    while :; do
        tick=$(date -u +%s)
        st=0
        run_child cmd_upload nowait || st=$?
        case $st in
            0) ;;
            75) log "scheduler: no upload this time: an upload, forget or verify started by hand holds the lock" ;;
            *) log "scheduler: the upload failed (see above); the check fails until one succeeds" ;;
        esac
        # Once a day, the newest dump comes back from the store for the backup job's verification.
        fetched=$(marker_get "$FETCH" time)
        if [ -f "$SUCCESS" ] && { [ -z "$fetched" ] || [ $(($(now) - fetched)) -ge 86400 ]; } && [ $((tick - last_fetch_try)) -ge 3600 ]; then
            last_fetch_try=$tick
            run_child cmd_fetch_dump || log "scheduler: fetching the newest dump back failed (see above); tried again in an hour"
        fi
        pruned=$(marker_get "$PRUNED" time)
        if { [ -z "$pruned" ] || [ $(($(now) - pruned)) -ge "$PRUNE_INTERVAL" ]; } && [ $((tick - last_try)) -ge "$retry" ]; then
            last_try=$tick
            run_child cmd_forget || log "scheduler: forget failed (see above); tried again in ${retry}s"
        fi
        sleep_until $((tick + UPLOAD_INTERVAL))
    done
}

# adopt: this directory's history is the one the store keeps from now on (after a restore from it, or
# on purpose); the uploader stops holding.
cmd_adopt() {
    mkdir -p "$BACKUP_DIR"
    write_marker "$ADOPTED" "time=$(now)" "iso=$(iso_of "$(now)")" "why=${1:-adopted by hand}"
    rm -f "$HOLD"
    log "this directory is adopted: uploads go on from it"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    init) cmd_init ;;
    upload) cmd_upload wait ;;
    forget) cmd_forget ;;
    schedule) cmd_schedule ;;
    check) cmd_check ;;
    shipped) cmd_shipped "$@" ;;
    status) cmd_status ;;
    restore-into) cmd_restore_into "$@" ;;
    adopt) cmd_adopt "$@" ;;
    fetch-dump) cmd_fetch_dump ;;
    verify) cmd_verify "$@" ;;
    *)
        awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0" >&2
        exit 2
        ;;
esac
