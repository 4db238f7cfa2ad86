#!/usr/bin/env bash
# The host's half of a point-in-time restore (scripts/restore.sh sends it over ssh, or runs it here on a
# dev stack). Needs only Docker, as the deploy user. The order keeps the rules of every restore:
#   1. the base backup and the WAL are replayed into a NEW volume, by a throwaway container of the server's
#      own image with no network; the live database serves meanwhile and nothing of it is touched;
#   2. only once that copy is complete and promoted: the WAL receiver, the backup job and PostgreSQL stop;
#   3. a safety copy of the live data goes into another new volume;
#   4. the live volume's contents are replaced by the restored copy;
#   5. the previous WAL and base backups move aside (pitr-before-<time>/ in the backup directory), then
#      PostgreSQL starts, then the WAL receiver and the backup job, and a base backup is taken on the new
#      timeline.
# A failure before step 4 leaves the live data as it was (and starts what was stopped); a failure during
# step 4 prints how to put the safety copy back.
#
# With --offsite C, step 1 first fetches the base backups and WAL from the off-site copy, through the
# uploader container C (it holds the store's credentials and the passphrase), into a directory of its own
# beside the local backups; the local ones are not read. At the end the uploader is told to adopt this
# host's backup directory (on a new host it holds its uploads until then, so that an empty directory never
# becomes the newest off-site snapshot).
#
# With --app-volume ID (an app's volume, "<app>-<name>"), it restores that volume instead of the
# database, from its newest archive (or --file NAME): checked against its sha256, unpacked into a new
# volume, then, with the containers that mount the live volume stopped, a safety copy is taken and the
# live contents are replaced; those containers start again.
#
#   restore-host.sh --postgres C --wal C --backup C --volume V --directory DIR [--to TIME] [--offsite C [--snapshot ID]]
#   restore-host.sh --postgres C --backup C --app-volume ID --volume V --directory DIR [--file NAME] [--offsite C [--snapshot ID]]
set -euo pipefail

to=
offsite=
snapshot=
app_volume=
file=
wal=
while [ $# -gt 0 ]; do
    case "$1" in
        --postgres) pg=$2; shift 2 ;;
        --wal) wal=$2; shift 2 ;;
        --backup) backup=$2; shift 2 ;;
        --volume) volume=$2; shift 2 ;;
        --directory) directory=$2; shift 2 ;;
        --to) to=$2; shift 2 ;;
        --offsite) offsite=$2; shift 2 ;;
        --snapshot) snapshot=$2; shift 2 ;;
        --app-volume) app_volume=$2; shift 2 ;;
        --file) file=$2; shift 2 ;;
        *) echo "restore-host: unknown argument $1" >&2; exit 2 ;;
    esac
done
: "${pg:?--postgres}" "${backup:?--backup}" "${volume:?--volume}" "${directory:?--directory}"
[ -n "$app_volume" ] || : "${wal:?--wal}"
case "$app_volume$file" in *[!A-Za-z0-9._-]*) echo "restore-host: --app-volume and --file are plain names" >&2; exit 2 ;; esac
case "$snapshot" in *[!0-9a-f]*) echo "restore-host: --snapshot is a snapshot id (hexadecimal)" >&2; exit 2 ;; esac

log() { printf 'restore: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
restored="$volume-pitr-$stamp"
safety="$volume-before-pitr-$stamp"
image=$(docker inspect -f '{{.Image}}' "$pg") || die "no container $pg on this host"
stack_label=$(docker volume inspect -f '{{index .Labels "vps-stack.stack"}}' "$volume") || die "no volume $volume on this host"
script=$(docker exec "$backup" sh -c 'cat "$(command -v vps-stack-backup)"') || die "cannot read the backup script from $backup (is it running?)"
# The backups' names start with the stack's prefix; the backup job's environment has it.
prefix=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$backup" | sed -n 's/^BACKUP_PREFIX=//p')
[ -n "$prefix" ] || die "no BACKUP_PREFIX in $backup's environment"

# Throwaway containers: the server's image, no network, root inside (they own nothing outside their volumes).
throwaway() { docker run --rm --network none --entrypoint sh "$@"; }

source_dir=$directory
fetched=
if [ -n "$offsite" ]; then
    fetched="offsite-restore-$stamp"
    log "0/5 fetching ${snapshot:-the newest} off-site snapshot into $directory/$fetched"
    fetched_info=$(docker exec "$offsite" vps-stack-offsite restore-into "/backups/$fetched" ${snapshot:+"$snapshot"}) ||
        die "the off-site copy could not be fetched; nothing was touched"
    # The id says which history this was: a later restore can name it (--snapshot) once uploads resumed.
    log "off-site snapshot $(sed -n 's/^snapshot=//p' <<<"$fetched_info") of $(sed -n 's/^time=//p' <<<"$fetched_info")"
    source_dir="$directory/$fetched"
fi
remove_fetched() {
    [ -z "$fetched" ] || throwaway -v "$directory:/backups" "$image" -c "rm -rf /backups/$fetched" || log "could not remove $directory/$fetched"
}

if [ -n "$app_volume" ]; then
    restored="$volume-restore-$stamp"
    safety="$volume-before-restore-$stamp"
    if [ -z "$file" ]; then
        file=$(throwaway -v "$source_dir:/backups:ro" "$image" -c "ls /backups/volumes 2>/dev/null | grep -E '^$app_volume-[0-9]{8}T[0-9]{6}Z[.]tar[.]gz\$' | sort | tail -n 1") || true
        [ -n "$file" ] || { remove_fetched; die "no archive of $app_volume in ${source_dir}/volumes"; }
    fi
    log "1/4 unpacking $file (checked against its sha256) into a new volume, $restored; the app keeps running"
    docker volume create --label "vps-stack.stack=$stack_label" --label "vps-stack.restore=$stamp" "$restored" >/dev/null
    if ! throwaway -v "$source_dir:/backups:ro" -v "$restored:/restore" "$image" -c "cd /backups/volumes && sha256sum -c $file.sha256 >&2 && tar -xzf $file -C /restore"; then
        docker volume rm "$restored" >/dev/null 2>&1 || true
        remove_fetched
        die "the archive could not be unpacked; the live volume was not touched"
    fi
    remove_fetched
    users=$(docker ps -q --filter "volume=$volume")
    log "2/4 stopping the containers that use $volume: $(echo "$users" | xargs -r docker inspect -f '{{.Name}}' | tr -d / | tr '\n' ' ')"
    # shellcheck disable=SC2086 # container ids, one word each
    [ -z "$users" ] || docker stop $users >/dev/null
    # shellcheck disable=SC2086
    trap '[ -z "$users" ] || docker start $users >/dev/null' EXIT
    log "3/4 copying the live volume into $safety, then replacing its contents"
    docker volume create --label "vps-stack.stack=$stack_label" --label "vps-stack.safety-copy=$stamp" "$safety" >/dev/null
    throwaway -v "$volume:/from:ro" -v "$safety:/to" "$image" -c 'cp -a /from/. /to/'
    throwaway -v "$volume:/live" -v "$restored:/restored:ro" "$image" -c 'find /live -mindepth 1 -maxdepth 1 -exec rm -rf {} \; && cp -a /restored/. /live/' ||
        die "the copy into $volume failed; its previous contents are in $safety"
    log "4/4 starting them again"
    # shellcheck disable=SC2086
    [ -z "$users" ] || docker start $users >/dev/null
    trap - EXIT
    docker volume rm "$restored" >/dev/null
    log "done: $volume holds $file; what it held before is in volume $safety (docker volume rm $safety once you no longer need it)"
    exit 0
fi

log "1/5 replaying the base backup and the WAL ${to:+up to $to }into a new volume, $restored; the live database keeps serving"
docker volume create --label "vps-stack.stack=$stack_label" --label vps-stack.service=postgres --label "vps-stack.restore=$stamp" "$restored" >/dev/null
if ! printf '%s\n' "$script" | docker run -i --rm --network none -v "$source_dir:/backups:ro" -v "$restored:/restore" -e BACKUP_DIR=/backups -e "BACKUP_PREFIX=$prefix" \
    --entrypoint sh "$image" -c 'cat >/tmp/vps-stack-backup && exec sh /tmp/vps-stack-backup pitr-restore-into /restore "$@"' sh ${to:+--to "$to"}; then
    docker volume rm "$restored" >/dev/null 2>&1 || true
    remove_fetched
    die "the restore did not complete; the live database was not touched"
fi
remove_fetched

stopped=()
restart_stopped() {
    # docker start also clears Docker's "stopped by hand" flag, so the restart policies apply again.
    [ "${#stopped[@]}" -eq 0 ] || docker start "${stopped[@]}" >/dev/null || true
}
trap 'log "failed; starting what was stopped"; restart_stopped' ERR

log "2/5 stopping the WAL receiver, the backup job and PostgreSQL"
for c in "$wal" "$backup" "$pg"; do
    docker stop "$c" >/dev/null
    stopped=("$c" "${stopped[@]}")
done

log "3/5 copying the live data into $safety"
docker volume create --label "vps-stack.stack=$stack_label" --label vps-stack.service=postgres --label "vps-stack.safety-copy=$stamp" "$safety" >/dev/null
throwaway -v "$volume:/from:ro" -v "$safety:/to" "$image" -c 'cp -a /from/. /to/'

log "4/5 replacing the live data with the restored copy"
trap - ERR
if ! throwaway -v "$volume:/live" -v "$restored:/restored:ro" "$image" -c 'find /live -mindepth 1 -maxdepth 1 -exec rm -rf {} \; && cp -a /restored/. /live/'; then
    log "ERROR: the copy into $volume failed; the live data is in $safety. To put it back:"
    log "  docker run --rm --network none -v $volume:/live -v $safety:/from:ro --entrypoint sh $image -c 'find /live -mindepth 1 -maxdepth 1 -exec rm -rf {} \\; && cp -a /from/. /live/' && docker start ${stopped[*]}"
    exit 1
fi

# The restored server starts a new timeline from an earlier point than the WAL already received: the
# receiver must start afresh (it resumes after the newest file it finds), and base backups of the old
# history cannot replay the new one. The old history is kept aside, not deleted.
throwaway -v "$directory:/backups" "$image" -c "mkdir -p /backups/pitr-before-$stamp && for d in base wal; do [ ! -e /backups/\$d ] || mv /backups/\$d /backups/pitr-before-$stamp/; done" ||
    log "could not move the previous WAL and base backups aside into $directory/pitr-before-$stamp; the WAL receiver may wait until the new timeline passes the old one"

log "5/5 starting PostgreSQL, the WAL receiver and the backup job"
restart_stopped
for _ in $(seq 180); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$pg")" = healthy ] && break
    sleep 1
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$pg")" = healthy ] || die "PostgreSQL is not healthy 180s after the restore (docker logs $pg); the previous data is in $safety"
# The restored roles have the passwords of their time (another deploy's after the loss of a host, or from
# before a rotation); the stack's current ones are files in the server's container. Set from there, on
# psql's stdin, never in an argument.
# shellcheck disable=SC2016 # expanded in the container
if ! docker exec "$pg" sh -c '
    lit() { printf "'"'"'%s'"'"'" "$(sed "s/'"'"'/'"'"''"'"'/g" "$1")"; }
    {
        echo "ALTER ROLE \"$POSTGRES_USER\" WITH PASSWORD $(lit /run/secrets/postgres-password);"
        if [ -f /run/secrets/wal-password ]; then
            echo "SELECT '"'"'CREATE ROLE vps_stack_wal WITH LOGIN REPLICATION'"'"' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '"'"'vps_stack_wal'"'"') \gexec"
            echo "ALTER ROLE vps_stack_wal WITH LOGIN REPLICATION PASSWORD $(lit /run/secrets/wal-password);"
        fi
    } | psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "$POSTGRES_DB"'; then
    log "could not set the roles' passwords to the stack's (the apps and the backups may not log in): pulumi up --replace the postgres password command, or set them by hand"
fi
docker volume rm "$restored" >/dev/null
# The restored server is on a new timeline: a base backup on it keeps the next restore short.
docker exec "$backup" vps-stack-backup base || log "the base backup after the restore failed; the next scheduled one will retry (docker logs $backup)"
if [ -n "$offsite" ]; then
    docker exec "$offsite" vps-stack-offsite adopt "restored from the store on $stamp" || log "the uploader did not confirm; check it: docker exec $offsite vps-stack-offsite status"
fi
log "done: the database is restored${to:+ to $to}; the data from before is in volume $safety (docker volume rm $safety once you no longer need it), the WAL and base backups from before in $directory/pitr-before-$stamp"
