#!/usr/bin/env bash
# Mirror benchmark (not a test): a 2 GB object through this edge (slices, bare workerd, disk store) and through nginx
# with its slice module, side by side in one run. The server under test on core 0 (taskset -c 0), the origin and the
# clients on core 1. For each of RUNS rounds, each server from an empty cache (fresh process, fresh store):
#   cold 1   one client GETs the whole object (the cache fills)      warm 1   the same again (from the cache)
#   cold 8   a fresh cache, 8 clients GET 8 parallel segments        warm 8   the same again
# and reports MB/s, origin bytes sent / object size (cold) and the edge's peak RSS (VmHWM of its workerd), medians.
# nginx: `slice 1m; proxy_cache_key $uri$slice_range; proxy_set_header Range $slice_range; proxy_cache_valid 200 206 1h;`
# plus proxy_cache_lock (concurrent misses of one slice wait for one fetch, as the edge does).
# Needs: nginx curl python3 (apt-get install nginx curl).
# Usage: scripts/bench/mirror.sh [runs, default 3]   env: SIZE (bytes, default 2000000000), SLICE_BYTES (edge, default
# the config default), THRESHOLD (edge slice_threshold_bytes), NGINX_SLICE (default 1m), ONLY=edge|nginx
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
SIZE=${SIZE:-2000000000}
NGINX_SLICE=${NGINX_SLICE:-1m}
NODE=$PWD/node_modules/.bin/node
export PATH=$PWD/node_modules/.bin:$PATH
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }
now() { date +%s.%N; }

P_ORIGIN=$(free_port)
taskset -c 1 "$NODE" scripts/bench/mirror-origin.ts --port "$P_ORIGIN" --size "$SIZE" > "$T/origin.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$P_ORIGIN/__sent"
sent() { curl -s "http://127.0.0.1:$P_ORIGIN/__sent" | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }

# --- the servers: started fresh for each measurement, each on core 0 ---------------------------------------------
EDGE_PID=""; SERVER_PIDS=()
start_edge() { # dir port
  {
    echo "[edge]"; echo 'name = "bench"'; echo "origin = \"http://127.0.0.1:$P_ORIGIN\""
    echo "store_max_bytes = 8000000000"; echo "access_log = false"
    [ -n "${SLICE_BYTES:-}" ] && echo "slice_bytes = $SLICE_BYTES"
    [ -n "${THRESHOLD:-}" ] && echo "slice_threshold_bytes = $THRESHOLD"
    true
  } > "$1/cdn.toml"
  taskset -c 0 "$NODE" scripts/edge.ts --config "$1/cdn.toml" --port "$2" --store "$1/store" > "$1/edge.log" 2>&1 & SERVER_PIDS+=($!)
  for _ in $(seq 1 300); do grep -qs "edge ready" "$1/edge.log" && break; sleep 0.1; done
  grep -q "edge ready" "$1/edge.log" || { cat "$1/edge.log"; exit 1; }
  EDGE_PID=$(sed -n 's/^workerd pids: \([0-9]*\).*/\1/p' "$1/edge.log")
}
start_nginx() { # dir port
  mkdir -p "$1/cache" "$1/tmp" "$1/logs"
  cat > "$1/nginx.conf" <<NGINX
worker_processes 1;
user $(id -un);
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fcgi;
  uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
  proxy_cache_path $1/cache levels=1:2 keys_zone=mirror:64m max_size=8g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 16; }
  server {
    listen 127.0.0.1:$2;
    location / {
      slice $NGINX_SLICE;
      proxy_cache mirror;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://origin;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
NGINX
  taskset -c 0 nginx -p "$1" -c "$1/nginx.conf" -e "$1/logs/error.log" & SERVER_PIDS+=($!)
  wait_http "http://127.0.0.1:$2/__sent" || { cat "$1/logs/error.log"; exit 1; }
}
stop_server() {
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVER_PIDS=(); sleep 0.5
}

# --- clients (core 1) ----------------------------------------------------------------------------------------------
one() { # url → MB/s
  taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.0f", $1/1e6}'
}
eight() { # url → MB/s of the 8 segments together
  local seg=$(( (SIZE + 7) / 8 )) t0 t1 pids=()
  t0=$(now)
  for i in 0 1 2 3 4 5 6 7; do
    local a=$((i * seg)) b=$(( (i + 1) * seg - 1 )); [ $b -ge $SIZE ] && b=$((SIZE - 1))
    taskset -c 1 curl -s -o /dev/null -r "$a-$b" "$1" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(now)
  awk -v s="$SIZE" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", s/1e6/(b-a)}'
}
ratio() { awk -v a="$1" -v b="$SIZE" 'BEGIN{printf "%.4f", a/b}'; }
rss() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

declare -A R
measure() { # server round
  local server=$1 round=$2 dir port path
  for mode in 1 8; do
    dir="$T/$server-$round-$mode"; mkdir -p "$dir"; port=$(free_port)
    path="/iso/$server-$round-$mode.iso"
    if [ "$server" = edge ]; then start_edge "$dir" "$port"; else start_nginx "$dir" "$port"; fi
    local url="http://127.0.0.1:$port$path" fn=one
    [ "$mode" = 8 ] && fn=eight
    R[$server,cold$mode,$round]=$($fn "$url")
    R[$server,origin$mode,$round]=$(ratio "$(sent "$path")")
    sleep 1
    R[$server,warm$mode,$round]=$($fn "$url")
    R[$server,warmorigin$mode,$round]=$(ratio "$(sent "$path")")
    [ "$server" = edge ] && R[$server,rss$mode,$round]=$(rss "$EDGE_PID")
    stop_server
    rm -rf "$dir"
    printf '%-6s round %d, %d client(s): cold %s MB/s (origin %sx), warm %s MB/s (origin total %sx)%s\n' "$server" "$round" "$mode" \
      "${R[$server,cold$mode,$round]}" "${R[$server,origin$mode,$round]}" "${R[$server,warm$mode,$round]}" "${R[$server,warmorigin$mode,$round]}" \
      "$([ "$server" = edge ] && echo ", peak RSS ${R[$server,rss$mode,$round]} MB")"
  done
}

SERVERS=(edge nginx)
[ -n "${ONLY:-}" ] && SERVERS=("$ONLY")
for round in $(seq 1 "$RUNS"); do
  # Alternate the order, so neither server always runs on a warmer page cache.
  if [ $((round % 2)) = 1 ]; then order=("${SERVERS[@]}"); else order=(); for ((i=${#SERVERS[@]}-1; i>=0; i--)); do order+=("${SERVERS[$i]}"); done; fi
  for s in "${order[@]}"; do measure "$s" "$round"; done
done

median() { # key prefix → median over rounds ("-" when not measured)
  local vals=() r
  for r in $(seq 1 "$RUNS"); do [ -n "${R[$1,$r]:-}" ] && vals+=("${R[$1,$r]}"); done
  [ ${#vals[@]} = 0 ] && { echo -; return; }
  printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
echo
echo "object $SIZE bytes; edge slice_bytes ${SLICE_BYTES:-default} threshold ${THRESHOLD:-default}; nginx slice $NGINX_SLICE; medians of $RUNS runs"
echo
echo "| | edge MB/s | nginx MB/s | edge / nginx | edge origin bytes / object | nginx origin bytes / object | edge peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
for mode in 1 8; do
  for phase in cold warm; do
    o=$([ $phase = cold ] && echo origin || echo warmorigin)
    e=$(median "edge,$phase$mode"); n=$(median "nginx,$phase$mode")
    oe=$(median "edge,$o$mode"); on=$(median "nginx,$o$mode"); rs=$(median "edge,rss$mode")
    label="$phase, 1 client"; [ "$mode" = 8 ] && label="$phase, 8 clients (parallel segments)"
    echo "| $label | $e | $n | $(awk -v a="$e" -v b="$n" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "-" }') | $oe | $on | $([ $phase = warm ] && echo "$rs" || echo "") |"
  done
done
echo
echo "(origin bytes on the warm rows: the total after the cold and the warm pass; peak RSS: the edge's workerd after both)"
