#!/bin/sh
# Runs the pinned Deno (2.9.6). When it is missing it is installed from the npm registry into
# tools/deno/node_modules (npm ci against the committed lock file), so a machine with only
# Node.js/npm needs nothing else. README, .ci/run and the tasks all go through this script.
set -eu
root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
want="2.9.6"
deno="$root/tools/deno/node_modules/deno/deno"
if [ ! -x "$deno" ] || [ "$("$deno" --version 2>/dev/null | sed -n '1s/^deno \([^ ]*\).*/\1/p')" != "$want" ]; then
  echo "groom: installing deno $want from the npm registry" >&2
  (cd "$root/tools/deno" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
exec "$deno" "$@"
