# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase backup
keep_rows >>"$LOG" 2>&1 # already there after the replacements phase; here for --only
check "B1. a backup runs on demand (the output's 'now' command)" run_output_cmd now
backup_files() { ls "$E2E/backups/$STACK/$STACK"-app-*.dump && ls "$E2E/backups/$STACK/$STACK"-app-*.dump.sha256; }
check "B2. the backup is in the host directory with its checksum" backup_files
check "B3. the max-age check passes (the output's 'check' command)" run_output_cmd check
psql_e2e "DELETE FROM e2e_keep" >>"$LOG" 2>&1
restored() { [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 0 ] && run_output_cmd restore && [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ]; }
check "B4. a restore brings back deleted rows (the output's 'restore' command)" restored
check "B5. the app still answers after the restore" health_ok "$STACK" "$HTTPS_PORT"

# Point-in-time recovery: the WAL receiver streams into the host directory, a base backup runs on demand,
# then scripts/restore.sh brings the database back to a moment between two batches of writes (the first
# batch there, the second not), and then to the latest write, including rows written after that first
# restore (the receiver and the base backups went on, on the new timeline).
wal_healthy() { # wal_healthy SECONDS
    local start=$SECONDS
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "vps-stack-$STACK-wal")" = healthy ]; do
        ((SECONDS - start < $1)) || { echo "the WAL receiver is not healthy after $1s"; docker logs --tail 20 "vps-stack-$STACK-wal"; return 1; }
        sleep 1
    done
}
wal_streams() {
    wal_healthy 120 || return 1
    psql_e2e "SELECT pg_switch_wal()" >/dev/null || return 1
    sleep 1
    ls "$E2E/backups/$STACK/wal"
    find "$E2E/backups/$STACK/wal" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' | grep -q . || { echo "no complete WAL segment received"; return 1; }
}
base_files() { ls "$E2E/backups/$STACK/base/"*/done && ls "$E2E/backups/$STACK/base/"*/base.tar; }
pitr_rows() { psql_e2e "SELECT count(*) FILTER (WHERE phase = 'before') || ' ' || count(*) FILTER (WHERE phase = 'after') || ' ' || count(*) FILTER (WHERE phase = 'latest') FROM e2e_pitr"; }
pitr_to_moment() {
    local t got
    psql_e2e "CREATE TABLE IF NOT EXISTS e2e_pitr (id serial PRIMARY KEY, phase text NOT NULL)" || return 1
    psql_e2e "INSERT INTO e2e_pitr (phase) SELECT 'before' FROM generate_series(1, 50)" || return 1
    sleep 1
    t=$(psql_e2e "SELECT clock_timestamp()") || return 1
    sleep 1
    psql_e2e "INSERT INTO e2e_pitr (phase) SELECT 'after' FROM generate_series(1, 50)" || return 1
    echo "restoring to $t"
    local start=$SECONDS
    restore_pitr --to "$t" --confirm || return 1
    note "restore to a moment (replay into a new volume, safety copy, swap, restart, new base backup): $((SECONDS - start))s"
    got=$(pitr_rows)
    [ "$got" = "50 0 0" ] || { echo "rows before/after/latest: $got, expected 50 0 0"; return 1; }
    [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ] || { echo "older rows lost"; return 1; }
    docker volume ls -q --filter label=vps-stack.safety-copy | grep -q . || { echo "no safety copy of the data from before"; return 1; }
}
pitr_latest() {
    local got
    wal_healthy 120 || return 1
    psql_e2e "INSERT INTO e2e_pitr (phase) SELECT 'latest' FROM generate_series(1, 20)" || return 1
    local start=$SECONDS
    restore_pitr --confirm || return 1
    note "restore to the latest write: $((SECONDS - start))s"
    got=$(pitr_rows)
    [ "$got" = "50 0 20" ] || { echo "rows before/after/latest: $got, expected 50 0 20"; return 1; }
}
check "B6. the WAL receiver is healthy and the WAL reaches the host directory" wal_streams
check "B7. a base backup runs on demand (the output's 'base' command)" run_output_cmd base
check "B8. the base backup is in the host directory, complete" base_files
check "B9. scripts/restore.sh --to a moment between two writes: the first there, the second not; a safety copy kept" pitr_to_moment
check "B10. scripts/restore.sh to the latest write, after the first restore: nothing committed is lost" pitr_latest
check "B11. the app answers after the restores" health_ok "$STACK" "$HTTPS_PORT"
check "B12. the backup check passes after the restores" run_output_cmd check
# As restore.sh tells the operator: the safety copies go once the restore is judged good (destroy's
# volume check, 9c, counts every volume of the stack).
docker volume ls -q --filter "label=vps-stack.stack=$STACK" --filter label=vps-stack.safety-copy | xargs -r docker volume rm >>"$LOG" 2>&1
