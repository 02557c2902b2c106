#!/usr/bin/env bash
# Starts/stops the real services the tests use. Filled in per service by scripts/services/*.sh.
set -euo pipefail
cmd=${1:-status}
here=$(cd "$(dirname "$0")" && pwd)
shopt -s nullglob
for svc in "$here"/services/*.sh; do
  bash "$svc" "$cmd"
done
