# Stacks on the box: create one, deploy it, read its outputs, and wait until it is healthy. Shared by
# the phases (sourced by e2e/run.sh after the box is up: SSH_PORT and HOST_KEY are set).
# shellcheck shell=bash disable=SC2034
services_yaml() { # the domain, the demo API and small PostgreSQL and Redis, as every e2e stack has them
    cat <<EOF
  vps-stack:domain: $DOMAIN
  vps-stack:apps:
    - name: api
      image: vps-stack-demo-api:1
      trackTag: false
      memory: 256m
  vps-stack:postgres:
    memory: 512m
    sharedBuffers: 128MB
  vps-stack:redis:
    memory: 256m
    maxmemory: 64mb
EOF
}
init_stack() { # init_stack NAME HTTP HTTPS [HOST_KEY]: the stack pins the box's ed25519 key unless told otherwise
    pulumi stack init "$1" --non-interactive >>"$LOG" 2>&1 || return 1
    cat >>"Pulumi.$1.yaml" <<EOF
config:
  vps-stack:host:
    address: 127.0.0.1
    port: $SSH_PORT
    user: $DEPLOY_USER
    hostKey: ${4:-$HOST_KEY}
    privateKeyPath: $E2E/client_key
$(services_yaml)
  vps-stack:nginx:
    httpPort: $2
    httpsPort: $3
  vps-stack:backup:
    directory: $E2E/backups/$1
EOF
}

up() { pulumi up --yes --non-interactive --skip-preview --stack "$1" "${@:2}"; }
out() { pulumi stack output --stack "$1" "${@:2}"; }

ca_file() { # ca_file STACK: the CA that signs a stack's certificate: its own, or the ACME server's root
    if [ -s "$E2E/acme-$1/root.pem" ]; then
        echo "$E2E/acme-$1/root.pem"
    else
        out "$1" caCertificate >"$E2E/ca-$1.pem" && echo "$E2E/ca-$1.pem"
    fi
}

health_json() { # health_json STACK HTTPS_PORT
    local ca
    ca=$(ca_file "$1") &&
        curl -sS --fail --cacert "$ca" --resolve "$DOMAIN:$2:127.0.0.1" "https://$DOMAIN:$2/health"
}

health_ok() { # health_ok STACK HTTPS_PORT [VERSION]
    local body
    body=$(health_json "$1" "$2") || return 1
    echo "$body"
    node -e '
        const h = JSON.parse(process.argv[1]);
        const ok = h.status === "ok" && h.checks.postgres.ok === true && h.checks.redis.ok === true && (!process.argv[2] || h.version === process.argv[2]);
        process.exit(ok ? 0 : 1);' "$body" "${3:-}"
}

redirects() {
    local headers
    headers=$(curl -sS -o /dev/null -D - -H "Host: $DOMAIN" "http://127.0.0.1:$1/some/path?q=1") || return 1
    echo "$headers"
    grep -q '^HTTP/1.1 301' <<<"$headers" && grep -qi "^location: https://$DOMAIN:$2/some/path?q=1" <<<"$headers"
}

container_id() { docker inspect --format '{{.Id}}' "$1"; }
# keep_rows: two rows that must survive replacements, backups and restores of PostgreSQL
keep_rows() { psql_e2e "CREATE TABLE IF NOT EXISTS e2e_keep (id int PRIMARY KEY, note text); INSERT INTO e2e_keep VALUES (1, 'before'), (2, 'replacements') ON CONFLICT DO NOTHING;"; }
psql_e2e() { docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "$1"; }
output_cmd() { # output_cmd STACK OUTPUT KEY: a command from an output's "commands"
    out "$1" "$2" --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).commands[process.argv[1]])' "$3"
}
# The outputs' commands are run as an operator would, with ssh pointed at the box's key and pinned host.
run_output_cmd() { run_ssh_line "$(output_cmd "$STACK" backup "$1")"; }
# scripts/restore.sh (point-in-time recovery) as an operator runs it, ssh pointed like run_ssh_line's.
restore_pitr() {
    VPS_STACK_SSH_OPTIONS="-i $E2E/client_key -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$E2E/known_hosts" \
        bash scripts/restore.sh --stack "$STACK" "$@"
}
run_ssh_line() {
    local cmd=$1
    [ -n "$cmd" ] || return 1
    echo "+ $cmd"
    [[ $cmd == ssh\ * ]] || { echo "not an ssh command"; return 1; }
    cmd=${cmd#ssh }
    # shellcheck disable=SC2086 # the output is a command line
    ssh -i "$E2E/client_key" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$E2E/known_hosts" $cmd
}
# What a VPS goes through without anyone deploying: a reboot (the Docker daemon restarted), crashes, a
# service stopped by hand, SSH lost mid-deploy, the database lost mid-backup. The stack must come back by
# itself, or with one plain `pulumi up`.
app_container() { # app_container STACK APP [N]: the name of the app's Nth live container (release names change)
    docker ps --filter "label=vps-stack.stack=$1" --filter "label=vps-stack.service=$2" --format '{{.Names}}' | grep -v -- '-migrate' | sort | sed -n "${3:-1}p"
}
should_run() { # the stack's long-running containers (restart policy set; not the one-shot migrations)
    docker ps -aq --filter "label=vps-stack.stack=$1" | xargs -r docker inspect --format '{{.Name}} {{.HostConfig.RestartPolicy.Name}}' |
        awk '$2 != "no" && $2 != "" { sub("^/", "", $1); print $1 }' | sort
}
all_healthy() { # all_healthy STACK: every container running, and healthy where it has a healthcheck
    local names states
    names=$(should_run "$1")
    [ -n "$names" ] || return 1
    # shellcheck disable=SC2086
    states=$(docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $names) || return 1
    ! grep -vqE ' running (healthy|none)$' <<<"$states"
}
# back_within STACK PORT SECONDS LABEL: waits until every container is healthy and /health answers OK
back_within() {
    local start=$SECONDS
    while ((SECONDS - start < $3)); do
        if all_healthy "$1" && health_ok "$1" "$2" >/dev/null 2>&1; then
            note "$4: back and healthy in $((SECONDS - start))s"
            return 0
        fi
        sleep 0.5
    done
    echo "not back after $3s:"
    docker ps -a --filter "label=vps-stack.stack=$1" --format '{{.Names}} {{.Status}}'
    # Why: the last healthcheck's output and the last lines of the log of each one not healthy.
    local c
    for c in $(docker ps -a --filter "label=vps-stack.stack=$1" --format '{{.Names}} {{.Status}}' | grep -v '(healthy)' | cut -d ' ' -f 1); do
        echo "--- $c: its healthchecks"
        docker inspect --format '{{with .State.Health}}{{range .Log}}exit {{.ExitCode}}: {{.Output}}{{println}}{{end}}{{end}}' "$c" 2>&1 | grep -v '^$' | tail -n 6
        echo "--- $c: last log lines"
        docker logs --tail 15 "$c" 2>&1
    done
    return 1
}
