#!/bin/sh
# vps-stack-acme: the stack's certificate from an ACME CA (Let's Encrypt) over HTTP-01, with certbot.
# Runs in the ACME container (the certbot image, entrypoint overridden to sh); POSIX sh.
#
# The proxy serves ONE file, $ACME_SERVED: the full chain followed by the private key, replaced by a
# rename so nginx never reads a chain and a key that do not match. Until the first certificate is
# issued it holds a self-signed placeholder, so nginx can start and answer the challenge on port 80
# (the first-run bootstrap: nginx needs a certificate to start, the CA needs nginx to issue one).
#
# usage: vps-stack-acme.sh daemon | issue | renew [certbot args] | install | check | status
#   daemon   put the placeholder in place if nothing is served, then every ACME_RENEW_INTERVAL
#            seconds: renew (or issue, if no certificate was ever issued) and install
#   issue    certbot certonly for ACME_DOMAINS (kept if still valid), install it, drop the stack's
#            certificates for other domain sets or directories
#   renew    certbot renew (extra arguments passed on, e.g. --force-renewal or --dry-run), install
#   install  copy the current certificate into $ACME_SERVED if it differs (exit 0 either way)
#   check    healthcheck: a real certificate with more than ACME_MIN_DAYS left, or the placeholder
#            for less than ACME_PLACEHOLDER_GRACE seconds
#   status   what is served, and certbot's view
#
# Settings (environment): ACME_DOMAINS (space-separated), ACME_EMAIL, ACME_SERVER (directory URL),
# ACME_CERT_NAME, ACME_WEBROOT (/var/www/acme), ACME_CONFIG_DIR (/etc/letsencrypt), ACME_WORK_DIR
# (/var/lib/letsencrypt), ACME_LOGS_DIR (/var/log/letsencrypt), ACME_SERVED
# ($ACME_CONFIG_DIR/vps-stack/tls.pem), ACME_PLACEHOLDER (/run/vps-stack/placeholder.pem),
# ACME_RENEW_INTERVAL (43200), ACME_MIN_DAYS (7), ACME_PLACEHOLDER_GRACE (3600), CERTBOT (certbot).
# REQUESTS_CA_BUNDLE makes certbot trust a private ACME server's HTTPS certificate.
set -eu
umask 077

CONFIG_DIR=${ACME_CONFIG_DIR:-/etc/letsencrypt}
WORK_DIR=${ACME_WORK_DIR:-/var/lib/letsencrypt}
LOGS_DIR=${ACME_LOGS_DIR:-/var/log/letsencrypt}
WEBROOT=${ACME_WEBROOT:-/var/www/acme}
SERVED=${ACME_SERVED:-$CONFIG_DIR/vps-stack/tls.pem}
SERVED_DIR=$(dirname "$SERVED")
MARKER=$SERVED_DIR/placeholder
PLACEHOLDER=${ACME_PLACEHOLDER:-/run/vps-stack/placeholder.pem}
CERT_NAME=${ACME_CERT_NAME:-vps-stack}

log() { printf '%s vps-stack-acme: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

certbot_() {
	${CERTBOT:-certbot} --config-dir "$CONFIG_DIR" --work-dir "$WORK_DIR" --logs-dir "$LOGS_DIR" "$@"
}

# replace_served FILE: rename FILE over the served file (same directory, so the switch is atomic)
replace_served() {
	chmod 600 "$1"
	mv -f "$1" "$SERVED"
}

# ensure_served: the placeholder, if nothing is served yet
ensure_served() {
	mkdir -p "$SERVED_DIR" "$WEBROOT"
	# nginx's workers (another user) read the challenge answers certbot writes here.
	chmod 755 "$WEBROOT"
	[ -s "$SERVED" ] && return 0
	[ -s "$PLACEHOLDER" ] || die "no certificate is served and the placeholder $PLACEHOLDER is missing"
	cp "$PLACEHOLDER" "$SERVED.tmp"
	replace_served "$SERVED.tmp"
	: >"$MARKER"
	log "serving the self-signed placeholder until $CERT_NAME is issued"
}

# install: the lineage's chain and key, as one file, if they differ from what is served
install() {
	live=$CONFIG_DIR/live/$CERT_NAME
	if [ ! -s "$live/fullchain.pem" ] || [ ! -s "$live/privkey.pem" ]; then
		log "no certificate $CERT_NAME yet; nothing to install"
		return 0
	fi
	mkdir -p "$SERVED_DIR"
	cat "$live/fullchain.pem" "$live/privkey.pem" >"$SERVED.tmp"
	if [ -s "$SERVED" ] && cmp -s "$SERVED.tmp" "$SERVED"; then
		rm -f "$SERVED.tmp"
		return 0
	fi
	replace_served "$SERVED.tmp"
	rm -f "$MARKER"
	log "installed $CERT_NAME (expires $(expiry_date "$SERVED")); the proxy reloads it"
}

# not_after FILE: expiry of the first certificate in FILE, in seconds since the epoch
not_after() {
	python3 -W ignore -c '
import sys, datetime
from cryptography import x509
c = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
t = getattr(c, "not_valid_after_utc", None) or c.not_valid_after.replace(tzinfo=datetime.timezone.utc)
print(int(t.timestamp()))' "$1"
}

expiry_date() {
	python3 -c 'import sys, datetime; print(datetime.datetime.fromtimestamp(int(sys.argv[1]), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))' "$(not_after "$1")"
}

issue() {
	[ -n "${ACME_DOMAINS:-}" ] || die "ACME_DOMAINS is empty"
	[ -n "${ACME_EMAIL:-}" ] || die "ACME_EMAIL is empty"
	[ -n "${ACME_SERVER:-}" ] || die "ACME_SERVER is empty"
	ensure_served
	set --
	for d in $ACME_DOMAINS; do set -- "$@" -d "$d"; done
	log "requesting $CERT_NAME for $ACME_DOMAINS from $ACME_SERVER"
	if ! certbot_ certonly --non-interactive --agree-tos --no-eff-email --email "$ACME_EMAIL" \
		--server "$ACME_SERVER" --cert-name "$CERT_NAME" --keep-until-expiring \
		--webroot --webroot-path "$WEBROOT" "$@"; then
		die "the ACME server did not issue $CERT_NAME: check that every name ($ACME_DOMAINS) resolves to this host and that port 80 reaches the proxy"
	fi
	install
	# Certificates of earlier domain sets or directories would be renewed for nothing (and fail once
	# their names point elsewhere).
	for dir in "$CONFIG_DIR"/live/vps-stack-*; do
		[ -d "$dir" ] || continue
		name=$(basename "$dir")
		[ "$name" = "$CERT_NAME" ] && continue
		if certbot_ delete --non-interactive --cert-name "$name" >/dev/null 2>&1; then
			log "deleted the stack's previous certificate $name"
		fi
	done
}

renew() {
	certbot_ renew --non-interactive "$@"
	install
}

check() {
	[ -s "$SERVED" ] || die "nothing is served at $SERVED"
	now=$(date +%s)
	if [ -e "$MARKER" ]; then
		since=$(date -r "$MARKER" +%s)
		grace=${ACME_PLACEHOLDER_GRACE:-3600}
		[ $((now - since)) -lt "$grace" ] || die "still serving the self-signed placeholder after ${grace}s: run \`vps-stack-acme.sh issue\` and read its message"
		return 0
	fi
	left=$(($(not_after "$SERVED") - now))
	min=$((${ACME_MIN_DAYS:-7} * 86400))
	[ "$left" -gt "$min" ] || die "the certificate expires in $((left / 3600))h; renewal is failing: run \`vps-stack-acme.sh renew\` and read its message"
}

status() {
	if [ ! -s "$SERVED" ]; then
		echo "served: nothing"
	elif [ -e "$MARKER" ]; then
		echo "served: the self-signed placeholder (no certificate issued yet)"
	else
		echo "served: $CERT_NAME for ${ACME_DOMAINS:-?}, expires $(expiry_date "$SERVED")"
	fi
	certbot_ certificates
}

daemon() {
	ensure_served
	interval=${ACME_RENEW_INTERVAL:-43200}
	sleeper=
	trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT
	log "renewing every ${interval}s"
	while :; do
		# `sleep & wait` so that docker stop is answered at once.
		sleep "$interval" &
		sleeper=$!
		wait "$sleeper" || true
		sleeper=
		if [ -d "$CONFIG_DIR/live/$CERT_NAME" ]; then
			renew || log "renewal failed; the current certificate stays in place"
		else
			(issue) || log "issuance failed; retrying in ${interval}s"
		fi
	done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
daemon) daemon ;;
issue) issue ;;
renew) renew "$@" ;;
install) install ;;
check) check ;;
status) status ;;
*)
	echo "usage: vps-stack-acme.sh daemon|issue|renew [certbot args]|install|check|status" >&2
	exit 64
	;;
esac
