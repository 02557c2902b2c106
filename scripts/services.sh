#!/usr/bin/env bash
# Starts, stops and checks the real services the tests use: Kafka (KRaft, from Maven Central jars),
# Elasticsearch/OpenSearch (from Maven Central), rsyslog (Debian). Idempotent: `up` on a running
# service only checks its health. Downloads are cached (~/.m2). One file per service in services/.
#   scripts/services.sh up|down|status [NAME...]     (default: every service)
set -euo pipefail
cmd=${1:-status}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  shopt -s nullglob
  for f in "$here"/services/*.sh; do
    base=$(basename "$f" .sh)
    case "$base" in _*) continue ;; esac
    names+=("$base")
  done
fi
rc=0
for name in "${names[@]}"; do
  script="$here/services/$name.sh"
  if [ ! -f "$script" ]; then
    echo "services: unknown service '$name'" >&2
    exit 2
  fi
  bash "$script" "$cmd" || { echo "services: $name $cmd FAILED" >&2; rc=1; }
done
exit $rc
