#!/usr/bin/env bash
# A real single-node OpenSearch 2.19 for the sink tests, assembled from Maven Central: the server jars, the
# transport-netty4 module and the opensearch-security plugin (scripts/services/opensearch/pom.xml).
# Default node: HTTPS + basic auth (the security plugin, as users run OpenSearch) on 127.0.0.1:9210,
# transport 9310 (TLS), data under .services/opensearch. Idempotent; jars cached in ~/.m2; waits for health.
#   scripts/services/opensearch.sh up|down|status
# Generated at first `up` (never in the repository): a test CA and node/admin certificates in
# .services/opensearch/tls/ (clients trust tls/ca.pem), and the user `tsiem` with a random password in
# .services/opensearch/<instance>/auth.env (OPENSEARCH_USERNAME=, OPENSEARCH_PASSWORD=).
# Another, independent node (the outage test stops and starts its own): TSIEM_OS_INSTANCE=name,
# TSIEM_OS_HTTP_PORT / TSIEM_OS_TRANSPORT_PORT, TSIEM_OS_SECURITY=0 for plain HTTP without auth.
set -euo pipefail
cmd=${1:-status}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/scripts/services/opensearch"
base="$root/.services/opensearch"
instance=${TSIEM_OS_INSTANCE:-default}
HTTP_PORT=${TSIEM_OS_HTTP_PORT:-9210}
TRANSPORT_PORT=${TSIEM_OS_TRANSPORT_PORT:-9310}
SECURITY=${TSIEM_OS_SECURITY:-1}
HEAP=${TSIEM_OS_HEAP:-512m}
START_TIMEOUT=${TSIEM_OS_START_TIMEOUT:-240}
OS_VERSION=$(sed -n 's:.*<opensearch.version>\(.*\)</opensearch.version>.*:\1:p' "$src/pom.xml")
JAVA_HOME_OS=${TSIEM_OS_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
JAVA="$JAVA_HOME_OS/bin/java"
user=tsiem

say() { echo "opensearch[$instance]: $*" >&2; }

# OpenSearch refuses to run as root: as root, run it as a dedicated system user.
run_user=""
if [ "$(id -u)" -eq 0 ]; then
  run_user=tsiem-os
  id "$run_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$run_user"
fi
as_user() { if [ -n "$run_user" ]; then runuser -u "$run_user" -- "$@"; else "$@"; fi; }
# That user may not be able to reach a checkout under a private home (/root is 0700): then the node lives
# in /var/tmp instead, and .services/opensearch points there.
if [ -n "$run_user" ] && ! runuser -u "$run_user" -- test -x "$root"; then
  real="/var/tmp/tsiem-services-$(printf %s "$root" | md5sum | cut -c1-10)/opensearch"
  mkdir -p "$real" "$root/.services"
  chmod 755 "$(dirname "$real")" "$real"
  if [ ! -L "$base" ]; then rm -rf "$base"; ln -s "$real" "$base"; fi
  base="$real"
fi
home="$base/home"
tls="$base/tls"
dir="$base/$instance"
pidfile="$dir/opensearch.pid"      # written by the server itself (it runs under runuser)
launcherpid="$dir/launcher.pid"
if [ "$SECURITY" = 1 ]; then url="https://127.0.0.1:$HTTP_PORT"; else url="http://127.0.0.1:$HTTP_PORT"; fi

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
password() { sed -n 's/^OPENSEARCH_PASSWORD=//p' "$dir/auth.env" 2>/dev/null; }
healthy() {
  local auth=()
  if [ "$SECURITY" = 1 ]; then
    [ -f "$dir/auth.env" ] || return 1
    auth=(--cacert "$tls/ca.pem" -u "$user:$(password)")
  fi
  curl -fsS -m 5 "${auth[@]}" "$url/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null \
    | grep -q '"status":"\(green\|yellow\)"'
}

install_home() {
  local stamp; stamp=$(cat "$src/pom.xml" "$src/transport-netty4.policy" "$src/ExtendedPluginsClassLoader.java" | sha256sum | cut -c1-16)
  [ -f "$home/.stamp" ] && [ "$(cat "$home/.stamp")" = "$stamp" ] && return 0
  say "assembling OpenSearch $OS_VERSION from Maven Central (cached in ~/.m2)"
  rm -rf "$home"
  mkdir -p "$home/bin" "$home/lib" "$home/modules/transport-netty4" "$home/plugins/opensearch-security"
  local jars="$base/jars"; rm -rf "$jars"
  mvn -q -B -f "$src/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" -DincludeScope=runtime >&2
  for jar in "$jars"/*; do
    case "$(basename "$jar")" in
      opensearch-security-*.zip) unzip -q "$jar" -d "$home/plugins/opensearch-security" ;;
      transport-netty4-client-*|netty-*) cp "$jar" "$home/modules/transport-netty4/" ;;
      *) cp "$jar" "$home/lib/" ;;
    esac
  done
  # The module's jar on Maven Central carries neither its descriptor nor its policy (the distribution adds them).
  cat > "$home/modules/transport-netty4/plugin-descriptor.properties" <<EOF
description=Netty 4 based transport implementation
version=$OS_VERSION
name=transport-netty4
classname=org.opensearch.transport.Netty4Plugin
java.version=11
opensearch.version=$OS_VERSION
extended.plugins=
has.native.controller=false
EOF
  cp "$src/transport-netty4.policy" "$home/modules/transport-netty4/plugin-security.policy"
  # The distribution's opensearch-plugin-classloader jar is not on Maven Central: a stand-in, built here.
  local build="$base/classloader-build"; rm -rf "$build"; mkdir -p "$build"
  "$JAVA_HOME_OS/bin/javac" -nowarn -d "$build" "$src/ExtendedPluginsClassLoader.java"
  "$JAVA_HOME_OS/bin/jar" --create --file "$home/lib/opensearch-plugin-classloader-$OS_VERSION.jar" -C "$build" .
  rm -rf "$build"
  rm -rf "$jars"   # copied into home/; the originals stay in ~/.m2
  echo "$stamp" > "$home/.stamp"
}

# A CA, the node's certificate (transport and HTTP) and an admin certificate (the security plugin's
# admin_dn), all PEM with PKCS#8 keys. Generated once per machine; the CA key is kept for new certificates.
make_tls() {
  [ -f "$tls/admin.pem" ] && return 0
  say "generating a test CA and certificates in $tls"
  rm -rf "$tls.tmp"; mkdir -p "$tls.tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=temporal-siem test OpenSearch CA" \
    -keyout "$tls.tmp/ca.key" -out "$tls.tmp/ca.pem" 2>/dev/null
  for who in node admin; do
    openssl req -newkey rsa:2048 -nodes -subj "/O=temporal-siem/CN=$who" -keyout "$tls.tmp/$who.key.pkcs1" \
      -out "$tls.tmp/$who.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > "$tls.tmp/$who.ext"
    openssl x509 -req -in "$tls.tmp/$who.csr" -CA "$tls.tmp/ca.pem" -CAkey "$tls.tmp/ca.key" -CAcreateserial -days 3650 \
      -extfile "$tls.tmp/$who.ext" -out "$tls.tmp/$who.pem" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$tls.tmp/$who.key.pkcs1" -out "$tls.tmp/$who.key"
    rm -f "$tls.tmp/$who.key.pkcs1" "$tls.tmp/$who.csr" "$tls.tmp/$who.ext"
  done
  rm -rf "$tls"; mv "$tls.tmp" "$tls"
}

write_config() {
  local conf="$dir/config"
  rm -rf "$conf"; mkdir -p "$conf"
  cp "$src/log4j2.properties" "$conf/log4j2.properties"
  {
    echo "cluster.name: temporal-siem-test-os-$instance"
    echo "node.name: tsiem-os-node"
    echo "path.data: $dir/data"
    echo "path.logs: $dir/logs"
    echo "network.host: 127.0.0.1"
    echo "http.port: $HTTP_PORT"
    echo "transport.port: $TRANSPORT_PORT"
    echo "discovery.type: single-node"
    echo "cluster.routing.allocation.disk.threshold_enabled: false"
    echo "action.auto_create_index: true"
  } > "$conf/opensearch.yml"
  if [ "$SECURITY" != 1 ]; then
    echo "plugins.security.disabled: true" >> "$conf/opensearch.yml"
    return 0
  fi
  cp "$tls/ca.pem" "$tls/node.pem" "$tls/node.key" "$conf/"
  cat >> "$conf/opensearch.yml" <<'EOF'
plugins.security.ssl.transport.pemcert_filepath: node.pem
plugins.security.ssl.transport.pemkey_filepath: node.key
plugins.security.ssl.transport.pemtrustedcas_filepath: ca.pem
plugins.security.ssl.transport.enforce_hostname_verification: false
plugins.security.ssl.http.enabled: true
plugins.security.ssl.http.pemcert_filepath: node.pem
plugins.security.ssl.http.pemkey_filepath: node.key
plugins.security.ssl.http.pemtrustedcas_filepath: ca.pem
plugins.security.allow_default_init_securityindex: true
plugins.security.authcz.admin_dn: ["CN=admin,O=temporal-siem"]
plugins.security.nodes_dn: ["CN=node,O=temporal-siem"]
plugins.security.restapi.roles_enabled: ["all_access"]
plugins.security.system_indices.enabled: true
EOF
  # The plugin's own default security configuration, with our one user instead of the demo users.
  mkdir -p "$conf/opensearch-security"
  cp "$home/plugins/opensearch-security/config/"*.yml "$conf/opensearch-security/"
  rm -f "$conf/opensearch-security/opensearch.yml.example"
  if [ ! -f "$dir/auth.env" ]; then
    printf 'OPENSEARCH_USERNAME=%s\nOPENSEARCH_PASSWORD=%s\n' "$user" "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" > "$dir/auth.env"
    chmod 644 "$dir/auth.env"   # a throwaway test password; the tests (another user) read it
  fi
  local hash
  hash=$("$JAVA" -cp "$home/plugins/opensearch-security/*:$home/lib/*" org.opensearch.security.tools.Hasher -p "$(password)" 2>/dev/null | tail -1)
  case "$hash" in \$2*) ;; *) say "could not hash the password with the security plugin's Hasher"; exit 1 ;; esac
  cat > "$conf/opensearch-security/internal_users.yml" <<EOF
_meta:
  type: "internalusers"
  config_version: 2
$user:
  hash: "$hash"
  reserved: true
  backend_roles: ["admin"]
  description: "temporal-siem test user (password generated at first start)"
EOF
}

up() {
  if running && healthy; then say "running ($url, pid $(cat "$pidfile"))"; return 0; fi
  if running; then
    for _ in $(seq 1 60); do healthy && { say "running ($url)"; return 0; }; sleep 1; done
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then say "port $HTTP_PORT is taken by another process"; exit 1; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required"; exit 1; }
  mkdir -p "$dir"
  install_home
  [ "$SECURITY" = 1 ] && make_tls
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  write_config
  [ -n "$run_user" ] && chown -R "$run_user" "$dir"
  chmod -R a+rX "$home"
  # The security plugin warns about a configuration others can read.
  chmod -R go-rwx "$dir/config"
  rm -f "$pidfile"
  cd "$dir"
  # What bin/opensearch (not on Maven Central) would run: the distribution's JVM options, trimmed.
  as_user env OPENSEARCH_TMPDIR="$dir/tmp" setsid "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC \
    -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30 -Xss1m \
    -Djava.io.tmpdir="$dir/tmp" -Dfile.encoding=UTF-8 -Djava.awt.headless=true -Djna.nosys=true \
    -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false -Dio.netty.noUnsafe=true \
    -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
    -Djava.security.manager=allow -Djava.locale.providers=SPI,COMPAT \
    -Dopensearch.path.home="$home" -Dopensearch.path.conf="$dir/config" \
    -Dopensearch.distribution.type=tar -Dopensearch.bundled_jdk=false \
    -cp "$home/lib/*" org.opensearch.bootstrap.OpenSearch -p "$pidfile" \
    < /dev/null > "$dir/server.out" 2> "$dir/server.err" 9>&- &
  echo $! > "$launcherpid"
  local deadline=$((SECONDS + START_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    if running && healthy; then say "up ($url, OpenSearch $OS_VERSION, security $([ "$SECURITY" = 1 ] && echo on || echo off))"; return 0; fi
    kill -0 "$(cat "$launcherpid")" 2>/dev/null || break
    sleep 1
  done
  say "did not become healthy"
  tail -n 40 "$dir/server.err" "$dir/server.out" "$dir/logs/"*.log >&2 2>/dev/null || true
  down >/dev/null 2>&1 || true
  exit 1
}

down() {
  for f in "$pidfile" "$launcherpid"; do
    if [ -f "$f" ]; then
      local pid; pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  say "down"
}

status() { if running && healthy; then say "running ($url)"; else say "stopped"; exit 1; fi; }

# Several test sessions may call `up` at once on a fresh machine: one at a time starts or stops.
locked() {
  mkdir -p "$base"
  exec 9>"$base/.lock-$instance"
  flock -w 900 9 || { say "could not take $base/.lock-$instance"; exit 1; }
  "$@"
}

case "$cmd" in
  up) locked up ;; down) locked down ;; status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
