#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted scripts run inside the containers
# Proves that the stand-in images built by build.sh keep the contracts the stack relies on:
# runs postgres, redis, the demo API and nginx on a user network, checks them, runs the stack's
# render/scripts/vps-stack-acme.sh in the certbot image, takes a restic repository through init,
# backup, forget, check and restore in the restic image, and removes every container, network,
# volume and temp file it made (the images stay).
# usage: e2e/images/smoke-test.sh   (run build.sh first)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ID="vps-stack-smoke-$$"
NET="$ID-net"
PG="$ID-pg"
REDIS="$ID-redis"
API="$ID-api"
NGINX="$ID-nginx"
ACME="$ID-acme"
PGVOL="$ID-pgdata"
TMP="$(mktemp -d)"
PASS=0
FAIL=0

cleanup() {
	docker rm -f -v "$PG" "$REDIS" "$API" "$NGINX" "$ACME" >/dev/null 2>&1 || true
	docker network rm "$NET" >/dev/null 2>&1 || true
	docker volume rm "$PGVOL" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
# check DESCRIPTION CMD... - passes when CMD exits 0
check() {
	local what="$1"
	shift
	if "$@" >"$TMP/out" 2>&1; then ok "$what"; else not_ok "$what"; sed 's/^/       /' "$TMP/out" | tail -n 15; fi
}
# check_out DESCRIPTION PATTERN CMD... - passes when CMD's output matches the grep -E PATTERN
check_out() {
	local what="$1" pattern="$2"
	shift 2
	"$@" >"$TMP/out" 2>&1 || true
	if grep -Eq -- "$pattern" "$TMP/out"; then ok "$what"; else not_ok "$what (wanted /$pattern/)"; sed 's/^/       /' "$TMP/out" | tail -n 15; fi
}
# wait_for SECONDS CMD... - retry CMD once a second
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 1
	done
}
net_run() { docker run --rm --network "$NET" "$@"; }

PG_PASSWORD="pg-$RANDOM-secret"
REDIS_PASSWORD="redis-$RANDOM-secret"
mkdir -p "$TMP/secrets" "$TMP/initdb" "$TMP/redis" "$TMP/nginx/conf.d" "$TMP/nginx/certs"
printf '%s\n' "$PG_PASSWORD" >"$TMP/secrets/pg_password"
chmod 0400 "$TMP/secrets/pg_password" # root-only: read by the entrypoint before it drops root
printf 'redis://:%s@%s:6379/0\n' "$REDIS_PASSWORD" "$REDIS" >"$TMP/secrets/redis_url"
chmod 0444 "$TMP/secrets/redis_url"
cat >"$TMP/initdb/01-extensions.sql" <<'EOF'
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    CREATE EXTENSION IF NOT EXISTS vector;
  END IF;
END $$;
EOF
cat >"$TMP/initdb/02-marker.sh" <<'EOF'
#!/bin/bash
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE TABLE init_runs (at timestamptz DEFAULT now()); INSERT INTO init_runs DEFAULT VALUES;"
EOF
chmod 0755 "$TMP/initdb/02-marker.sh"
cat >"$TMP/redis/redis.conf" <<EOF
requirepass $REDIS_PASSWORD
appendonly yes
dir /data
EOF
chmod -R a+rX "$TMP/initdb" "$TMP/redis"

docker network create "$NET" >/dev/null
docker volume create "$PGVOL" >/dev/null

echo "# postgres:16-alpine"
docker run -d --name "$PG" --network "$NET" \
	-e POSTGRES_USER=app -e POSTGRES_DB=appdb -e POSTGRES_PASSWORD_FILE=/run/secrets/pg_password \
	-v "$TMP/secrets/pg_password:/run/secrets/pg_password:ro" \
	-v "$TMP/initdb:/docker-entrypoint-initdb.d:ro" \
	-v "$PGVOL:/var/lib/postgresql/data" \
	postgres:16-alpine postgres -c max_connections=200 -c shared_buffers=256MB >/dev/null
pg_ready() {
	docker logs "$PG" 2>&1 | grep -q 'init process complete' &&
		docker exec "$PG" pg_isready -h 127.0.0.1 -U app -d appdb
}
check "postgres initialises and pg_isready reports it healthy" wait_for 90 pg_ready
check "server runs as the postgres user" sh -c "[ \"\$(docker exec $PG stat -c %U /proc/1)\" = postgres ]"
check "PGDATA is owned by postgres" sh -c "[ \"\$(docker exec $PG stat -c %U /var/lib/postgresql/data)\" = postgres ]"
sql() { net_run -e PGPASSWORD="$PG_PASSWORD" postgres:16-alpine psql -h "$PG" -U app -d appdb -tAc "$1"; }
check_out "password login from another container; -c options applied" '^200$' sql 'SHOW max_connections'
check_out "shared_buffers from the command line" '^256MB$' sql 'SHOW shared_buffers'
check_out "init SQL created uuid-ossp and pgcrypto" 'pgcrypto.*uuid-ossp' \
	sql "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension"
check_out "gen_random_uuid() and uuid_generate_v4() work" '^[0-9a-f-]{36}\|[0-9a-f-]{36}$' \
	sql 'SELECT gen_random_uuid(), uuid_generate_v4()'
check_out "database encoding is UTF8" '^UTF8$' sql 'SHOW server_encoding'
check_out "wrong password is rejected (scram-sha-256)" 'password authentication failed' \
	net_run -e PGPASSWORD=wrong postgres:16-alpine psql -h "$PG" -U app -d appdb -c 'SELECT 1'
check_out "pg_dump works over the network" 'CREATE TABLE public.init_runs' \
	net_run -e PGPASSWORD="$PG_PASSWORD" postgres:16-alpine pg_dump -h "$PG" -U app -d appdb --schema-only
if docker exec "$PG" grep -qx vector /usr/local/share/postgresql-extensions.txt; then
	check_out "vector extension created" 'vector' sql "SELECT extname FROM pg_extension WHERE extname = 'vector'"
else
	echo "skip - pgvector is not packaged for this Debian release"
fi
docker restart "$PG" >/dev/null
check "restart: server comes back" wait_for 60 docker exec "$PG" pg_isready -h 127.0.0.1 -U app -d appdb
check_out "restart: init scripts did not run again" 'Skipping initialization' docker logs "$PG"
check_out "restart: init .sh ran exactly once" '^1$' sql 'SELECT count(*) FROM init_runs'

echo "# redis:7-alpine"
docker run -d --name "$REDIS" --network "$NET" \
	-v "$TMP/redis/redis.conf:/usr/local/etc/redis/redis.conf:ro" \
	redis:7-alpine redis-server /usr/local/etc/redis/redis.conf >/dev/null
check "redis answers PING with REDISCLI_AUTH" wait_for 30 \
	sh -c "docker exec -e REDISCLI_AUTH=$REDIS_PASSWORD $REDIS redis-cli ping | grep -qx PONG"
check_out "redis without the password is refused" 'NOAUTH' docker exec "$REDIS" redis-cli ping
check_out "redis from another container" '^PONG$' \
	net_run -e REDISCLI_AUTH="$REDIS_PASSWORD" redis:7-alpine redis-cli -h "$REDIS" ping
check_out "appendonly is on" '^yes$' \
	sh -c "docker exec -e REDISCLI_AUTH=$REDIS_PASSWORD $REDIS redis-cli config get appendonly | tail -n1"
check "redis runs as redis and /data/appendonlydir is its own" sh -c \
	"[ \"\$(docker exec $REDIS stat -c %U /proc/1 /data/appendonlydir | sort -u)\" = redis ]"

echo "# vps-stack-demo-api"
docker run -d --name "$API" --network "$NET" \
	-e DATABASE_URL="postgres://app:$PG_PASSWORD@$PG:5432/appdb" \
	-e REDIS_URL_FILE=/run/secrets/redis_url -v "$TMP/secrets/redis_url:/run/secrets/redis_url:ro" \
	vps-stack-demo-api:1 >/dev/null
check "demo API /health is 200 (curl inside the container)" wait_for 30 \
	docker exec "$API" curl -fsS http://127.0.0.1:8000/health
check_out "demo API reports version 1 and both checks ok" \
	'"status": "ok", "version": "1", "checks": \{"postgres": \{"ok": true.*"redis": \{"ok": true' \
	docker exec "$API" curl -fsS http://127.0.0.1:8000/health
check_out "demo API GET /" '"service": "vps-stack-demo-api"' docker exec "$API" curl -fsS http://127.0.0.1:8000/
check_out "vps-stack-demo-api:2 reports version 2" '"version": "2"' \
	net_run vps-stack-demo-api:2 sh -c \
	'python3 app.py & for i in $(seq 50); do curl -fsS http://127.0.0.1:8000/ && exit; sleep 0.2; done; exit 1'
check_out "demo API runs as app" '^app$' docker exec "$API" whoami

echo "# nginx:1.27-alpine"
docker run --rm -v "$TMP/nginx/certs:/certs" nginx:1.27-alpine \
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	-keyout /certs/key.pem -out /certs/cert.pem >/dev/null 2>&1
chmod -R a+rX "$TMP/nginx"
cat >"$TMP/nginx/conf.d/default.conf" <<EOF
server {
    listen 80;
    location = /healthz { return 200 "ok\n"; }
    location / { proxy_pass http://$API:8000; }
}
server {
    listen 443 ssl http2;
    ssl_certificate     /etc/nginx/certs/cert.pem;
    ssl_certificate_key /etc/nginx/certs/key.pem;
    location / { proxy_pass http://$API:8000; }
}
EOF
docker run -d --name "$NGINX" --network "$NET" \
	-v "$TMP/nginx/conf.d:/etc/nginx/conf.d:ro" -v "$TMP/nginx/certs:/etc/nginx/certs:ro" \
	nginx:1.27-alpine >/dev/null
check "nginx serves /healthz" wait_for 30 docker exec "$NGINX" curl -fsS http://127.0.0.1/healthz
check_out "nginx -t passes" 'test is successful' docker exec "$NGINX" nginx -t
check_out "nginx proxies to the demo API" '"status": "ok"' docker exec "$NGINX" curl -fsS http://127.0.0.1/health
check_out "nginx speaks HTTP/2 over TLS" '^2$' \
	docker exec "$NGINX" curl -sk --http2 -o /dev/null -w '%{http_version}' https://127.0.0.1/
check_out "nginx workers run as nginx" 'nginx' sh -c \
	"docker exec $NGINX sh -c 'for p in /proc/[0-9]*; do stat -c %U \$p; done' | sort -u"
check_out "nginx access log goes to stdout" '"GET /healthz HTTP/1.1" 200' docker logs "$NGINX"
check_out "wget is available" 'ok' docker exec "$NGINX" wget -qO- http://127.0.0.1/healthz

echo "# certbot/certbot:v5.7.0"
CERTBOT=certbot/certbot:v5.7.0
ACME_SH=/usr/local/sbin/vps-stack-acme.sh # where the stack uploads it
check_out "the entrypoint is certbot" '^certbot [0-9]+\.[0-9]+' docker run --rm "$CERTBOT" --version
check_out "VOLUME /etc/letsencrypt and /var/lib/letsencrypt" '^map\[/etc/letsencrypt:\{\} /var/lib/letsencrypt:\{\}\]$' \
	docker image inspect -f '{{.Config.Volumes}}' "$CERTBOT"
check "python3 imports cryptography; sh, cmp, cksum, date, basename, dirname, mkdir, cat, chmod, mv" \
	docker run --rm --entrypoint sh "$CERTBOT" -c \
	'python3 -c "from cryptography import x509" && for t in cmp cksum date basename dirname mkdir cat chmod mv; do command -v "$t" || exit 1; done'
# a placeholder (chain + key in one file, as the stack uploads it) and an "issued" lineage
mkdir -p "$TMP/acme/issued"
docker run --rm -v "$TMP/acme:/out" --entrypoint sh "$CERTBOT" -c '
	openssl req -x509 -newkey rsa:2048 -nodes -days 90 -subj /CN=app.acme.test -keyout /out/p.key -out /out/p.crt &&
	cat /out/p.crt /out/p.key >/out/placeholder.pem && rm /out/p.key /out/p.crt &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=app.acme.test \
		-keyout /out/issued/privkey.pem -out /out/issued/fullchain.pem' >/dev/null 2>&1
chmod -R a+rX "$TMP/acme"
# as the stack runs it: entrypoint sh, only the capabilities it keeps
docker run -d --name "$ACME" --entrypoint sh \
	--cap-drop ALL --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add FOWNER \
	-e ACME_DOMAINS=app.acme.test -e ACME_RENEW_INTERVAL=3600 \
	-v "$REPO_ROOT/render/scripts/vps-stack-acme.sh:$ACME_SH:ro" \
	-v "$TMP/acme/placeholder.pem:/run/vps-stack/placeholder.pem:ro" -v "$TMP/acme/issued:/issued:ro" \
	"$CERTBOT" "$ACME_SH" daemon >/dev/null
check "vps-stack-acme.sh daemon serves the placeholder" wait_for 15 docker exec "$ACME" test -s /etc/letsencrypt/vps-stack/tls.pem
check "its healthcheck passes on the placeholder" docker exec "$ACME" sh "$ACME_SH" check
check_out "status: the placeholder, and certbot's view" 'placeholder.*No certificates found' \
	sh -c "docker exec $ACME sh $ACME_SH status 2>&1 | tr '\n' ' '"
check_out "install serves a lineage's chain and key (cat, cmp, mv; expiry read with cryptography)" \
	'installed vps-stack \(expires [0-9]{4}-[0-9]{2}-[0-9]{2} ' docker exec "$ACME" sh -c \
	"mkdir -p /etc/letsencrypt/live/vps-stack && cp /issued/*.pem /etc/letsencrypt/live/vps-stack/ && sh $ACME_SH install"
check "its healthcheck passes on the installed certificate (30 days left)" docker exec "$ACME" sh "$ACME_SH" check
t0=$SECONDS
docker stop "$ACME" >/dev/null
check "the ACME container stops promptly on SIGTERM" test $((SECONDS - t0)) -lt 5

echo "# restic/restic:0.17.3"
RESTIC=restic/restic:0.17.3
check_out "the entrypoint is /usr/bin/restic" '^restic [0-9]+\.[0-9]+\.[0-9]+ ' docker run --rm "$RESTIC" version
check_out "ENTRYPOINT [/usr/bin/restic], no CMD, no VOLUME, runs as root" '^\["/usr/bin/restic"\] null null user=$' \
	docker image inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.Volumes}} user={{.Config.User}}' "$RESTIC"
check "/bin/sh, the scheduler's tools (flock, timeout, kill...), the CA bundle, jq; uid 0" \
	docker run --rm --entrypoint /bin/sh "$RESTIC" -c '
	for t in sleep date mv rm mkdir cat sed awk grep tail head find flock stat touch wc tr cut sort kill timeout jq; do
		command -v "$t" >/dev/null || { echo "missing: $t"; exit 1; }
	done
	[ -x /usr/bin/restic ] && [ -x /bin/kill ] && [ -s /etc/ssl/certs/ca-certificates.crt ] && [ "$(id -u)" = 0 ] &&
	flock -n /tmp/lock -c true && { timeout 1 sleep 5; [ $? = 124 ]; }'
check_out "TZ is honoured (tzdata)" '^(CET|CEST) (CET|CEST)$' \
	docker run --rm -e TZ=Europe/Paris --entrypoint sh "$RESTIC" -c 'echo "$(date +%Z) $(date -d @1700000000 +%Z)"'
# a local repository, the password as a read-only 0400 file (as the stack passes it)
mkdir -p "$TMP/restic/data/wal" "$TMP/restic/secrets"
printf '%s\n' "restic-$RANDOM-secret" >"$TMP/restic/secrets/password"
chmod 0400 "$TMP/restic/secrets/password"
head -c 300000 /dev/urandom >"$TMP/restic/data/wal/000000010000000000000001"
echo "row content" >"$TMP/restic/data/wal/000000010000000000000002.partial"
restic_run() {
	docker run --rm -e RESTIC_REPOSITORY=/repo -e RESTIC_PASSWORD_FILE=/run/secrets/restic_password \
		-v "$TMP/restic/secrets/password:/run/secrets/restic_password:ro" -v "$TMP/restic/repo:/repo" \
		-v "$TMP/restic/data:/backups:ro" -v "$TMP/restic/restore:/restore" "$@"
}
check_out "init a format-2 repository from RESTIC_PASSWORD_FILE" 'created restic repository' \
	restic_run "$RESTIC" init --repository-version 2
check_out "backup --tag wal twice: two snapshots, the second with no new file" '^2 0$' \
	restic_run --entrypoint sh "$RESTIC" -c '
	restic backup -q --tag wal --host vps /backups/wal &&
	new=$(restic backup --json --tag wal --host vps /backups/wal | jq -r "select(.message_type == \"summary\") | .files_new") &&
	echo "$(restic snapshots --json --tag wal | jq length) $new"'
check_out "forget --keep-last 1 --prune, then check --read-data-subset 100% passes" '^1 .*no errors were found' \
	restic_run --entrypoint sh "$RESTIC" -c '
	restic forget -q --tag wal --keep-last 1 --prune >/dev/null &&
	echo "$(restic snapshots --json | jq length) $(restic check --read-data-subset 100% 2>&1 | tr "\n" " ")"'
restore_latest() {
	restic_run "$RESTIC" restore latest --tag wal --target /restore >/dev/null &&
		diff -r "$TMP/restic/data/wal" "$TMP/restic/restore/backups/wal"
}
check "restore latest gives back the same bytes" restore_latest
check_out "the repository holds no plaintext" '^0$' sh -c "grep -rl 'row content' '$TMP/restic/repo' | wc -l"
check_out "a wrong password is refused" 'wrong password' \
	docker run --rm -e RESTIC_REPOSITORY=/repo -e RESTIC_PASSWORD=wrong -v "$TMP/restic/repo:/repo" "$RESTIC" snapshots

echo "# failure reporting"
docker stop "$REDIS" >/dev/null
check_out "demo API /health is 503 with redis ok:false when redis is down" \
	'^503 .*"redis": \{"ok": false, "error": "[^"]+' \
	docker exec "$API" sh -c \
	'code=$(curl -sS -o /tmp/h.json -w "%{http_code}" http://127.0.0.1:8000/health); echo "$code $(cat /tmp/h.json)"'
t0=$SECONDS
docker stop "$API" >/dev/null
check "demo API stops promptly on SIGTERM" test $((SECONDS - t0)) -lt 5

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
