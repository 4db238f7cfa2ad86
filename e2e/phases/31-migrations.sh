# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase migrations
MIGRATION="import psycopg2; c = psycopg2.connect(open('/run/secrets/DATABASE_URL').read().strip()); c.autocommit = True; c.cursor().execute('CREATE TABLE IF NOT EXISTS e2e_migrated (v int)')"
set_migration() { # set_migration PYTHON_CODE
    pulumi config set-all --stack "$STACK" --path --plaintext "apps[0].migrate.command[0]=python3" --plaintext "apps[0].migrate.command[1]=-c" --plaintext "apps[0].migrate.command[2]=$1"
}
migrated() {
    set_migration "$MIGRATION" && up "$STACK" &&
        [ "$(docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "SELECT to_regclass('public.e2e_migrated') IS NOT NULL")" = t ]
}
failed_migration_keeps_version() {
    set_migration "import sys; sys.exit(3)" && pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:1 || return 1
    if up "$STACK"; then echo "pulumi up succeeded despite a failing migration"; return 1; fi
    health_ok "$STACK" "$HTTPS_PORT" 2
}
recovers() {
    pulumi config rm --stack "$STACK" --path 'apps[0].migrate' && pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:2 &&
        up "$STACK" && health_ok "$STACK" "$HTTPS_PORT" 2 && pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
}
check "M1. a migration runs in the app's image with its secrets before the app (creates its table)" migrated
check "M2. a failing migration fails pulumi up and the running version keeps serving" failed_migration_keeps_version
check "M3. without the migration the stack converges again, no changes left" recovers
