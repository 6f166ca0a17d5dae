#!/usr/bin/env bash
# Edge functions benchmark (not a test). The edge box (bare workerd, its function processes) on the server core
# (taskset -c 0), the load (wrk -t1 -c32) and the origin on the other (-c 1). 1 KB objects, rows:
#   HIT, no function          Host plain.bench: the edge alone
#   HIT, pass-through fn      Host pass.bench: a function that only does `return fetch(request)` (edge → function
#                             process → back into the edge's cache → answer through the function)
#   function answering itself Host self.bench: a function that returns a constant 1 KB Response (edge → function)
#   const worker              a bare workerd worker returning the same constant (the floor for anything on workerd)
# CPU µs per request: the server processes' CPU time (edge workerd + function workerds) over the requests made;
# the pass-through's cost is its row minus "HIT, no function" (goal: ≤ 30 µs). Needs: wrk curl python3.
# Usage: scripts/bench/functions.sh [seconds per run, default 8]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
. scripts/bench/common.sh
P_ORIGIN=$(free_port); P_EDGE=$(free_port); P_CONST=$(free_port)

cat > "$T/origin.mjs" <<'JS'
import http from "node:http";
const body = Buffer.alloc(1024, 120);
http.createServer((req, res) => res.writeHead(200, { "content-length": body.length, "cache-control": "max-age=3600", "content-type": "application/octet-stream" }).end(body))
  .listen(Number(process.argv[2]), "127.0.0.1");
JS
taskset -c 1 "$NODE" "$T/origin.mjs" "$P_ORIGIN" & PIDS+=($!)
wait_http "http://127.0.0.1:$P_ORIGIN/x"

cat > "$T/const.js" <<'JS'
const k1 = new Uint8Array(1024).fill(120);
export default { fetch() { return new Response(k1, { headers: { "content-type": "application/octet-stream" } }); } };
JS
cp "$T/const.js" "$T/self.js"
echo 'export default { fetch(request) { return fetch(request); } };' > "$T/pass.js"
serve_worker const "$P_CONST"
wait_http "http://127.0.0.1:$P_CONST/"

cat > "$T/cdn.toml" <<TOML
[edge]
name = "bench"
origin = "http://127.0.0.1:$P_ORIGIN"
access_log = false
[[functions]]
id = "pass"
hosts = ["pass.bench"]
module = "pass.js"
[[functions]]
id = "self"
hosts = ["self.bench"]
module = "self.js"
TOML
taskset -c 0 "$NODE" scripts/edge.ts --config "$T/cdn.toml" --port "$P_EDGE" --store "$T/store" > "$T/edge.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 600); do grep -q "edge ready" "$T/edge.log" && break; sleep 0.1; done
grep -q "edge ready" "$T/edge.log" || { cat "$T/edge.log"; exit 1; }
EDGE_PIDS=$(sed -n 's/^workerd pids: \([0-9 ]*\).*/\1/p' "$T/edge.log")
PASS_PID=$(sed -n 's/^function pass: workerd pid \([0-9]*\)/\1/p' "$T/edge.log")
SELF_PID=$(sed -n 's/^function self: workerd pid \([0-9]*\)/\1/p' "$T/edge.log")
CONST_PID=$(pgrep -f "serve const.capnp" | head -1)
E="http://127.0.0.1:$P_EDGE"
for h in plain.bench pass.bench; do curl -s -o /dev/null -H "Host: $h" "$E/obj"; done # stored: HITs below
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: self.bench' "$E/obj")" = 200 ] || { echo "self.bench not answering" >&2; exit 1; }

cpu_of() { local t=0 v; for p in $1; do v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done; echo "$t"; }
run() { # label url host server-pids
  local c0; c0=$(cpu_of "$4")
  local out; out=$(taskset -c 1 wrk -t1 -c32 -d"${SECS}s" --latency -H "Host: $3" "$2")
  local c1; c1=$(cpu_of "$4")
  local rps reqs p50 p99 us
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  us=$(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN{printf "%.0f", c / t * 1e6 / n}')
  printf '%-28s %10s req/s  p50 %-9s p99 %-9s %s µs CPU/req\n' "$1" "$rps" "$p50" "$p99" "$us"
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run "HIT, no function" "$E/obj" plain.bench "$EDGE_PIDS"
run "HIT, pass-through fn" "$E/obj" pass.bench "$EDGE_PIDS $PASS_PID"
run "function answering itself" "$E/obj" self.bench "$EDGE_PIDS $SELF_PID"
run "const worker" "http://127.0.0.1:$P_CONST/obj" localhost "$CONST_PID"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -i "error\|exited" "$T/edge.log" | head -5 || true
