#!/usr/bin/env bash
# Mirror benchmark (not a test): a 2 GB object through this edge (slices, bare workerd, disk store) and through nginx
# with its slice module, side by side in one run. The server under test on core 0 (taskset -c 0), the origin and the
# clients on core 1. For each of RUNS rounds, both servers from an empty cache (fresh processes, fresh stores), each
# phase measured on both back to back:
#   cold 1   one client GETs the whole object (the cache fills)      warm 1   the same again (from the cache)
#   cold 8   a fresh cache, 8 clients GET 8 parallel segments        warm 8   the same again
# and reports MB/s, origin bytes sent / object size (cold) and the edge's peak RSS (VmHWM of its workerd) in each pass,
# medians. The peak is reset between the passes (/proc/PID/clear_refs), so the warm pass's figure is its own; it
# starts from what the cold pass left resident.
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
. scripts/bench/common.sh
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
reset_peak() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }

declare -A R
# One round: for each client count, both servers started fresh side by side (each with an empty cache), then each
# phase measured on both back to back (the order alternating by round), so a busy moment of the machine hits both.
round() { # round
  local r=$1 mode dir_e dir_n port_e port_n
  for mode in 1 8; do
    dir_e="$T/edge-$r-$mode"; dir_n="$T/nginx-$r-$mode"; mkdir -p "$dir_e" "$dir_n"
    port_e=$(free_port); port_n=$(free_port)
    local fn=one; [ "$mode" = 8 ] && fn=eight
    local servers=(edge nginx); [ $((r % 2)) = 0 ] && servers=(nginx edge)
    [ -n "${ONLY:-}" ] && servers=("$ONLY")
    EDGE_PID=""
    for s in "${servers[@]}"; do
      if [ "$s" = edge ]; then start_edge "$dir_e" "$port_e"; else start_nginx "$dir_n" "$port_n"; fi
    done
    for phase in cold warm; do
      for s in "${servers[@]}"; do
        local port=$port_n; [ "$s" = edge ] && port=$port_e
        local path="/iso/$s-$r-$mode.iso" o=origin; [ "$phase" = warm ] && o=warmorigin
        R[$s,$phase$mode,$r]=$($fn "http://127.0.0.1:$port$path")
        R[$s,$o$mode,$r]=$(ratio "$(sent "$path")")
        sleep 1
      done
      if [ -n "$EDGE_PID" ]; then R[edge,${phase}rss$mode,$r]=$(rss "$EDGE_PID"); reset_peak "$EDGE_PID"; fi
    done
    stop_server
    rm -rf "$dir_e" "$dir_n"
    for s in "${servers[@]}"; do
      local extra=""; [ "$s" = edge ] && extra=", peak RSS cold ${R[edge,coldrss$mode,$r]:-?} MB, warm ${R[edge,warmrss$mode,$r]:-?} MB"
      printf '%-6s round %d, %d client(s): cold %s MB/s (origin %sx), warm %s MB/s (origin total %sx)%s\n' "$s" "$r" "$mode" \
        "${R[$s,cold$mode,$r]}" "${R[$s,origin$mode,$r]}" "${R[$s,warm$mode,$r]}" "${R[$s,warmorigin$mode,$r]}" "$extra"
    done
  done
}

for r in $(seq 1 "$RUNS"); do round "$r"; done

median() { # key prefix → median over rounds ("-" when not measured)
  local vals=() r
  for r in $(seq 1 "$RUNS"); do [ -n "${R[$1,$r]:-}" ] && vals+=("${R[$1,$r]}"); done
  [ ${#vals[@]} = 0 ] && { echo -; return; }
  printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
echo
echo "object $SIZE bytes; edge slice_bytes ${SLICE_BYTES:-default} threshold ${THRESHOLD:-default}; nginx slice $NGINX_SLICE; medians of $RUNS runs"
echo
ratios() { # phase+mode → median of the per-round edge/nginx ratios
  local vals=() r
  for r in $(seq 1 "$RUNS"); do
    if [ -n "${R[edge,$1,$r]:-}" ] && [ -n "${R[nginx,$1,$r]:-}" ]; then
      vals+=("$(awk -v a="${R[edge,$1,$r]}" -v b="${R[nginx,$1,$r]}" 'BEGIN{ printf "%.2f", (b+0 > 0 ? a/b : 0) }')")
    fi
  done
  [ ${#vals[@]} = 0 ] && { echo -; return; }
  printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
echo "| | edge MB/s | nginx MB/s | edge / nginx (median of the rounds' ratios) | edge origin bytes / object | nginx origin bytes / object | edge peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
for mode in 1 8; do
  for phase in cold warm; do
    o=$([ $phase = cold ] && echo origin || echo warmorigin)
    e=$(median "edge,$phase$mode"); n=$(median "nginx,$phase$mode")
    oe=$(median "edge,$o$mode"); on=$(median "nginx,$o$mode"); rs=$(median "edge,${phase}rss$mode")
    label="$phase, 1 client"; [ "$mode" = 8 ] && label="$phase, 8 clients (parallel segments)"
    echo "| $label | $e | $n | $(ratios "$phase$mode") | $oe | $on | $rs |"
  done
done
echo
echo "(origin bytes on the warm rows: the total after the cold and the warm pass; peak RSS: the edge's workerd during that"
echo " pass, the warm pass's from what the cold pass left resident)"
