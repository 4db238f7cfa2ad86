#!/usr/bin/env bash
# Restores a stack's database to a point in time from its base backups and continuous WAL (backup.pitr):
# to the latest committed write, or to TIME. Or one app volume from its archives. Nothing live is touched
# until the restored copy is complete, and what was there before is kept in a volume of its own
# (scripts/restore-host.sh, which this runs on the host, says how).
#
#   scripts/restore.sh [--stack STACK] [--to TIME] [--from-offsite [--snapshot ID]] --confirm
#   scripts/restore.sh [--stack STACK] --volume APP-NAME [--file ARCHIVE] [--from-offsite [--snapshot ID]] --confirm
#
# TIME is a timestamp PostgreSQL reads, with its offset: '2026-12-01 10:42:00+01'. --from-offsite takes
# the backups from the off-site copy (backup.offsite) instead of the host's directory: after the loss of
# the VPS, on a new one deployed with the same stack, or when the local copy is damaged; --snapshot picks
# one of its snapshots (default: the newest; a restore prints the one it used). --volume restores an app
# volume (e.g. api-uploads) from its newest archive, or --file. The stack's outputs say where the host
# is. Extra ssh options (e.g. -i KEY): VPS_STACK_SSH_OPTIONS. For a nightly dump instead, see the backup
# output's restore command.
set -euo pipefail

stack_args=()
to=
confirm=
offsite=
snapshot=
app_volume=
file=
while [ $# -gt 0 ]; do
    case "$1" in
        --stack) stack_args=(--stack "$2"); shift 2 ;;
        --to) to=$2; shift 2 ;;
        --from-offsite) offsite=1; shift ;;
        --snapshot) snapshot=$2; shift 2 ;;
        --volume) app_volume=$2; shift 2 ;;
        --file) file=$2; shift 2 ;;
        --confirm) confirm=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "restore: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -z "$snapshot" ] || [ -n "$offsite" ] || { echo "restore: --snapshot goes with --from-offsite" >&2; exit 2; }
[ -z "$app_volume" ] || [ -z "$to" ] || { echo "restore: --to is for the database; a volume comes back as one of its archives (--file)" >&2; exit 2; }
[ -z "$file" ] || [ -n "$app_volume" ] || { echo "restore: --file goes with --volume" >&2; exit 2; }

backup=$(pulumi stack output ${stack_args[@]+"${stack_args[@]}"} backup --json) || { echo "restore: no backup output (deploy the stack first)" >&2; exit 1; }
field() { node -e 'const r = (JSON.parse(process.argv[1]) || {}).restore; if (!r) process.exit(3); const v = process.argv[2].split(".").reduce((o, k) => (o == null ? o : o[k]), r); console.log(v ?? "")' "$backup" "$1"; }
ssh_cmd=$(field ssh) || { echo "restore: backups are off on this stack (backup.enabled)" >&2; exit 1; }
args=(--postgres "$(field postgresContainer)" --backup "$(field backupContainer)" --directory "$(field directory)")
if [ -n "$app_volume" ]; then
    docker_volume=$(field "appVolumes.$app_volume")
    [ -n "$docker_volume" ] || { echo "restore: no archived volume $app_volume on this stack (the apps' volumes with backup: $(node -e 'console.log(Object.keys(JSON.parse(process.argv[1]).restore.appVolumes).join(", ") || "none")' "$backup"))" >&2; exit 1; }
    args+=(--app-volume "$app_volume" --volume "$docker_volume")
    [ -z "$file" ] || args+=(--file "$file")
    what="volume $app_volume from ${file:-its newest archive}"
else
    wal=$(field walContainer)
    [ -n "$wal" ] || { echo "restore: point-in-time recovery is off on this stack (backup.pitr.enabled); restore a nightly dump instead" >&2; exit 1; }
    args+=(--wal "$wal" --volume "$(field postgresVolume)")
    [ -z "$to" ] || args+=(--to "$to")
    what="database to ${to:-the latest committed write}, from its base backups and WAL"
fi
if [ -n "$offsite" ]; then
    uploader=$(field offsiteContainer)
    [ -n "$uploader" ] || { echo "restore: this stack has no off-site copy (backup.offsite)" >&2; exit 1; }
    args+=(--offsite "$uploader")
    [ -z "$snapshot" ] || args+=(--snapshot "$snapshot")
fi

echo "restore: the ${stack_args[1]:-current} stack's $what${offsite:+, off-site}"
if [ -z "$confirm" ]; then
    echo "restore: what uses it stops for the time of a copy of its data; add --confirm to go ahead" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "$ssh_cmd" ]; then
    # shellcheck disable=SC2086 # the options are words on purpose
    ssh ${VPS_STACK_SSH_OPTIONS:-} ${ssh_cmd#ssh } bash -s -- "$(printf '%q ' "${args[@]}")" <"$here/restore-host.sh"
else
    bash "$here/restore-host.sh" "${args[@]}"
fi
