#!/usr/bin/env bash
# Serving throughput of several code trees in one sitting, alternated (a before/after check):
# `mldeck serve` from each tree on a copy of one project (gradient boosting on the 20k reference
# rows, built by the FIRST tree's code, so every later tree migrates it forward), driven by
# `wrk -t2 -c32 -d10s` with 1-row bodies from bench/serve.py's `request_bodies`.
#
#   bench/serve_ab.sh /path/to/before-tree /path/to/after-tree [rounds]
#
# A tree is a checkout (e.g. `git worktree add /tmp/before f42d565`). Needs wrk and curl.
set -u
PY=${PY:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
first=$1
trees=("$@")
rounds=3
if [[ ${#trees[@]} -gt 2 && ${trees[-1]} =~ ^[0-9]+$ ]]; then rounds=${trees[-1]}; unset 'trees[-1]'; fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
(cd "$first" && PYTHONPATH="$first" "$PY" -c "
import sys; sys.path.insert(0, 'bench'); import serve; from pathlib import Path
serve.build_project(Path('$W/proj'))
inv, infer, name = serve.request_bodies(Path('$W/proj'), 1)
Path('$W/inv.json').write_bytes(inv); Path('$W/infer.json').write_bytes(infer)
Path('$W/name').write_text(name)
")
NAME=$(cat "$W/name")
for f in inv infer; do
  printf 'wrk.method = "POST"\nlocal f = io.open("%s", "rb"); wrk.body = f:read("*all"); f:close()\nwrk.headers["Content-Type"] = "application/json"\n' "$W/$f.json" > "$W/$f.lua"
done
port=18900
for round in $(seq 1 "$rounds"); do
  for tree in "${trees[@]}"; do
    rm -rf "$W/p"; cp -r "$W/proj" "$W/p"
    port=$((port + 1))
    (cd "$W/p" && PYTHONPATH="$tree" exec "$PY" -m app serve --port $port > "$W/serve.log" 2>&1) &
    pid=$!
    for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/health/ready" && break; sleep 0.5; done
    inv=$(wrk -t2 -c32 -d10s -s "$W/inv.lua" "http://127.0.0.1:$port/invocations" | grep -E "Requests/sec|Non-2xx" | tr -s ' \n' ' ')
    inf=$(wrk -t2 -c32 -d10s -s "$W/infer.lua" "http://127.0.0.1:$port/v2/models/$NAME/infer" | grep -E "Requests/sec|Non-2xx" | tr -s ' \n' ' ')
    kill -INT $pid; wait $pid 2>/dev/null
    echo "round $round $(git -C "$tree" rev-parse --short HEAD 2>/dev/null || basename "$tree") load $(cut -d' ' -f1 /proc/loadavg): /invocations [$inv] infer [$inf]"
  done
done
