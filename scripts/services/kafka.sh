#!/usr/bin/env bash
# Apache Kafka 4.x (KRaft, one combined broker+controller) from Maven Central jars, for tests and local runs.
#   scripts/services/kafka.sh up|down|status|restart|cluster-id [ENTROPY_FILE]
# Listeners (all on 127.0.0.1): PLAINTEXT $PORT (default 9092), CONTROLLER $PORT+1, SSL with client
# certificates required $PORT+2, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256/512) $PORT+3, SASL_SSL (SCRAM-SHA-512
# over TLS, server certificate from the same test CA, no client certificate) $PORT+4.
# State lives in $TSIEM_KAFKA_HOME (default <repo>/.services/kafka, gitignored): lib/ (jars, fetched once
# with Maven, cached in ~/.m2 too), data/ (formatted once), logs/, tls/ (generated CA, server and client
# PEM files), sasl.env (generated user and password). A second broker for a test: set TSIEM_KAFKA_PORT
# and TSIEM_KAFKA_HOME to other values.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
spec="$here/kafka"
home=${TSIEM_KAFKA_HOME:-$root/.services/kafka}
port=${TSIEM_KAFKA_PORT:-9092}
controller_port=$((port + 1))
ssl_port=$((port + 2))
sasl_port=$((port + 3))
sasl_ssl_port=$((port + 4))
heap=${TSIEM_KAFKA_HEAP:-512m}
start_timeout=${TSIEM_KAFKA_START_TIMEOUT:-120}
stop_timeout=${TSIEM_KAFKA_STOP_TIMEOUT:-60}
lib="$home/lib"
data="$home/data"
logs="$home/logs"
tls="$home/tls"
pidfile="$home/kafka.pid"
props="$home/server.properties"
sasl_user=tsiem

say() { echo "kafka[$port]: $*" >&2; }

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; else command -v java; fi
}

pid_alive() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A real metadata round trip with kafka-python when the project's virtualenv exists, else the broker's
# own "started" log line plus an open port.
answers() {
  port_open "$port" || return 1
  local py="$root/.venv/bin/python"
  if [ -x "$py" ] && "$py" -c 'import kafka' 2>/dev/null; then
    "$py" - "127.0.0.1:$port" <<'PY' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
client = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000, client_id="tsiem-health")
try:
    cluster = client.describe_cluster()
    if not cluster.get("brokers"):
        sys.exit(1)
    # A fresh broker answers metadata before its group coordinator (__consumer_offsets) is ready;
    # consumer groups fail until then, so that is part of healthy.
    client.list_group_offsets("tsiem-health")
    sys.exit(0)
finally:
    client.close()
PY
  else
    grep -q "Kafka Server started" "$logs/server.log" 2>/dev/null
  fi
}

fetch_jars() {
  local stamp
  stamp=$(sha256sum "$spec/pom.xml" | cut -c1-16)
  if [ -f "$lib/.stamp" ] && [ "$(cat "$lib/.stamp")" = "$stamp" ]; then return 0; fi
  say "fetching Kafka jars with Maven (cached in ~/.m2)"
  rm -rf "$lib.tmp"
  mvn -q -B -f "$spec/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib.tmp" >&2
  rm -rf "$lib"
  mv "$lib.tmp" "$lib"
  echo "$stamp" >"$lib/.stamp"
}

make_tls() {
  [ -f "$tls/client.pem" ] && return 0
  say "generating a test CA, server and client certificates in $tls"
  mkdir -p "$tls"
  local tmp="$tls/tmp"
  mkdir -p "$tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=temporal-siem test CA" \
    -keyout "$tmp/ca.key" -out "$tls/ca.pem" 2>/dev/null
  for who in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$tmp/$who.key.pkcs1" -out "$tmp/$who.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/$who.ext"
    openssl x509 -req -in "$tmp/$who.csr" -CA "$tls/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 3650 \
      -extfile "$tmp/$who.ext" -out "$tls/$who.crt" 2>/dev/null
    # Kafka's PEM key store wants an unencrypted PKCS#8 key followed by the certificate.
    openssl pkcs8 -topk8 -nocrypt -in "$tmp/$who.key.pkcs1" -out "$tls/$who.key"
  done
  cat "$tls/server.key" "$tls/server.crt" >"$tls/server.pem"
  cat "$tls/client.key" "$tls/client.crt" >"$tls/client.pem"
  rm -rf "$tmp"
}

sasl_password() {
  if [ ! -f "$home/sasl.env" ]; then
    printf 'KAFKA_SASL_USERNAME=%s\nKAFKA_SASL_PASSWORD=%s\n' "$sasl_user" "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >"$home/sasl.env"
    chmod 600 "$home/sasl.env"
  fi
  sed -n 's/^KAFKA_SASL_PASSWORD=//p' "$home/sasl.env"
}

render_props() {
  local password=$1
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@SSL_PORT@#$ssl_port#g" \
      -e "s#@SASL_PORT@#$sasl_port#g" -e "s#@SASL_SSL_PORT@#$sasl_ssl_port#g" -e "s#@DATA_DIR@#$data#g" -e "s#@TLS_DIR@#$tls#g" \
      -e "s#@SASL_USER@#$sasl_user#g" -e "s#@SASL_PASSWORD@#$password#g" \
      "$spec/server.properties.template" >"$props"
}

java_args() {
  # Kafka's own launch flags (bin/kafka-run-class.sh), trimmed: a small heap, G1, headless.
  jvm=("$(java_bin)" -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
       -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$spec/log4j2.properties" -cp "$lib/*")
}

java_cmd() {
  java_args
  "${jvm[@]}" "$@"
}

# A Kafka Uuid: 16 random bytes (from $1, /dev/urandom by default), base64url without padding, as
# `kafka-storage random-uuid` prints it. Like Kafka's Uuid.randomUuid(), never one that starts with '-':
# kafka-storage's argument parser reads `-t -abc...` as an option and refuses to format. Clearing the first
# byte's top bit keeps the first character in A..f (and away from '_' too) for the price of one bit.
cluster_id() {
  local hex
  hex=$(od -An -tx1 -N16 -v "${1:-/dev/urandom}" | tr -d ' \n')
  [ ${#hex} -eq 32 ] || { say "could not read 16 random bytes"; exit 1; }
  hex=$(printf '%02x' $((0x${hex:0:2} & 0x7f)))${hex:2}
  # shellcheck disable=SC2059  # the format is the bytes, written as \xHH escapes
  printf "$(sed 's/../\\x&/g' <<<"$hex")" | base64 | tr '+/' '-_' | tr -d '='
}

format_storage() {
  [ -f "$data/meta.properties" ] && return 0
  local password=$1 cluster_id
  say "formatting KRaft storage in $data"
  cluster_id=$(cluster_id)
  java_cmd kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" -c "$props" \
    --add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$password]" \
    --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$password]" >>"$logs/format.log" 2>&1 \
    || { say "storage format failed:"; tail -20 "$logs/format.log" >&2; exit 1; }
}

wait_healthy() {
  local deadline=$((SECONDS + start_timeout))
  while [ $SECONDS -lt $deadline ]; do
    if ! pid_alive; then
      say "the broker exited during startup; last log lines:"
      tail -30 "$logs/kafka.out" >&2 || true
      tail -30 "$logs/server.log" >&2 || true
      return 1
    fi
    if answers; then return 0; fi
    sleep 1
  done
  say "no answer on 127.0.0.1:$port after ${start_timeout}s; last log lines:"
  tail -30 "$logs/server.log" >&2 || true
  return 1
}

up() {
  if answers; then
    say "already running and healthy"
    return 0
  fi
  if pid_alive; then
    say "process $(cat "$pidfile") is running but not answering yet; waiting"
    wait_healthy && { say "healthy"; return 0; }
    return 1
  fi
  if port_open "$port"; then
    say "port $port is taken by something that is not a healthy Kafka broker"
    return 1
  fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required to fetch the jars"; return 1; }
  java_bin >/dev/null || { say "java (17+) is required"; return 1; }
  mkdir -p "$home" "$data" "$logs"
  fetch_jars
  make_tls
  local password
  password=$(sasl_password)
  render_props "$password"
  format_storage "$password"
  say "starting (logs in $logs)"
  # setsid: the broker outlives the shell (and the test session) that started it.
  java_args
  # 9>&-: the broker must not inherit the lock (it would hold it for its whole life).
  setsid nohup "${jvm[@]}" kafka.Kafka "$props" >"$logs/kafka.out" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
  wait_healthy || return 1
  say "healthy on 127.0.0.1:$port (SSL $ssl_port, SASL $sasl_port, SASL_SSL $sasl_ssl_port)"
}

down() {
  if ! pid_alive; then
    rm -f "$pidfile"
    say "not running"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  say "stopping process $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      say "no clean shutdown after ${stop_timeout}s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  rm -f "$pidfile"
  say "stopped"
}

status() {
  if answers; then
    say "healthy"
    return 0
  fi
  if pid_alive; then say "process $(cat "$pidfile") is running but not answering"; else say "not running"; fi
  return 1
}

# Several test sessions may call `up` at once on a fresh machine: one at a time starts or stops.
locked() {
  mkdir -p "$home"
  exec 9>"$home/.lock"
  flock -w 600 9 || { say "could not take $home/.lock within 600s"; exit 1; }
  "$@"
}

case "${1:-status}" in
  up) locked up ;;
  down) locked down ;;
  status) status ;;
  restart) locked down; up ;;
  cluster-id) cluster_id "${2:-}"; echo ;;
  *) echo "usage: $0 up|down|status|restart|cluster-id [ENTROPY_FILE]" >&2; exit 2 ;;
esac
