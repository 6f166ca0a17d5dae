#!/usr/bin/env bash
# HTTPS benchmark (not a test). Side by side in one run, h2load -c 32 -m 10 (HTTP/2) or --h1 (HTTP/1.1 keep-alive),
# HITs of 1 KB and 100 KB objects, server side on core 0 (edge box: workerd + HAProxy; nginx), load and origin on core 1:
#   workerd plain      HTTP/1.1 straight to the edge's workerd (no front door): the ceiling
#   door https h2      HTTPS + HTTP/2 through the front door (HAProxy) to the same workerd: the product
#   door https h1      HTTPS + HTTP/1.1 through the front door
#   door plain h1      plain HTTP through the front door (its cost without TLS)
#   door https h2 lim  HTTPS + HTTP/2 through a second edge box whose front door tracks limits (rate, connections,
#                      bans; never reached): what the stick tables cost
#   nginx https h2     nginx terminating HTTPS + HTTP/2 with its own proxy_cache (the reference)
# then a 20 KB HTML page with and without Accept-Encoding: gzip, br through the front door (compressed vs not: the
# edge engine's compression, issue 10 part 3; the front door passes bodies as they are).
# Each variant runs ROUNDS times, interleaved; the table shows medians, the CPU seconds per 10k requests of the
# terminator (HAProxy or nginx) and of the edge.s workerd (steadier than req/s on a shared machine), and ratios.
# Needs: haproxy nginx nghttp2-client curl openssl python3.
# Usage: scripts/bench/https.sh [seconds per run, default 8] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
ROUNDS=${2:-3}
. scripts/bench/common.sh
P_ORIGIN=$(free_port); P_NGINX=$(free_port)

# --- origin (load core): /obj/<size>/<anything> → <size> bytes, /html/<size> → text/html, cacheable an hour ---------
cat > "$T/origin.mjs" <<'JS'
import http from "node:http";
const chunk = Buffer.alloc(1 << 20, 120);
const words = Buffer.from("<p>parrot-cdn serves this paragraph of ordinary HTML text again and again.</p>\n".repeat(20000));
http.createServer((req, res) => {
  const m = /^\/(obj|html)\/(\d+)/.exec(req.url);
  if (!m) { res.writeHead(404).end(); return; }
  const size = Number(m[2]);
  res.writeHead(200, { "content-length": size, "cache-control": "max-age=3600", "content-type": m[1] === "html" ? "text/html; charset=utf-8" : "application/octet-stream" });
  if (m[1] === "html") return res.end(words.subarray(0, size));
  let sent = 0;
  const go = () => { while (sent < size) { const n = Math.min(chunk.length, size - sent); sent += n; if (!res.write(chunk.subarray(0, n))) return res.once("drain", go); } res.end(); };
  go();
}).listen(Number(process.argv[2]), "127.0.0.1");
JS
taskset -c 1 "$NODE" "$T/origin.mjs" "$P_ORIGIN" & PIDS+=($!)

# --- two edge boxes with front doors (server core): plain, and with limits that are never reached -----------------
box() { # name extra-frontdoor-toml
  mkdir -p "$T/$1"
  cat > "$T/$1/cdn.toml" <<TOML
[edge]
name = "$1"
origin = "http://127.0.0.1:$P_ORIGIN"
store_dir = "$T/$1/store"
access_log = false
[frontdoor]
cert_dir = "$T/certs"
$2
[[sites]]
names = ["bench.test"]
certificate = "local"
http = "serve"
$3
TOML
  taskset -c 0 "$NODE" scripts/edge.ts --config "$T/$1/cdn.toml" --port 0 --https-port 0 > "$T/$1/log" 2>&1 & PIDS+=($!)
}
box door "" ""
for _ in $(seq 1 300); do grep -qs "edge ready" "$T/door/log" && break; sleep 0.1; done # the local CA first, then the second box
box lim 'connections = 1000
ban = { after = 1000000, within = 60, seconds = 60 }' 'limits = [ { requests = 1000000, seconds = 10 } ]'
for b in door lim; do
  for _ in $(seq 1 300); do grep -qs "edge ready" "$T/$b/log" && break; sleep 0.1; done
  grep -q "edge ready" "$T/$b/log" || { cat "$T/$b/log"; exit 1; }
done
line() { grep -m1 "^front door:" "$T/$1/log"; }
P_HTTPS=$(line door | sed -E 's#^front door: https://127.0.0.1:([0-9]+).*#\1#')
P_HTTP=$(line door | sed -E 's#.* and http://127.0.0.1:([0-9]+),.*#\1#')
P_WORKERD=$(line door | sed -E 's#.*-> workerd http://127.0.0.1:([0-9]+)#\1#')
P_LIM=$(line lim | sed -E 's#^front door: https://127.0.0.1:([0-9]+).*#\1#')

# --- nginx: HTTPS + HTTP/2, proxy_cache (server core), the same certificate ----------------------------------------
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
  keepalive_requests 10000000; # h2load does not reconnect after nginx's GOAWAY at the default 1000 requests
  client_body_temp_path $T/nginx/tmp/body; proxy_temp_path $T/nginx/tmp/proxy; fastcgi_temp_path $T/nginx/tmp/fcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi; scgi_temp_path $T/nginx/tmp/scgi;
  proxy_cache_path $T/nginx/cache levels=1:2 keys_zone=edge:64m max_size=8g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 32; }
  server {
    listen 127.0.0.1:$P_NGINX ssl http2;
    server_name bench.test;
    ssl_certificate $T/certs/bench.test.pem; ssl_certificate_key $T/certs/bench.test.pem;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache edge; proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
NGINX
taskset -c 0 nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" & PIDS+=($!)
CA="$T/certs/local-ca.pem"
get() { curl -s -o /dev/null --cacert "$CA" --resolve "bench.test:$2:127.0.0.1" -w '%{http_code}' "$1"; }
for _ in $(seq 1 100); do [ "$(get "https://bench.test:$P_NGINX/obj/1/x" "$P_NGINX")" = 200 ] && break; sleep 0.1; done

# --- runs --------------------------------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
# CPU ticks (user + system, every thread) of the processes whose command line matches a pattern.
# (and of their children: nginx's workers are called "nginx: worker process").
ticks() {
  local t=0 roots; roots=$(pgrep -f "$1" || true)
  for p in $( { printf '%s\n' $roots; for r in $roots; do pgrep -P "$r" || true; done; } | sort -u); do
    for s in /proc/"$p"/task/*/stat; do t=$((t + $(awk '{print $14 + $15}' "$s" 2>/dev/null || echo 0))); done
  done
  echo "$t"
}
term_pat() { case $1 in door|lim) echo "haproxy -W -db -f $T/$1/" ;; nginx) echo "nginx -p $T/nginx" ;; *) echo "no-such-process-$RANDOM" ;; esac; }
work_pat() { case $1 in door|workerd) echo "workerd serve $T/door/store" ;; lim) echo "workerd serve $T/lim/store" ;; *) echo "no-such-process-$RANDOM" ;; esac; }
declare -A RPS TCPU WCPU
per10k() { awk -v c="$1" -v hz="$HZ" -v n="$2" 'BEGIN{ printf "%.2f", (c / hz) / (n / 10000) }'; }
run() { # label round box url [h2load args...]   box: workerd | door | lim | nginx (whose CPU is counted)
  local label=$1 r=$2 box=$3 url=$4; shift 4
  local t0 w0 t1 w1; t0=$(ticks "$(term_pat "$box")"); w0=$(ticks "$(work_pat "$box")")
  local out; out=$(taskset -c 1 h2load -D "$SECS" -c 32 -m 10 -t 1 "$@" "$url" 2>&1)
  t1=$(ticks "$(term_pat "$box")"); w1=$(ticks "$(work_pat "$box")")
  local rps ok failed
  rps=$(awk '/^finished in/ {gsub(",","",$4); print $4}' <<<"$out")
  ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
  failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  [ "${ok:-0}" -gt 0 ] || { echo "$label: no 2xx: $out" >&2; exit 1; }
  RPS[$label/$r]=$rps
  TCPU[$label/$r]=$(per10k $((t1 - t0)) "$ok")
  WCPU[$label/$r]=$(per10k $((w1 - w0)) "$ok")
  printf '%-28s round %s %10s req/s  terminator %5s  workerd %5s CPU s/10k  (failed %s)\n' "$label" "$r" "$rps" "${TCPU[$label/$r]}" "${WCPU[$label/$r]}" "$failed"
}
SIZES=(1024 102400)
warm() { for _ in 1 2 3; do get "$1" "$2" > /dev/null; done; }
for size in "${SIZES[@]}"; do
  warm "http://127.0.0.1:$P_WORKERD/obj/$size/x" "$P_WORKERD"
  warm "https://bench.test:$P_HTTPS/obj/$size/x" "$P_HTTPS"
  warm "https://bench.test:$P_LIM/obj/$size/x" "$P_LIM"
  warm "https://bench.test:$P_NGINX/obj/$size/x" "$P_NGINX"
done
warm "https://bench.test:$P_HTTPS/html/20000" "$P_HTTPS"
for r in $(seq 1 "$ROUNDS"); do
  for size in "${SIZES[@]}"; do
    s=$([ "$size" = 1024 ] && echo "1 KB" || echo "100 KB")
    run "workerd plain h1 $s" "$r" workerd "http://127.0.0.1:$P_WORKERD/obj/$size/x" --h1
    run "door https h2 $s" "$r" door "https://bench.test:$P_HTTPS/obj/$size/x" --connect-to="127.0.0.1:$P_HTTPS"
    run "door https h1 $s" "$r" door "https://bench.test:$P_HTTPS/obj/$size/x" --connect-to="127.0.0.1:$P_HTTPS" --h1
    run "door plain h1 $s" "$r" door "http://bench.test:$P_HTTP/obj/$size/x" --connect-to="127.0.0.1:$P_HTTP" --h1
    run "door https h2 lim $s" "$r" lim "https://bench.test:$P_LIM/obj/$size/x" --connect-to="127.0.0.1:$P_LIM"
    run "nginx https h2 $s" "$r" nginx "https://bench.test:$P_NGINX/obj/$size/x" --connect-to="127.0.0.1:$P_NGINX"
  done
  run "door https h2 html identity" "$r" door "https://bench.test:$P_HTTPS/html/20000" --connect-to="127.0.0.1:$P_HTTPS"
  run "door https h2 html gzip,br" "$r" door "https://bench.test:$P_HTTPS/html/20000" --connect-to="127.0.0.1:$P_HTTPS" -H "accept-encoding: gzip, br"
done
echo
echo "HIT headers through the front door:"
curl -s -D - -o /dev/null --cacert "$CA" --resolve "bench.test:$P_HTTPS:127.0.0.1" "https://bench.test:$P_HTTPS/obj/1024/x" | grep -iE "^HTTP|x-cache-status"
curl -s -D - -o /dev/null --cacert "$CA" --resolve "bench.test:$P_NGINX:127.0.0.1" "https://bench.test:$P_NGINX/obj/1024/x" | grep -iE "^HTTP|x-cache-status"
echo "20 KB HTML with Accept-Encoding: gzip, br: $(curl -s -o /dev/null -H 'accept-encoding: gzip, br' --cacert "$CA" --resolve "bench.test:$P_HTTPS:127.0.0.1" -w '%{size_download} bytes, content-encoding ' -D "$T/h" "https://bench.test:$P_HTTPS/html/20000")$(awk 'tolower($1)=="content-encoding:" {print $2}' "$T/h" | tr -d '\r')"

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
med() { local -n m=$2; local v=(); for r in $(seq 1 "$ROUNDS"); do v+=("${m[$1/$r]}"); done; median "${v[@]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo
echo "| setup | req/s (median of $ROUNDS) | terminator CPU s / 10k req | workerd CPU s / 10k req | req/s vs workerd plain | req/s vs nginx https h2 |"
echo "|---|---|---|---|---|---|"
for s in "1 KB" "100 KB"; do
  base=$(med "workerd plain h1 $s" RPS); ng=$(med "nginx https h2 $s" RPS)
  for v in "workerd plain h1" "door https h2" "door https h1" "door plain h1" "door https h2 lim" "nginx https h2"; do
    m=$(med "$v $s" RPS)
    echo "| $v $s | $m | $(med "$v $s" TCPU) | $(med "$v $s" WCPU) | $(ratio "$m" "$base") | $(ratio "$m" "$ng") |"
  done
done
for v in "door https h2 html identity" "door https h2 html gzip,br"; do
  echo "| ${v/html/html 20 KB} | $(med "$v" RPS) | $(med "$v" TCPU) | $(med "$v" WCPU) | | |"
done
echo "compressed / identity HIT rate: $(ratio "$(med "door https h2 html gzip,br" RPS)" "$(med "door https h2 html identity" RPS)")"
