#!/bin/sh
# vps-stack-alerts: the stack's watcher. Every INTERVAL seconds it looks at the stack (containers through
# the Docker API, the public health URLs through the host's published ports, the served certificate, the
# disks, OOM kills) and tells the operators through webhooks (generic JSON, Slack, Discord) and e-mail:
# once when a problem starts, once when it resolves, and a reminder every REMINDER seconds while it lasts.
#
# usage: vps-stack-alerts watch | round | check | status | test
#   watch    the container's main process: a round every INTERVAL seconds
#   round    one round (look, then notify what changed)
#   check    healthcheck: the last round ended less than 3 intervals ago
#   status   the problems now active, with when they started
#   test     sends a test notification to every destination; fails if one of them refused it
#
# Runs in the proxy's image (nginx alpine: busybox, curl); keeps to options busybox and GNU tools share.
# Secrets (webhook URLs, the SMTP login) are curl config files (-K), never arguments or environment.
#
# Environment: STACK; STATE_DIR; INTERVAL (60); REMINDER (86400); CONFIRM (2: rounds a problem must be
# seen in a row before it is notified); CERT_DAYS (14); DISK_PERCENT (90); DISKS ("label=path ...");
# DOCKER_SOCKET (/var/run/docker.sock; empty: no container checks; in the stack, the socket of the proxy
# that passes on only these reads); DOCKER_API_PROXY (that proxy's container, named in the fix); EXPECTED (container names that must
# run); HEALTH_URLS; HEALTH_CONNECT (host that the URLs' connections go to; "gateway": the container's
# default gateway, which is the host's address on the watcher's network);
# OOM_WINDOW (3600); WEBHOOKS ("kind=curl-config-file ...", kind json|slack|discord); SMTP_URL,
# SMTP_STARTTLS (1), SMTP_AUTH (curl config file with the user), MAIL_FROM, MAIL_TO ("a@x b@y").
set -u

STATE_DIR=${STATE_DIR:-/var/lib/vps-stack-alerts}
INTERVAL=${INTERVAL:-60}
REMINDER=${REMINDER:-86400}
CONFIRM=${CONFIRM:-2}
CERT_DAYS=${CERT_DAYS:-14}
DISK_PERCENT=${DISK_PERCENT:-90}
OOM_WINDOW=${OOM_WINDOW:-3600}
DOCKER_SOCKET=${DOCKER_SOCKET-/var/run/docker.sock}
STACK=${STACK:-?}
ACTIVE="$STATE_DIR/active"
SEEN="$STATE_DIR/seen"

log() { echo "vps-stack-alerts: $*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s; }

# --- what is wrong now ------------------------------------------------------------------------------------
# Each check appends "key<TAB>kind<TAB>summary<TAB>what to do" lines to $found. Keys are stable across
# rounds: the same problem keeps the same key, so it is notified once.
problem() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$found"; }

# GET on the Docker API, read-only use of the socket. $1: path and query (already URL-encoded).
docker_get() { curl -fsS --max-time 10 --unix-socket "$DOCKER_SOCKET" "http://docker$1"; }
# Container names in a /containers/json answer ("Names":["/name"]): quotes inside JSON strings are escaped,
# so this pattern only matches the key itself.
names() { grep -o '"Names":\["/[^"]*"' | sed 's/.*"\///; s/"$//'; }
# The stack's containers that match a Docker filter (JSON, URL-encoded by the caller's words).
stack_containers() {
	json=$(docker_get "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22vps-stack.stack%3D$STACK%22$1%5D$2%7D") || return 1
	printf '%s\n' "$json" | names
}

# What each service's failing healthcheck means, and what to do about it.
container_kind() {
	case "$1" in
	*-backup | *-wal) echo backup ;;
	*-offsite) echo backup ;;
	*-acme) echo certificate ;;
	*) echo container ;;
	esac
}
container_hint() {
	case "$1" in
	*-backup) echo "docker exec $1 vps-stack-backup check; then status (docs/backups.md)" ;;
	*-wal) echo "docker logs --tail 50 $1: the WAL is not streaming, point-in-time recovery stops here (docs/backups.md)" ;;
	*-offsite) echo "docker exec $1 vps-stack-offsite check; then status (docs/backups.md, Off-site copy)" ;;
	*-acme) echo "docker exec $1 vps-stack-acme.sh status; a renewal failing: run renew and read its message (docs/tls.md)" ;;
	*) echo "docker logs --tail 50 $1; docker inspect --format '{{json .State.Health}}' $1" ;;
	esac
}
# The last healthcheck output of a container, on one line (what the check said, e.g. why a backup is stale).
health_output() {
	docker_get "/containers/$1/json" 2>/dev/null | grep -o '"Output":"\([^"\\]\|\\.\)*"' | tail -n 1 |
		sed 's/^"Output":"//; s/"$//; s/\\\\/@BACKSLASH@/g; s/\\n/ /g; s/\\t/ /g; s/\\"/"/g; s/\\u003c/</g; s/\\u003e/>/g; s/\\u0026/\&/g' | sed 's/@BACKSLASH@/\\/g; s/ *$//' | cut -c 1-300
}

check_containers() {
	[ -n "$DOCKER_SOCKET" ] || return 0
	if ! all=$(stack_containers "" "") ; then
		problem "docker" container "the Docker API does not answer the watcher (through $DOCKER_SOCKET)" "docker logs ${DOCKER_API_PROXY:-<the proxy>}; systemctl status docker"
		return 0
	fi
	oneshot=$(stack_containers "%2C%22vps-stack.one-shot%22" "") || oneshot=""
	running=$(stack_containers "" "%2C%22status%22%3A%5B%22running%22%5D") || running=""
	unhealthy=$(stack_containers "" "%2C%22health%22%3A%5B%22unhealthy%22%5D") || unhealthy=""
	restarting=$(stack_containers "" "%2C%22status%22%3A%5B%22restarting%22%5D") || restarting=""
	for c in $EXPECTED; do
		printf '%s\n' "$all" | grep -qx "$c" || problem "gone:$c" container "container $c is gone" "pulumi up recreates it"
	done
	for c in $all; do
		printf '%s\n' "$oneshot" | grep -qx "$c" && continue
		if printf '%s\n' "$restarting" | grep -qx "$c"; then
			problem "restarting:$c" "$(container_kind "$c")" "container $c is restarting in a loop" "$(container_hint "$c")"
		elif ! printf '%s\n' "$running" | grep -qx "$c"; then
			problem "stopped:$c" "$(container_kind "$c")" "container $c is not running" "docker logs --tail 50 $c; pulumi up starts it again"
		elif printf '%s\n' "$unhealthy" | grep -qx "$c"; then
			out=$(health_output "$c")
			problem "unhealthy:$c" "$(container_kind "$c")" "container $c is unhealthy${out:+: $out}" "$(container_hint "$c")"
		fi
	done
}

# OOM kills since the last round, remembered for OOM_WINDOW: a problem while the last one is that recent.
check_oom() {
	[ -n "$DOCKER_SOCKET" ] || return 0
	t=$(now)
	since=$(cat "$STATE_DIR/oom-since" 2>/dev/null || echo $((t - INTERVAL)))
	mkdir -p "$STATE_DIR/oom"
	if events=$(docker_get "/events?since=$since&until=$t&filters=%7B%22event%22%3A%5B%22oom%22%5D%2C%22label%22%3A%5B%22vps-stack.stack%3D$STACK%22%5D%7D"); then
		printf '%s\n' "$events" | grep -o '"name":"[^"]*"' | sed 's/^"name":"//; s/"$//' | sort -u | while read -r c; do
			[ -n "$c" ] && echo "$t" >"$STATE_DIR/oom/$c"
		done
		echo "$t" >"$STATE_DIR/oom-since"
	fi
	for f in "$STATE_DIR"/oom/*; do
		[ -f "$f" ] || continue
		c=${f##*/}
		if [ $((t - $(cat "$f"))) -lt "$OOM_WINDOW" ]; then
			problem "oom:$c" memory "container $c was killed for lack of memory (OOM) at $(date -d "@$(cat "$f")" 2>/dev/null || cat "$f")" "raise its memory limit in the stack config (e.g. apps[].memory), or find the leak; docker stats"
		else
			rm -f "$f"
		fi
	done
}

check_disks() {
	for d in ${DISKS:-}; do
		label=${d%%=*} p=${d#*=}
		used=$(df -P "$p" 2>/dev/null | awk 'NR == 2 { sub(/%/, "", $5); print $5 }')
		[ -n "$used" ] || continue
		[ "$used" -ge "$DISK_PERCENT" ] &&
			problem "disk:$label" disk "the disk holding $label is ${used}% full (threshold ${DISK_PERCENT}%)" "docker system df; du -sh the backup directory; lower backup.retention or grow the disk"
	done
}

# Seconds since the epoch of an OpenSSL date ("Dec  5 14:34:48 2026 GMT"), by arithmetic: busybox's and
# GNU date parse different formats.
cert_epoch() {
	awk '{ m = index("JanFebMarAprMayJunJulAugSepOctNovDec", $1); if (m == 0) exit 1; m = (m + 2) / 3
		d = $2; split($3, hms, ":"); y = $4
		if (m <= 2) { y--; m += 12 }
		days = 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * (m - 3) + 2) / 5) + d - 719469
		print days * 86400 + hms[1] * 3600 + hms[2] * 60 + hms[3] }'
}

# The container's default gateway, from the kernel's routing table (no ip(8) needed): the host's address on
# the container's network, where the published ports answer. The address is hex, in the kernel's byte order
# (little-endian on every platform Docker runs on).
default_gateway() {
	awk '$2 == "00000000" && $3 != "00000000" {
		x = "0123456789ABCDEF"; g = toupper($3)
		for (i = 7; i >= 1; i -= 2) printf "%d%s", (index(x, substr(g, i, 1)) - 1) * 16 + index(x, substr(g, i + 1, 1)) - 1, (i > 1 ? "." : "\n")
		exit }' /proc/net/route
}

check_health() {
	target=${HEALTH_CONNECT:-}
	if [ "$target" = gateway ] && [ -n "${HEALTH_URLS:-}" ]; then
		target=$(default_gateway)
		[ -n "$target" ] || problem "health:gateway" health "the watcher finds no default gateway to reach the host's published ports" "docker inspect $STACK's alerts container: its network must be a bridge with a gateway"
	fi
	for url in ${HEALTH_URLS:-}; do
		[ "${HEALTH_CONNECT:-}" = gateway ] && [ -z "$target" ] && break
		connect=""
		[ -n "$target" ] && connect="--connect-to ::$target:"
		# -k: whether the chain is trusted is not this check's business; its expiry is checked below.
		# shellcheck disable=SC2086
		if ! info=$(curl -ksS -o /dev/null --max-time 10 $connect -w '%{http_code}\n%{certs}' "$url" 2>"$STATE_DIR/.curl-err"); then
			problem "health:$url" health "$url does not answer from the host: $(tail -n 1 "$STATE_DIR/.curl-err" | cut -c 1-200)" "docker ps; docker logs of the proxy and the app"
			continue
		fi
		code=$(printf '%s\n' "$info" | head -n 1)
		case "$code" in
		2??) ;;
		*) problem "health:$url" health "$url answers HTTP $code from the host" "docker ps; docker logs of the proxy and the app" ;;
		esac
		# The first certificate is the leaf.
		expiry=$(printf '%s\n' "$info" | grep -m 1 '^Expire date:' | sed 's/^Expire date: *//')
		[ -n "$expiry" ] || continue
		host=${url#https://}
		host=${host%%/*}
		at=$(printf '%s\n' "$expiry" | cert_epoch) || continue
		left=$(((at - $(now)) / 86400))
		[ "$left" -lt "$CERT_DAYS" ] &&
			problem "certificate:$host" certificate "the certificate served for $host expires in $left days ($expiry)" "tls.mode acme: docker exec <stack>-acme vps-stack-acme.sh renew; provided: set new secrets.TLS_CERTIFICATE/TLS_PRIVATE_KEY and pulumi up; ca: pulumi up (docs/tls.md)"
	done
	return 0
}

# --- sending ----------------------------------------------------------------------------------------------
# A JSON string from stdin: backslash, quote and control characters escaped, lines joined with \n.
json_string() {
	awk 'BEGIN { ORS = "" ; print "\"" }
		{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, ""); gsub(/[\001-\037]/, " ")
		  if (NR > 1) print "\\n"; print }
		END { print "\"" }'
}

# $1 event (problem|resolved|reminder|test) $2 key $3 kind $4 summary $5 what to do $6 since (epoch)
message_text() {
	case "$1" in
	problem) head="PROBLEM" ;;
	resolved) head="RESOLVED" ;;
	reminder) head="STILL FAILING" ;;
	*) head="TEST" ;;
	esac
	printf '[vps-stack %s] %s: %s\n' "$STACK" "$head" "$4"
	case "$1" in
	problem) printf 'What to do: %s\n' "$5" ;;
	reminder) printf 'Since %s. What to do: %s\n' "$(date -u -d "@$6" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo "$6")" "$5" ;;
	resolved) printf 'It lasted %s minutes.\n' $((($(now) - $6) / 60)) ;;
	esac
}

send_mail() { # $1 event $2 key $3 kind $4 summary $5 hint $6 since
	text=$(message_text "$1" "$2" "$3" "$4" "$5" "$6")
	msg="$STATE_DIR/.mail"
	{
		printf 'From: %s\r\nTo: %s\r\n' "$MAIL_FROM" "$(echo "$MAIL_TO" | sed 's/ /, /g')"
		printf 'Subject: %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' "$(printf '%s\n' "$text" | head -n 1 | cut -c 1-200)" "$(date -R 2>/dev/null || date)"
		printf '%s\n' "$text" | sed 's/$/\r/'
	} >"$msg"
	set -- --ssl-reqd
	[ "${SMTP_STARTTLS:-1}" = 1 ] || case "$SMTP_URL" in smtps:*) ;; *) set -- ;; esac
	for r in $MAIL_TO; do set -- "$@" --mail-rcpt "$r"; done
	[ -n "${SMTP_AUTH:-}" ] && set -- "$@" -K "$SMTP_AUTH"
	curl -sS --max-time 30 --url "$SMTP_URL" --mail-from "$MAIL_FROM" "$@" --upload-file "$msg" >/dev/null
}

# Sends one event everywhere; succeeds when at least one destination took it (the others are logged).
notify() {
	ok=1 any=0
	for w in ${WEBHOOKS:-}; do
		any=1
		kind=${w%%=*} file=${w#*=}
		# The URL carries a token: curl reads it from its config file, and errors never print it.
		if err=$(printf '%s' "$(body_for "$kind" "$@")" | curl -fsS -o /dev/null --max-time 20 -K "$file" -H 'Content-Type: application/json' --data-binary @- 2>&1); then
			ok=0
		else
			log "$kind webhook: $(printf '%s' "$err" | sed 's#[a-z]*://[^ ]*#<url>#g')"
		fi
	done
	if [ -n "${SMTP_URL:-}" ]; then
		any=1
		if err=$(send_mail "$@" 2>&1); then ok=0; else log "e-mail: $err"; fi
	fi
	[ "$any" = 1 ] || { log "no destination configured: $(message_text "$@" | head -n 1)"; return 0; }
	return "$ok"
}

body_for() { # $1 webhook kind, then notify's arguments
	k=$1
	shift
	text=$(message_text "$@")
	case "$k" in
	slack) printf '{"text":%s}' "$(printf '%s' "$text" | json_string)" ;;
	# Discord refuses content over 2000 characters.
	discord) printf '{"content":%s}' "$(printf '%s' "$text" | cut -c 1-1900 | json_string)" ;;
	*)
		printf '{"stack":%s,"event":"%s","kind":%s,"key":%s,"summary":%s,"action":%s,"since":%s,"time":%s,"text":%s}' \
			"$(printf '%s' "$STACK" | json_string)" "$1" "$(printf '%s' "$3" | json_string)" "$(printf '%s' "$2" | json_string)" \
			"$(printf '%s' "$4" | json_string)" "$(printf '%s' "$5" | json_string)" "${6:-0}" "$(now)" "$(printf '%s' "$text" | json_string)"
		;;
	esac
}

# --- state ------------------------------------------------------------------------------------------------
# active/<id>: a notified problem (key, kind, summary, hint, since, last notified). seen/<id>: rounds in a
# row a problem not yet notified was seen. <id> is the key made safe for a file name.
key_id() { printf '%s' "$1" | md5sum | cut -c 1-16; }

round() {
	mkdir -p "$ACTIVE" "$SEEN" || die "cannot write $STATE_DIR"
	found="$STATE_DIR/.found"
	: >"$found"
	check_containers
	check_oom
	check_disks
	check_health
	t=$(now)
	# New and lasting problems.
	sort -u "$found" | while IFS="$(printf '\t')" read -r key kind summary hint; do
		id=$(key_id "$key")
		echo "$key" >>"$found.ids.tmp"
		if [ -f "$ACTIVE/$id" ]; then
			since=$(sed -n 5p "$ACTIVE/$id") last=$(sed -n 6p "$ACTIVE/$id")
			if [ $((t - last)) -ge "$REMINDER" ] && notify reminder "$key" "$kind" "$summary" "$hint" "$since"; then
				printf '%s\n%s\n%s\n%s\n%s\n%s\n' "$key" "$kind" "$summary" "$hint" "$since" "$t" >"$ACTIVE/$id"
			fi
			continue
		fi
		n=$(($(cat "$SEEN/$id" 2>/dev/null || echo 0) + 1))
		[ -f "$SEEN/$id.since" ] || echo "$t" >"$SEEN/$id.since"
		if [ "$n" -lt "$CONFIRM" ]; then
			echo "$n" >"$SEEN/$id"
			continue
		fi
		since=$(cat "$SEEN/$id.since")
		if notify problem "$key" "$kind" "$summary" "$hint" "$since"; then
			printf '%s\n%s\n%s\n%s\n%s\n%s\n' "$key" "$kind" "$summary" "$hint" "$since" "$t" >"$ACTIVE/$id"
			rm -f "$SEEN/$id" "$SEEN/$id.since"
		else
			# Not sent: tried again next round.
			echo "$n" >"$SEEN/$id"
		fi
	done
	touch "$found.ids.tmp"
	# Resolved problems, and candidates that went away before they were confirmed.
	for f in "$ACTIVE"/*; do
		[ -f "$f" ] || continue
		key=$(sed -n 1p "$f")
		grep -qxF "$key" "$found.ids.tmp" && continue
		if notify resolved "$key" "$(sed -n 2p "$f")" "$(sed -n 3p "$f")" "$(sed -n 4p "$f")" "$(sed -n 5p "$f")"; then
			rm -f "$f"
		fi
	done
	for f in "$SEEN"/*; do
		[ -f "$f" ] || continue
		case "$f" in *.since) continue ;; esac
		id=${f##*/}
		known=0
		while read -r key; do [ "$(key_id "$key")" = "$id" ] && known=1 && break; done <"$found.ids.tmp"
		[ "$known" = 1 ] || rm -f "$f" "$f.since"
	done
	rm -f "$found.ids.tmp"
	touch "$STATE_DIR/heartbeat"
}

watch() {
	log "watching stack $STACK every ${INTERVAL}s"
	trap 'exit 0' TERM INT
	while :; do
		round
		sleep "$INTERVAL" &
		wait $!
	done
}

check() {
	hb="$STATE_DIR/heartbeat"
	[ -f "$hb" ] || die "no round has finished yet"
	age=$(($(now) - $(date -r "$hb" +%s)))
	[ "$age" -le $((INTERVAL * 3)) ] || die "the last round finished ${age}s ago (interval ${INTERVAL}s): the watcher is stuck"
}

status() {
	n=0
	for f in "$ACTIVE"/*; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		echo "since $(date -u -d "@$(sed -n 5p "$f")" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || sed -n 5p "$f"): $(sed -n 3p "$f")"
	done
	[ "$n" -gt 0 ] || echo "no active problem"
}

test_() {
	mkdir -p "$STATE_DIR" || die "cannot write $STATE_DIR"
	fails=0
	for w in ${WEBHOOKS:-}; do
		kind=${w%%=*} file=${w#*=}
		if err=$(body_for "$kind" test test test "a test notification from the watcher: this destination works" "" "$(now)" |
			curl -fsS -o /dev/null --max-time 20 -K "$file" -H 'Content-Type: application/json' --data-binary @- 2>&1); then
			echo "$kind webhook: sent"
		else
			echo "$kind webhook: FAILED: $(printf '%s' "$err" | sed 's#[a-z]*://[^ ]*#<url>#g')"
			fails=$((fails + 1))
		fi
	done
	if [ -n "${SMTP_URL:-}" ]; then
		if err=$(send_mail test test test "a test notification from the watcher: this destination works" "" "$(now)" 2>&1); then
			echo "e-mail to $MAIL_TO: sent"
		else
			echo "e-mail to $MAIL_TO: FAILED: $err"
			fails=$((fails + 1))
		fi
	fi
	[ -n "${WEBHOOKS:-}${SMTP_URL:-}" ] || die "no destination configured (alerts.webhooks, alerts.email)"
	[ "$fails" -eq 0 ]
}

case "${1:-}" in
watch) watch ;;
round) round ;;
check) check ;;
status) status ;;
test) test_ ;;
*)
	echo "usage: vps-stack-alerts watch|round|check|status|test" >&2
	exit 2
	;;
esac
