#!/usr/bin/env bash
# A private rsyslog (Debian package) for the syslog sink tests: TCP 10514 (octet counting), TLS 10515,
# UDP 10516, everything received written to .services/rsyslog/messages.log (raw) and parsed.jsonl.
#   scripts/services/rsyslog.sh up|down|status
set -euo pipefail
cmd=${1:-status}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/.services/rsyslog"
pidfile="$dir/rsyslogd.pid"
TCP_PORT=${TSIEM_RSYSLOG_TCP_PORT:-10514}
TLS_PORT=${TSIEM_RSYSLOG_TLS_PORT:-10515}
UDP_PORT=${TSIEM_RSYSLOG_UDP_PORT:-10516}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

make_certs() {
  # A throwaway CA and a server certificate for 127.0.0.1/localhost; regenerated per machine, never committed.
  local tls="$dir/tls"
  [ -s "$tls/server.pem" ] && return 0
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=temporal-siem test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$tls/ext.cnf"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
    -extfile "$tls/ext.cnf" -out "$tls/server.pem" >/dev/null 2>&1
  chmod 600 "$tls"/*.key
}

up() {
  if running && port_open "$TCP_PORT" && port_open "$TLS_PORT"; then
    echo "rsyslog: running (pid $(cat "$pidfile"))"; return 0
  fi
  command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || {
    echo "rsyslog: rsyslogd missing; install rsyslog rsyslog-gnutls (scripts/install-debian.sh)" >&2; exit 1; }
  [ -f /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || {
    echo "rsyslog: TLS driver missing; install rsyslog-gnutls" >&2; exit 1; }
  mkdir -p "$dir/work"
  make_certs
  sed -e "s|@DIR@|$dir|g" -e "s|@TCP_PORT@|$TCP_PORT|" -e "s|@TLS_PORT@|$TLS_PORT|" -e "s|@UDP_PORT@|$UDP_PORT|" \
    "$root/scripts/services/rsyslog/rsyslog.conf.template" > "$dir/rsyslog.conf"
  /usr/sbin/rsyslogd -N1 -f "$dir/rsyslog.conf" > "$dir/check.log" 2>&1 || { cat "$dir/check.log" >&2; exit 1; }
  setsid /usr/sbin/rsyslogd -n -f "$dir/rsyslog.conf" -i "$pidfile" > "$dir/rsyslogd.out" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    if port_open "$TCP_PORT" && port_open "$TLS_PORT"; then echo "rsyslog: up (tcp $TCP_PORT, tls $TLS_PORT, udp $UDP_PORT)"; return 0; fi
    sleep 0.1
  done
  echo "rsyslog: did not start" >&2; cat "$dir/rsyslogd.out" >&2; exit 1
}

down() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"; echo "rsyslog: down"
}

status() { if running; then echo "rsyslog: running (pid $(cat "$pidfile"))"; else echo "rsyslog: stopped"; exit 1; fi; }

case "$cmd" in
  up) up ;; down) down ;; status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
