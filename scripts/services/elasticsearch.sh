#!/usr/bin/env bash
# A real single-node Elasticsearch 8.19 for the sink tests, assembled from Maven Central jars (server +
# transport-netty4 module; security off, so no x-pack), on 127.0.0.1:9200, data under .services/elasticsearch.
# Idempotent; jars cached in ~/.m2; waits until the cluster is green/yellow.
#   scripts/services/elasticsearch.sh up|down|status
# A second, independent node (the outage test stops and starts its own): TSIEM_ES_INSTANCE=name and
# TSIEM_ES_HTTP_PORT / TSIEM_ES_TRANSPORT_PORT; the installed jars are shared, data and logs are not.
set -euo pipefail
cmd=${1:-status}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/scripts/services/elasticsearch"
base="$root/.services/elasticsearch"
home="$base/home"
dir="$base/${TSIEM_ES_INSTANCE:-default}"
HTTP_PORT=${TSIEM_ES_HTTP_PORT:-9200}
TRANSPORT_PORT=${TSIEM_ES_TRANSPORT_PORT:-9300}
HEAP=${TSIEM_ES_HEAP:-512m}
ES_VERSION=$(sed -n 's:.*<es.version>\(.*\)</es.version>.*:\1:p' "$src/pom.xml")
JAVA_HOME_ES=${TSIEM_ES_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
JAVA="$JAVA_HOME_ES/bin/java"
pidfile="$dir/es.pid"      # written by the server itself (it may run under runuser)
launcherpid="$dir/launcher.pid"
writerpid="$dir/writer.pid"
url="http://127.0.0.1:$HTTP_PORT"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
healthy() { curl -fsS -m 5 "$url/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null | grep -q '"status":"\(green\|yellow\)"'; }

# Elasticsearch refuses to run as root: as root, run it as a dedicated system user.
run_user=""
if [ "$(id -u)" -eq 0 ]; then
  run_user=tsiem-es
  id "$run_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$run_user"
fi
as_user() { if [ -n "$run_user" ]; then runuser -u "$run_user" -- "$@"; else "$@"; fi; }
# That user may not be able to reach a checkout under a private home (/root is 0700): then the node lives
# in /var/tmp instead, and .services/elasticsearch points there.
if [ -n "$run_user" ] && ! runuser -u "$run_user" -- test -x "$root"; then
  real="/var/tmp/tsiem-services-$(printf %s "$root" | md5sum | cut -c1-10)/elasticsearch"
  mkdir -p "$real" "$root/.services"
  chmod 755 "$(dirname "$real")" "$real"
  if [ ! -L "$base" ]; then rm -rf "$base"; ln -s "$real" "$base"; fi
  base="$real"; home="$base/home"; dir="$base/${TSIEM_ES_INSTANCE:-default}"
  pidfile="$dir/es.pid"; launcherpid="$dir/launcher.pid"; writerpid="$dir/writer.pid"
fi

install_home() {
  [ -f "$home/.installed-$ES_VERSION" ] && [ "$home/.installed-$ES_VERSION" -nt "$src/ServerArgsWriter.java" ] && return 0
  rm -rf "$home"; mkdir -p "$home/lib/entitlement-bridge" "$home/lib/entitlement-agent" "$home/lib/tools/ansi-console" "$home/modules/transport-netty4" "$home/plugins" "$home/config"
  local jars="$base/jars"; rm -rf "$jars"
  mvn -q -B -f "$src/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" -DincludeScope=runtime
  for jar in "$jars"/*.jar; do
    case "$(basename "$jar")" in
      transport-netty4-*|netty-*) cp "$jar" "$home/modules/transport-netty4/" ;;
      elasticsearch-entitlement-bridge-*) cp "$jar" "$home/lib/entitlement-bridge/" ;;
      *) cp "$jar" "$home/lib/" ;;
    esac
  done
  unzip -p "$home/modules/transport-netty4/transport-netty4-$ES_VERSION.jar" \
    META-INF/es-plugins/transport-netty4/plugin-descriptor.properties > "$home/modules/transport-netty4/plugin-descriptor.properties"
  unzip -p "$home/modules/transport-netty4/transport-netty4-$ES_VERSION.jar" \
    META-INF/es-plugins/transport-netty4/entitlement-policy.yaml > "$home/modules/transport-netty4/entitlement-policy.yaml" || true
  local build="$base/agent-build"; rm -rf "$build"; mkdir -p "$build"
  "$JAVA_HOME_ES/bin/javac" -d "$build" "$src/agent/EntitlementAgent.java"
  "$JAVA_HOME_ES/bin/jar" --create --file "$home/lib/entitlement-agent/entitlement-agent.jar" \
    --manifest "$src/agent/META-INF/MANIFEST.MF" -C "$build" .
  "$JAVA_HOME_ES/bin/javac" -d "$build" "$src/ansi-console/AnsiConsoleLoader.java"
  "$JAVA_HOME_ES/bin/jar" --create --file "$home/lib/tools/ansi-console/ansi-console.jar" -C "$build" org
  mkdir -p "$home/tools"
  "$JAVA_HOME_ES/bin/javac" -cp "$home/lib/*" -d "$home/tools" "$src/ServerArgsWriter.java"
  touch "$home/.installed-$ES_VERSION"
}

up() {
  if running && healthy; then echo "elasticsearch: running ($url, pid $(cat "$pidfile"))"; return 0; fi
  if running; then
    for _ in $(seq 1 60); do healthy && { echo "elasticsearch: running ($url)"; return 0; }; sleep 1; done
  fi
  if curl -sS -m 2 "$url/_cluster/health" >/dev/null 2>&1; then echo "elasticsearch: port $HTTP_PORT is taken by another process" >&2; exit 1; fi
  command -v mvn >/dev/null || { echo "elasticsearch: Maven (mvn) is required" >&2; exit 1; }
  mkdir -p "$dir"
  install_home
  mkdir -p "$dir/config" "$dir/data" "$dir/logs" "$dir/tmp"
  cp "$src/log4j2.properties" "$dir/config/log4j2.properties"
  : > "$dir/config/elasticsearch.yml"
  [ -n "$run_user" ] && chown -R "$run_user" "$dir"
  chmod -R a+rX "$home" "$dir/config"
  local bridge; bridge=$(ls "$home"/lib/entitlement-bridge/*.jar)
  local fifo="$dir/stdin.fifo"; rm -f "$fifo" "$pidfile"; mkfifo "$fifo"; chmod 666 "$fifo"
  # The server reads its arguments from stdin and stops when stdin closes: a writer process holds the pipe.
  setsid "$JAVA_HOME_ES/bin/java" -cp "$home/tools:$home/lib/*" ServerArgsWriter "$dir/config" "$dir/logs" "$pidfile" \
    "path.home=$home" "cluster.name=temporal-siem-test-${TSIEM_ES_INSTANCE:-default}" "node.name=tsiem-node" "path.data=$dir/data" "path.logs=$dir/logs" \
    "network.host=127.0.0.1" "http.port=$HTTP_PORT" "transport.port=$TRANSPORT_PORT" "discovery.type=single-node" \
    "cluster.routing.allocation.disk.threshold_enabled=false" "action.auto_create_index=true" \
    > "$fifo" 2> "$dir/writer.err" < /dev/null &
  echo $! > "$writerpid"
  cd "$dir"
  as_user env ES_TMPDIR="$dir/tmp" LIBFFI_TMPDIR="$dir/tmp" setsid "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Xss1m \
    -Djava.io.tmpdir="$dir/tmp" -Dfile.encoding=UTF-8 -Djava.awt.headless=true -Djna.nosys=true \
    -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false -Dio.netty.noUnsafe=true -Dio.netty.recycler.maxCapacityPerThread=0 \
    -Des.path.home="$home" -Des.path.conf="$dir/config" -Des.distribution.type=tar \
    -Djdk.attach.allowAttachSelf=true -XX:+IgnoreUnrecognizedVMOptions -XX:+EnableDynamicAgentLoading \
    --patch-module=java.base="$bridge" \
    --add-exports=java.base/org.elasticsearch.entitlement.bridge=org.elasticsearch.entitlement,java.logging,java.net.http,java.naming,jdk.net \
    --module-path "$home/lib" --add-modules=jdk.net --add-modules=jdk.management.agent --add-modules=ALL-MODULE-PATH \
    -m org.elasticsearch.server/org.elasticsearch.bootstrap.Elasticsearch \
    < "$fifo" > "$dir/server.out" 2> "$dir/server.err" &
  echo $! > "$launcherpid"
  for _ in $(seq 1 180); do
    if running && healthy; then echo "elasticsearch: up ($url, Elasticsearch $ES_VERSION)"; return 0; fi
    kill -0 "$(cat "$launcherpid")" 2>/dev/null || break
    sleep 1
  done
  echo "elasticsearch: did not become healthy" >&2
  tail -n 40 "$dir/server.err" "$dir/server.out" "$dir/logs/"*.log >&2 2>/dev/null || true
  down >/dev/null 2>&1 || true
  exit 1
}

down() {
  for f in "$pidfile" "$launcherpid" "$writerpid"; do
    if [ -f "$f" ]; then
      local pid; pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  echo "elasticsearch: down"
}

status() { if running && healthy; then echo "elasticsearch: running ($url)"; else echo "elasticsearch: stopped"; exit 1; fi; }

case "$cmd" in
  up) up ;; down) down ;; status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
