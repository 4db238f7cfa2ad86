# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase destroy
check "9a. pulumi destroy succeeds" pulumi destroy --yes --non-interactive --stack "$STACK"
nothing_left() { [ -z "$(docker ps -aq --filter "label=vps-stack.stack=$STACK")" ] && [ -z "$(docker network ls -q --filter "label=vps-stack.stack=$STACK")" ]; }
no_volumes() { [ -z "$(docker volume ls -q --filter "label=vps-stack.stack=$STACK")" ]; }
backups_outlive() { ls "$E2E/backups/$STACK/$STACK"-app-*.dump; }
check "9b. no container or network of the stack is left" nothing_left
check "9c. volumes follow the retention rule: removed on a non-prod stack" no_volumes
# The dumps come from the backup phase; a run with --only that skips it has none to keep (and says so).
if selected backup; then
    check "9d. the backup files outlive the stack" backups_outlive
else
    say "(9d not run: the backup phase, which makes the dumps it looks for, was not selected)"
fi
check "W. no Pulumi warning in any run but the allow-listed ones (ALLOWED_WARNINGS in e2e/phases/00-toolchain.sh)" unexpected_warnings
