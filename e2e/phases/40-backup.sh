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
check "B5. the app still answers after the restore" health_ok "$STACK" "$HTTPS_PORT" 2
