#!/usr/bin/env bash
# MISS benchmark (not a test): CPU per request of a MISS through the edge on bare workerd, one process, hot tier on
# (the default), against a forward-only worker and a MISS whose origin says `no-store` (the same path without the
# write). With OLD=<another checkout> it runs that checkout's edge beside this one, alternating old and new in each
# round (the order swapped every round), so a loaded machine shifts both alike. The server under test runs on core 0,
# wrk (-t1 -c32) and the origin on core 1. CPU per request = utime + stime of the workerd process(es) / requests.
# Every server first serves WARM seconds (default 10) of each kind and size unmeasured: a fresh workerd compiles and optimizes
# the edge's JavaScript during its first thousands of requests, and a first measured run would count that as the
# MISS's cost. STORE_ROOT=/dev/shm puts the stores on tmpfs (no file system inode allocation in the figure).
# Usage: [OLD=/path/to/old/checkout] [SIZES="1024 102400"] [WARM=10] scripts/bench/miss.sh [seconds per run, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${2:-3}
SIZES=${SIZES:-1024 102400}
. scripts/bench/common.sh
[ -n "${STORE_ROOT:-}" ] && trap 'cleanup; rm -rf "$STORE_ROOT"/store-*-$$' EXIT
P_ORIGIN=$(free_port); P_FWD=$(free_port); P_NEW=$(free_port); P_OLD=$(free_port)

cat > "$T/origin.mjs" <<'JS'
import http from "node:http";
const chunk = Buffer.alloc(1 << 20, 120);
http.createServer((req, res) => {
  const m = /^\/(miss|nostore)\/(\d+)/.exec(req.url);
  if (!m) { res.writeHead(404).end(); return; }
  const size = Number(m[2]);
  res.writeHead(200, { "content-length": size, "cache-control": m[1] === "miss" ? "max-age=3600" : "no-store", "content-type": "application/octet-stream" });
  let sent = 0;
  const go = () => { while (sent < size) { const n = Math.min(chunk.length, size - sent); sent += n; if (!res.write(chunk.subarray(0, n))) return res.once("drain", go); } res.end(); };
  go();
}).listen(Number(process.argv[2]), "127.0.0.1");
JS
taskset -c 1 "$NODE" "$T/origin.mjs" "$P_ORIGIN" & PIDS+=($!)
wait_http "http://127.0.0.1:$P_ORIGIN/miss/1"

cat > "$T/fwd.js" <<JS
export default { fetch(req) { const u = new URL(req.url); return fetch("http://127.0.0.1:$P_ORIGIN" + u.pathname + u.search); } };
JS
serve_worker fwd "$P_FWD" net
wait_http "http://127.0.0.1:$P_FWD/miss/1"

edge() { # dir port label
  cat > "$T/cdn-$3.toml" <<TOML
[edge]
name = "bench"
origin = "http://127.0.0.1:$P_ORIGIN"
max_object_bytes = 2000000000
store_max_bytes = 8000000000
access_log = false
TOML
  (cd "$1" && exec taskset -c 0 "$NODE" scripts/edge.ts --config "$T/cdn-$3.toml" --port "$2" --store "${STORE_ROOT:-$T}/store-$3-$$") > "$T/edge-$3.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 300); do grep -qs "edge ready" "$T/edge-$3.log" && break; sleep 0.1; done
  grep -q "edge ready" "$T/edge-$3.log" || { cat "$T/edge-$3.log"; exit 1; }
}
edge "$PWD" "$P_NEW" new
NEW_PID=$(sed -n 's/^workerd pids: //p' "$T/edge-new.log")
if [ -n "${OLD:-}" ]; then edge "$OLD" "$P_OLD" old; OLD_PID=$(sed -n 's/^workerd pids: //p' "$T/edge-old.log"); fi
FWD_PID=$(pgrep -f "serve fwd.capnp")

cat > "$T/miss.lua" <<'LUA'
local n = 0
local size, kind = os.getenv("SIZE"), os.getenv("KIND")
request = function() n = n + 1; return wrk.format("GET", "/" .. kind .. "/" .. size .. "/" .. n .. "-" .. math.random(1, 1e9)) end
LUA
cpu_of() { local t=0 v; for p in $1; do v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done; echo "$t"; }
run() { # label port kind size pids
  local c0 c1 out reqs us
  c0=$(cpu_of "$5")
  out=$(SIZE=$4 KIND=$3 taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -s "$T/miss.lua" "http://127.0.0.1:$2/")
  c1=$(cpu_of "$5")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  us=$(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN{printf "%.0f", c / t * 1e6 / n}')
  bad=$(awk '/Non-2xx/ {print $5} /Socket errors/ {print "socket:" $0}' <<<"$out" | tr '\n' ' ')
  printf '%-28s %6s B  %8s req/s  %6s µs CPU/req  (load %s)%s\n' "$1" "$4" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$us" "$(cut -d' ' -f1 /proc/loadavg)" "${bad:+  not 2xx: $bad}"
}
for pp in "$P_FWD:$FWD_PID" "$P_NEW:$NEW_PID" ${OLD:+"$P_OLD:$OLD_PID"}; do
  for size in $SIZES; do
    for kind in miss nostore; do
      [ "$pp" = "$P_FWD:$FWD_PID" ] && [ "$kind" = nostore ] && continue
      SIZE=$size KIND=$kind taskset -c 1 wrk -t1 -c32 -d"${WARM:-10}s" -s "$T/miss.lua" "http://127.0.0.1:${pp%%:*}/" > /dev/null
    done
  done
done
for round in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    run "forward-only" "$P_FWD" miss "$size" "$FWD_PID"
    order="new"; [ -n "${OLD:-}" ] && { [ $((round % 2)) = 1 ] && order="old new" || order="new old"; }
    for which in $order; do
      port=$P_NEW; pid=$NEW_PID; [ "$which" = old ] && port=$P_OLD && pid=$OLD_PID
      run "$which edge MISS" "$port" miss "$size" "$pid"
      run "$which edge MISS no-store" "$port" nostore "$size" "$pid"
    done
  done
done
