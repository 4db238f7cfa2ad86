#!/usr/bin/env bash
# The dev stack in one command (`npm run dev`): deploys the whole program onto this machine's Docker
# engine with a project-local state backend, then prints the HTTPS health answer and the URLs.
#
# Needs Docker, Node 20 and the Pulumi CLI, and `npm ci` done. No Pulumi Cloud account: the state lives
# in .pulumi-state/ and the passphrase that encrypts its secrets in .pulumi-passphrase (generated once,
# mode 0600), both git-ignored. Your own `pulumi login` is left alone: the backend is chosen for this
# run only, through PULUMI_BACKEND_URL. Running it again is an ordinary `pulumi up`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
stack=dev
demo_image=vps-stack-demo-api:1

say() { printf '==> %s\n' "$*"; }
die() { printf 'npm run dev: %s\n' "$*" >&2; exit 1; }

# What a fresh machine may lack, each with what to do about it.
command -v node >/dev/null 2>&1 || die "node is not installed: install Node.js 20 (https://nodejs.org/), then npm ci."
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old: install Node.js 20 or 22."
[ -d node_modules ] || die "the dependencies are not installed: run npm ci first."
command -v docker >/dev/null 2>&1 || die "docker is not installed: install Docker Engine (https://docs.docker.com/engine/install/)."
docker info >/dev/null 2>&1 \
    || die "the Docker engine does not answer (docker info failed): start it, and check that your user may use it (the docker group)."
command -v pulumi >/dev/null 2>&1 \
    || die "pulumi is not installed: install the Pulumi CLI (https://www.pulumi.com/docs/install/), version 3.248 or later."

# State and passphrase, project-local. A file backend needs its directory to exist.
mkdir -p "$root/.pulumi-state"
export PULUMI_BACKEND_URL="file://$root/.pulumi-state"
passphrase_file=$root/.pulumi-passphrase
if [ ! -s "$passphrase_file" ]; then
    say "generating a passphrase for the dev stack's secrets into .pulumi-passphrase"
    (umask 077 && node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url") + "\n")' >"$passphrase_file")
fi
chmod 600 "$passphrase_file"
# The file is the one source of the passphrase; a PULUMI_CONFIG_PASSPHRASE from the shell would win over it.
unset PULUMI_CONFIG_PASSPHRASE
export PULUMI_CONFIG_PASSPHRASE_FILE="$passphrase_file"
export PULUMI_SKIP_UPDATE_CHECK=true

say "selecting the $stack stack (created on first use)"
pulumi stack select "$stack" --create --non-interactive \
    || die "could not select or create the $stack stack. If .pulumi-passphrase was deleted after the stack was created, remove encryptionsalt from Pulumi.$stack.yaml and .pulumi-state/, then run again."

if docker image inspect "$demo_image" >/dev/null 2>&1; then
    say "demo image $demo_image is present"
else
    say "building the demo image $demo_image from examples/demo-api"
    docker build --build-arg VERSION=1 -t "$demo_image" examples/demo-api
fi

say "pulumi up --stack $stack"
pulumi up --yes --stack "$stack"

ca_file=$(mktemp)
trap 'rm -f "$ca_file"' EXIT
pulumi stack output --stack "$stack" caCertificate >"$ca_file"
# The dev stack makes its own CA (tls.mode ca); with another TLS source the system's CAs are trusted.
trust=(--cacert "$ca_file")
if [ ! -s "$ca_file" ] || [ "$(cat "$ca_file")" = null ]; then trust=(); fi
health_urls=$(pulumi stack output --stack "$stack" healthUrls --json)
urls=$(pulumi stack output --stack "$stack" urls --json)

echo
while IFS=$'\t' read -r app url; do
    say "$app: GET $url"
    answer=$(curl -fsS --retry 5 --retry-delay 1 --retry-connrefused --max-time 10 "${trust[@]}" "$url") \
        || die "$app does not answer on $url: see docker ps and docker logs."
    printf '%s\n' "$answer"
done < <(node -e 'for (const [a, u] of Object.entries(JSON.parse(process.argv[1]))) console.log(a + "\t" + u)' "$health_urls")

echo
say "the $stack stack is up:"
node -e 'for (const [a, u] of Object.entries(JSON.parse(process.argv[1]))) console.log("    " + a + "  " + u)' "$urls"
cat <<EOF

To run pulumi yourself against this stack, in this directory:
    export PULUMI_BACKEND_URL=file://$root/.pulumi-state PULUMI_CONFIG_PASSPHRASE_FILE=$passphrase_file
    pulumi stack output --stack $stack --show-secrets     # endpoints and generated credentials
    pulumi stack output --stack $stack caCertificate > ca.pem   # the CA to trust for HTTPS
    pulumi destroy --stack $stack                          # remove it all (backups stay in /tmp/vps-stack-backups/dev)
EOF
