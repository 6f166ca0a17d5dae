#!/usr/bin/env bash
# Edge benchmark (not a test). One server core (taskset -c 0) for the server under test, the load (wrk) and the
# origin on the other (-c 1). Side by side, 1 KB and 100 KB objects, wrk -t1 -c32:
#   const    a bare workerd worker answering a constant response of that size (the ceiling for anything on workerd)
#   forward  a bare workerd worker that only forwards to the origin (the ceiling for a MISS)
#   edge     this edge on bare workerd: HIT with the default config (`npm run edge --origin`: access log on), HIT
#            (hot tier, log off), HIT from the disk store (hot tier off), MISS (unique URLs), HIT with --processes 2
#            (two edge processes + the store process, all on the same server core: the cost of the split, not the
#            gain of a second core, which this 2-core machine cannot show with wrk on the other)
#   nginx    proxy_cache HIT
# then a 1 GB object through a cold and a warm cache (edge vs nginx, MB/s) and the edge's peak RSS against its
# memory tier's bound. Every row also gives the server's CPU µs per request (steadier than req/s on a busy machine).
# Needs: wrk nginx curl python3 (apt-get install wrk nginx). Usage: scripts/bench/edge.sh [seconds per run, default 8]
# ONLY=<regex> runs only the rows whose label matches (e.g. ONLY='const|forward|MISS|hot tier') and skips the 1 GB part.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
. scripts/bench/common.sh
P_ORIGIN=$(free_port); P_CONST=$(free_port); P_EDGE=$(free_port); P_DISK=$(free_port); P_NGINX=$(free_port); P_MULTI=$(free_port); P_BIG=$(free_port)
P_FWD=$(free_port); P_DEF=$(free_port)
BIG=$((1000 * 1000 * 1000))

# --- origin (load core): /obj/<size>/<anything> → <size> bytes, cacheable for an hour ------------------------------
cat > "$T/origin.mjs" <<'JS'
import http from "node:http";
const chunk = Buffer.alloc(1 << 20, 120);
http.createServer((req, res) => {
  const m = /^\/(?:obj|miss)\/(\d+)/.exec(req.url);
  if (!m) { res.writeHead(404).end(); return; }
  const size = Number(m[1]);
  res.writeHead(200, { "content-length": size, "cache-control": "max-age=3600", "content-type": "application/octet-stream" });
  let sent = 0;
  const go = () => { while (sent < size) { const n = Math.min(chunk.length, size - sent); sent += n; if (!res.write(chunk.subarray(0, n))) return res.once("drain", go); } res.end(); };
  go();
}).listen(Number(process.argv[2]), "127.0.0.1");
JS
taskset -c 1 "$NODE" "$T/origin.mjs" "$P_ORIGIN" & PIDS+=($!)
wait_http "http://127.0.0.1:$P_ORIGIN/obj/1"

# --- constant workerd worker (server core) -------------------------------------------------------------------------
cat > "$T/const.js" <<'JS'
const k1 = new Uint8Array(1024).fill(120), k100 = new Uint8Array(102400).fill(120);
export default { fetch(req) { const b = new URL(req.url).pathname.includes("102400") ? k100 : k1; return new Response(b, { headers: { "content-type": "application/octet-stream", "cache-control": "max-age=3600" } }); } };
JS
serve_worker const "$P_CONST"
wait_http "http://127.0.0.1:$P_CONST/"

# --- a workerd worker that only forwards to the origin (server core): the MISS ceiling ------------------------------
cat > "$T/fwd.js" <<JS
export default { fetch(req) { const u = new URL(req.url); return fetch("http://127.0.0.1:$P_ORIGIN" + u.pathname + u.search); } };
JS
serve_worker fwd "$P_FWD" net
wait_http "http://127.0.0.1:$P_FWD/obj/1"

# --- the edge, twice: hot tier on (default) and off (every HIT read from the disk store) ---------------------------
edge() { # port store hot_max_bytes [more edge.ts args]
  cat > "$T/cdn-$1.toml" <<TOML
[edge]
name = "bench"
origin = "http://127.0.0.1:$P_ORIGIN"
max_object_bytes = 2000000000
store_max_bytes = 8000000000
hot_max_bytes = $3
access_log = false
TOML
  taskset -c 0 "$NODE" scripts/edge.ts --config "$T/cdn-$1.toml" --port "$1" --store "$2" "${@:4}" > "$T/edge-$1.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 300); do grep -qs "edge ready" "$T/edge-$1.log" && break; sleep 0.1; done
  grep -q "edge ready" "$T/edge-$1.log" || { cat "$T/edge-$1.log"; exit 1; }
}
# The default config: `npm run edge -- --origin URL` (no rules, access log on, the 64 MB memory tier).
taskset -c 0 "$NODE" scripts/edge.ts --origin "http://127.0.0.1:$P_ORIGIN" --port "$P_DEF" --store "$T/store-def" > "$T/edge-def.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 300); do grep -qs "edge ready" "$T/edge-def.log" && break; sleep 0.1; done
DEF_PID=$(sed -n 's/^workerd pids: //p' "$T/edge-def.log")
edge "$P_EDGE" "$T/store-hot" 67108864
edge "$P_DISK" "$T/store-disk" 0
edge "$P_MULTI" "$T/store-multi" 67108864 --processes 2
edge "$P_BIG" "$T/store-big" 67108864 # a fresh edge for the 1 GB object, so its peak RSS is that object's alone
BIG_PID=$(sed -n 's/^workerd pids: //p' "$T/edge-$P_BIG.log")
EDGE_PID=$(sed -n 's/^workerd pids: //p' "$T/edge-$P_EDGE.log")
DISK_PID=$(sed -n 's/^workerd pids: //p' "$T/edge-$P_DISK.log")
MULTI_PIDS=$(sed -n 's/^workerd pids: \([0-9 ]*\).*/\1/p' "$T/edge-$P_MULTI.log")

# --- nginx proxy_cache (server core) -------------------------------------------------------------------------------
mkdir -p "$T/nginx/cache" "$T/nginx/tmp" "$T/nginx/logs"
cat > "$T/nginx/nginx.conf" <<NGINX
worker_processes 1;
user $(id -un);
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/nginx/tmp/body; proxy_temp_path $T/nginx/tmp/proxy; fastcgi_temp_path $T/nginx/tmp/fcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi; scgi_temp_path $T/nginx/tmp/scgi;
  proxy_cache_path $T/nginx/cache levels=1:2 keys_zone=edge:64m max_size=8g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 32; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache edge; proxy_cache_lock on; proxy_max_temp_file_size 0;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
NGINX
taskset -c 0 nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" & PIDS+=($!)
wait_http "http://127.0.0.1:$P_NGINX/obj/1" || { cat "$T/nginx/logs/error.log"; exit 1; }

# --- wrk runs (load core) ------------------------------------------------------------------------------------------
cat > "$T/miss.lua" <<'LUA'
local n = 0
local size = os.getenv("SIZE")
request = function() n = n + 1; return wrk.format("GET", "/miss/" .. size .. "/" .. n .. "-" .. math.random(1, 1e9)) end
LUA
ROWS=()
cpu_of() { local t=0 v; for p in $1; do v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done; echo "$t"; }
run() { # label url [lua] [size] [server pids]
  [[ -z "${ONLY:-}" || "$1" =~ $ONLY ]] || return 0
  local c0; c0=$(cpu_of "${5:-}")
  local out; out=$(SIZE=${4:-0} taskset -c 1 wrk -t1 -c32 -d"${SECS}s" --latency ${3:+-s "$3"} "$2")
  local c1; c1=$(cpu_of "${5:-}")
  local rps p50 p99 reqs us
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  us=$([ -n "${5:-}" ] && awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN{printf "%.0f", c / t * 1e6 / n}' || echo "-")
  ROWS+=("$1|$rps|$p50|$p99|$us")
  printf '%-38s %10s req/s  p50 %-9s p99 %-9s %s µs CPU/req\n' "$1" "$rps" "$p50" "$p99" "$us"
}
for size in 1024 102400; do
  label=$([ "$size" = 1024 ] && echo "1 KB" || echo "100 KB")
  for url in "http://127.0.0.1:$P_EDGE/obj/$size/x" "http://127.0.0.1:$P_DISK/obj/$size/x" "http://127.0.0.1:$P_NGINX/obj/$size/x"; do
    curl -s -o /dev/null "$url"; curl -s -o /dev/null "$url" # stored, then warm
  done
  # Each process has its own hot tier: enough requests on fresh connections to warm both.
  for _ in $(seq 1 8); do curl -s -o /dev/null "http://127.0.0.1:$P_MULTI/obj/$size/x"; done
  curl -s -o /dev/null "http://127.0.0.1:$P_DEF/obj/$size/x"; curl -s -o /dev/null "http://127.0.0.1:$P_DEF/obj/$size/x"
  CONST=$(pgrep -f "serve const.capnp"); FWD=$(pgrep -f "serve fwd.capnp"); NGX=$(pgrep -P "$(cat "$T/nginx/nginx.pid")" | tr '\n' ' ')
  run "const workerd $label" "http://127.0.0.1:$P_CONST/obj/$size" "" 0 "$CONST"
  run "edge HIT (default config, log on) $label" "http://127.0.0.1:$P_DEF/obj/$size/x" "" 0 "$DEF_PID"
  run "edge HIT (hot tier) $label" "http://127.0.0.1:$P_EDGE/obj/$size/x" "" 0 "$EDGE_PID"
  run "edge HIT (disk store) $label" "http://127.0.0.1:$P_DISK/obj/$size/x" "" 0 "$DISK_PID"
  run "edge HIT (hot, --processes 2) $label" "http://127.0.0.1:$P_MULTI/obj/$size/x" "" 0 "$MULTI_PIDS"
  run "forward-only workerd $label" "http://127.0.0.1:$P_FWD/" "$T/miss.lua" "$size" "$FWD"
  # Unmeasured first: the edge served only HITs so far, and a MISS's code compiled and optimized during the
  # measured run counted as its cost (about 2x the warm figure in scripts/bench/miss.sh).
  [[ -z "${ONLY:-}" || "edge MISS $label" =~ $ONLY ]] && SIZE=$size taskset -c 1 wrk -t1 -c32 -d3s -s "$T/miss.lua" "http://127.0.0.1:$P_EDGE/" > /dev/null
  run "edge MISS $label" "http://127.0.0.1:$P_EDGE/" "$T/miss.lua" "$size" "$EDGE_PID"
  run "nginx proxy_cache HIT $label" "http://127.0.0.1:$P_NGINX/obj/$size/x" "" 0 "$NGX"
done
curl -s -D - -o /dev/null "http://127.0.0.1:$P_EDGE/obj/1024/x" | grep -i x-cache-status
curl -s -D - -o /dev/null "http://127.0.0.1:$P_NGINX/obj/1024/x" | grep -i x-cache-status

# --- 1 GB object: cold (origin → cache → client) and warm (cache → client) ----------------------------------------
if [ -z "${ONLY:-}" ]; then
speed() { taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.0f", $1/1e6}'; }
E_COLD=$(speed "http://127.0.0.1:$P_BIG/obj/$BIG/big"); sleep 2
E_WARM=$(speed "http://127.0.0.1:$P_BIG/obj/$BIG/big")
N_COLD=$(speed "http://127.0.0.1:$P_NGINX/obj/$BIG/big"); sleep 2
N_WARM=$(speed "http://127.0.0.1:$P_NGINX/obj/$BIG/big")
RSS=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$EDGE_PID/status")
DEF_RSS=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$DEF_PID/status")
BIG_RSS=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$BIG_PID/status")
fi

# --- table ---------------------------------------------------------------------------------------------------------
echo
echo "| setup | req/s | p50 | p99 | CPU µs/req | vs const workerd (req/s) | vs const (CPU) | vs nginx HIT |"
echo "|---|---|---|---|---|---|---|---|"
for size in "1 KB" "100 KB"; do
  c=""; n=""; cu=""; f=""; fu=""
  for r in "${ROWS[@]}"; do
    IFS='|' read -r l v _ _ u <<<"$r"
    [[ "$l" == "const workerd $size" ]] && c=$v && cu=$u
    [[ "$l" == "nginx proxy_cache HIT $size" ]] && n=$v
    [[ "$l" == "forward-only workerd $size" ]] && f=$v && fu=$u
  done
  for r in "${ROWS[@]}"; do
    IFS='|' read -r l v p50 p99 u <<<"$r"
    [[ "$l" == *" $size" ]] || continue
    base=$c; baseu=$cu; [[ "$l" == "edge MISS $size" ]] && base=$f && baseu=$fu
    echo "| $l | $v | $p50 | $p99 | $u | $(awk -v a="$v" -v b="$base" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="$u" -v b="$baseu" 'BEGIN{if (a+0 > 0) printf "%.2f", b/a; else print "-"}') | $(awk -v a="$v" -v b="$n" 'BEGIN{printf "%.2f", a/b}') |"
  done
done
echo "(edge MISS rows compare with the forward-only worker, the others with the constant worker)"
[ -z "${ONLY:-}" ] || exit 0
echo
echo "| 1 GB object | edge MB/s | nginx MB/s | edge / nginx |"
echo "|---|---|---|---|"
echo "| cold (MISS, stored) | $E_COLD | $N_COLD | $(awk -v a="$E_COLD" -v b="$N_COLD" 'BEGIN{printf "%.2f", a/b}') |"
echo "| warm (HIT) | $E_WARM | $N_WARM | $(awk -v a="$E_WARM" -v b="$N_WARM" 'BEGIN{printf "%.2f", a/b}') |"
echo
echo "edge workerd peak RSS (VmHWM): 1 GB object cold + warm through a fresh edge $BIG_RSS MB; the edge of the wrk runs (hot tier, 1 KB/100 KB HIT and MISS phases) $RSS MB; the default-config edge $DEF_RSS MB (memory tier bound: 64 MB)"
