# shellcheck shell=bash
# Shared by the CI scripts (preview.sh, deploy.sh, drift.sh): the checks and the set-up that every Pulumi
# run needs, the same on a GitHub runner and on a local machine with a file backend. Sourced, not run.
# Reads: PULUMI_BACKEND_URL (or an earlier `pulumi login`), PULUMI_CONFIG_PASSPHRASE or
# PULUMI_CONFIG_PASSPHRASE_FILE, and optionally SSH_DEPLOY_KEY (the private key's text) or
# SSH_DEPLOY_KEY_FILE; without either, an SSH agent already running or the stack's host.privateKeyPath is used.

ci_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

ci_say() { printf '==> %s\n' "$*" >&2; }
ci_die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 2; }

# The stack name, checked: it becomes part of file names and of a marker in the pull request.
ci_stack_arg() {
    local stack="${1:-}"
    [ -n "$stack" ] || ci_die "usage: $(basename "$0") <stack> [output file]"
    [[ "$stack" =~ ^[A-Za-z0-9._/-]+$ ]] || ci_die "stack name '$stack' has characters other than letters, digits, . _ / -"
    printf '%s' "$stack"
}

ci_require_tools() {
    command -v node >/dev/null 2>&1 || ci_die "node is not installed (Node.js 20)"
    command -v pulumi >/dev/null 2>&1 || ci_die "pulumi is not installed (the Pulumi CLI, 3.248 or later)"
    [ -d "$ci_root/node_modules" ] || ci_die "the program's dependencies are missing: run npm ci"
}

# Without a passphrase a passphrase-encrypted stack cannot be read, and pulumi would prompt for one.
ci_require_backend() {
    if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
        ci_die "set PULUMI_CONFIG_PASSPHRASE (a repository secret) or PULUMI_CONFIG_PASSPHRASE_FILE"
    fi
    if [ -z "${PULUMI_BACKEND_URL:-}" ] && [ -z "${PULUMI_ACCESS_TOKEN:-}" ]; then
        pulumi whoami >/dev/null 2>&1 || ci_die "no Pulumi backend: set PULUMI_BACKEND_URL (e.g. s3://bucket/vps-stack) or run pulumi login"
    fi
    export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_SKIP_CONFIRMATIONS=true
}

# The policy pack's own dependencies (npm ci --prefix policy), installed again only when its lock changed.
ci_policy_deps() {
    local lock="$ci_root/policy/package-lock.json" stamp="$ci_root/policy/node_modules/.vps-stack-lock"
    local want
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    ci_say "installing the policy pack's dependencies (npm ci --prefix policy)"
    npm ci --prefix "$ci_root/policy" --no-audit --no-fund --loglevel=error >&2
    printf '%s\n' "$want" >"$stamp"
}

# A deploy key from the environment goes into an agent of this run only: written to a 0600 file that lives
# for the ssh-add alone, never echoed. The program reads SSH_AUTH_SOCK; host keys stay pinned by the stack's
# own known_hosts (StrictHostKeyChecking=yes), so nothing here touches ~/.ssh.
ci_ssh_agent() {
    local key_file="" made=0
    if [ -n "${SSH_DEPLOY_KEY:-}" ]; then
        key_file=$(mktemp)
        made=1
        chmod 600 "$key_file"
        printf '%s\n' "$SSH_DEPLOY_KEY" >"$key_file"
    elif [ -n "${SSH_DEPLOY_KEY_FILE:-}" ]; then
        key_file=$SSH_DEPLOY_KEY_FILE
        [ -r "$key_file" ] || ci_die "SSH_DEPLOY_KEY_FILE ($key_file) cannot be read"
    else
        return 0
    fi
    eval "$(ssh-agent -s)" >/dev/null
    ci_agent_pid=$SSH_AGENT_PID
    if ! ssh-add -q "$key_file" 2>/dev/null; then
        [ "$made" = 1 ] && rm -f "$key_file"
        ci_die "the deploy key was refused by ssh-add (not a private key, or it has a passphrase)"
    fi
    [ "$made" = 1 ] && rm -f "$key_file"
    return 0
}

ci_agent_pid=""
ci_cleanup() {
    if [ -n "$ci_agent_pid" ]; then
        kill "$ci_agent_pid" 2>/dev/null || true
    fi
}

# A per-stack policy config (allowed ports, services whose image reads secrets from the environment, ...):
# POLICY_PACK_CONFIG when set, else policy/config/<stack>.json when it exists.
ci_policy_args() {
    local file="${POLICY_PACK_CONFIG:-$ci_root/policy/config/$1.json}"
    printf '%s\n' --policy-pack "$ci_root/policy"
    if [ -n "${POLICY_PACK_CONFIG:-}" ] || [ -f "$file" ]; then
        [ -r "$file" ] || ci_die "policy config $file cannot be read"
        printf '%s\n' --policy-pack-config "$file"
    fi
}

# Everything a run needs, in order. Leaves the agent to ci_cleanup (trap it).
ci_prepare() {
    cd "$ci_root" || exit 2
    ci_require_tools
    ci_require_backend
    ci_policy_deps
    ci_ssh_agent
}

# An output path made absolute before ci_prepare changes directory.
ci_abs_path() {
    case "$1" in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$PWD" "$1" ;;
    esac
}

# What a pulumi run printed that a reviewer needs first, from its --color never output:
#   violations  each policy violation (the pack, level, policy, resource) with its message
#   errors      each error: line with its indented continuation (a config error lists every problem)
#   summary     the Resources: block (counts of creates, updates, deletes, replaces)
ci_extract() {
    local what="$1" log="$2"
    awk -v what="$what" '
        function flush_off() { inblock = 0 }
        what == "violations" && /^[ \t]*[^ \t]+@v[^ ]+ \[(mandatory|advisory|remediate)\]/ {
            line = $0; sub(/^[ \t]+/, "", line); print "- " line; inblock = 1; next
        }
        what == "violations" && inblock {
            if ($0 ~ /^[ \t]/ || $0 == "") { flush_off(); next }
            print "  " $0; next
        }
        what == "errors" && /^error: / && $0 !~ /^error: (preview|update|refresh) failed$/ { print; inblock = 1; next }
        what == "errors" && inblock {
            # Indented lines go on the message, until a violation, a resource of the diff or its URN.
            if ($0 ~ /^  / && $0 !~ /^[ \t]+([^ \t]+@v[^ ]+ \[|[-+~<=>]+ [^ ]+:[^ ]*: \(|\[urn=)/) { print; next }
            flush_off()
        }
        what == "summary" && /^Resources:/ { print; inblock = 1; next }
        what == "summary" && inblock { if ($0 == "" || $0 !~ /^[ \t]/) exit; print }
    ' "$log"
}

# The last characters of a long log, so a comment stays under GitHub's 65,536 limit; the start of the diff
# matters less than the summary and errors at its end, which are quoted above it anyway.
ci_tail_chars() {
    local log="$1" max="$2" size
    size=$(wc -c <"$log")
    if [ "$size" -le "$max" ]; then
        cat "$log"
    else
        printf '… (%s characters left out; the whole output is in the workflow log)\n' "$((size - max))"
        tail -c "$max" "$log"
    fi
}

# Links to the run when GitHub Actions runs this; nothing elsewhere.
ci_run_link() {
    if [ -n "${GITHUB_SERVER_URL:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ] && [ -n "${GITHUB_RUN_ID:-}" ]; then
        printf '[workflow run](%s/%s/actions/runs/%s)' "$GITHUB_SERVER_URL" "$GITHUB_REPOSITORY" "$GITHUB_RUN_ID"
    fi
}
