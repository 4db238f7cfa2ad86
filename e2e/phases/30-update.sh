# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase update
pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:2 >>"$LOG" 2>&1
check "6a. pulumi up with a new API image converges" up "$STACK"
check "6b. the new version serves /health" health_ok "$STACK" "$HTTPS_PORT" 2
