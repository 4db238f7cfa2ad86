# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase images
bash "$ROOT/e2e/images/build.sh" >>"$LOG" 2>&1 || fatal "images: could not build the stand-in images (see $LOG)"
IMAGES="postgres:16-alpine redis:7-alpine nginx:1.27-alpine certbot/certbot:v5.7.0 restic/restic:0.17.3 vps-stack-demo-api:1 vps-stack-demo-api:2 vps-stack-demo-api:broken"
for t in $IMAGES; do
    docker image inspect "$t" >/dev/null 2>&1 || fatal "images: $t is missing after the build"
done
say "   images ready: $IMAGES"
stale=$(leftovers)
if [ -n "$stale" ]; then
    say "   removing what an interrupted earlier run left: $(echo "$stale" | tr '\n' ' ')"
    remove_box_state
    [ -z "$(leftovers)" ] || fatal "images: could not remove an earlier run's leftovers: $(leftovers | tr '\n' ' ')"
fi
