#!/usr/bin/env bash
# How the front door's engine was chosen (not a test): nginx 1.22, HAProxy 2.6 and Caddy 2.6 from Debian, each
# terminating TLS + HTTP/2 in front of the same bare-workerd edge serving a HIT, one after the other:
#   - h2load HITs (1 KB and 100 KB; -c 32 -m 10) through each, with the terminator's CPU seconds per 10k requests
#     (which moves less than req/s with whatever else the machine runs)
#   - reloads under load: h2load runs while the terminator reloads its config every 0.5 s; failed requests counted
#   - a 100 MB download at 20 MB/s across a reload: completes or not
# Server side (edge + terminator) on core 0, load and origin on core 1. Each engine: one worker process/thread.
# Needs: nginx haproxy caddy nghttp2-client curl openssl python3. Usage: scripts/bench/terminators.sh [secs, default 8] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
ROUNDS=${2:-3}
. scripts/bench/common.sh
wait_url() { for _ in $(seq 1 200); do curl -sfk -o /dev/null --resolve "bench.test:$2:127.0.0.1" "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }
P_ORIGIN=$(free_port); P_EDGE=$(free_port); P_NGINX=$(free_port); P_HAPROXY=$(free_port); P_CADDY=$(free_port); P_CADDY_ADMIN=$(free_port)

# --- origin (load core) and the edge (server core) -----------------------------------------------------------------
cat > "$T/origin.mjs" <<'JS'
import http from "node:http";
const chunk = Buffer.alloc(1 << 20, 120);
http.createServer((req, res) => {
  const m = /^\/obj\/(\d+)/.exec(req.url);
  if (!m) { res.writeHead(404).end(); return; }
  const size = Number(m[1]);
  res.writeHead(200, { "content-length": size, "cache-control": "max-age=3600", "content-type": "application/octet-stream" });
  let sent = 0;
  const go = () => { while (sent < size) { const n = Math.min(chunk.length, size - sent); sent += n; if (!res.write(chunk.subarray(0, n))) return res.once("drain", go); } res.end(); };
  go();
}).listen(Number(process.argv[2]), "127.0.0.1");
JS
taskset -c 1 "$NODE" "$T/origin.mjs" "$P_ORIGIN" & PIDS+=($!)
cat > "$T/cdn.toml" <<TOML
[edge]
name = "bench"
origin = "http://127.0.0.1:$P_ORIGIN"
max_object_bytes = 2000000000
access_log = false
trusted_proxies = ["127.0.0.1/32"]
TOML
taskset -c 0 "$NODE" scripts/edge.ts --config "$T/cdn.toml" --port "$P_EDGE" --store "$T/store" > "$T/edge.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 300); do grep -qs "edge ready" "$T/edge.log" && break; sleep 0.1; done
grep -q "edge ready" "$T/edge.log" || { cat "$T/edge.log"; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
cat "$T/cert.pem" "$T/key.pem" > "$T/both.pem"

# --- nginx ---------------------------------------------------------------------------------------------------------
mkdir -p "$T/nginx/tmp" "$T/nginx/logs"
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
  upstream edge { server 127.0.0.1:$P_EDGE; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX ssl http2;
    server_name bench.test;
    ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
    location / {
      proxy_pass http://edge; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header X-Forwarded-Proto https;
    }
  }
}
NGINX
taskset -c 0 nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" & PIDS+=($!)
NGINX_PID=$!

# --- HAProxy (master-worker, seamless reload through the master) ---------------------------------------------------
cat > "$T/haproxy.cfg" <<HAP
global
  nbthread 1
  master-worker
  stats socket $T/haproxy.sock mode 600 level admin expose-fd listeners
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:$P_HAPROXY ssl crt $T/both.pem alpn h2,http/1.1
  http-request set-header X-Forwarded-For %[src]
  http-request set-header X-Forwarded-Proto https
  default_backend edge
backend edge
  http-reuse always
  server e 127.0.0.1:$P_EDGE
HAP
taskset -c 0 haproxy -W -db -f "$T/haproxy.cfg" > "$T/haproxy.log" 2>&1 & PIDS+=($!)
HAPROXY_PID=$!

# --- Caddy ---------------------------------------------------------------------------------------------------------
cat > "$T/Caddyfile" <<CADDY
{
  admin 127.0.0.1:$P_CADDY_ADMIN
  auto_https off
  storage file_system $T/caddy
}
https://bench.test:$P_CADDY {
  bind 127.0.0.1
  tls $T/cert.pem $T/key.pem
  reverse_proxy 127.0.0.1:$P_EDGE {
    header_up X-Forwarded-For {remote_host}
  }
}
CADDY
HOME=$T GOMAXPROCS=1 XDG_DATA_HOME=$T XDG_CONFIG_HOME=$T taskset -c 0 caddy run --config "$T/Caddyfile" --adapter caddyfile > "$T/caddy.log" 2>&1 & PIDS+=($!)
CADDY_PID=$!

wait_url "https://bench.test:$P_NGINX/obj/1024/x" "$P_NGINX" || { cat "$T/nginx/logs/error.log"; exit 1; }
wait_url "https://bench.test:$P_HAPROXY/obj/1024/x" "$P_HAPROXY" || { cat "$T/haproxy.log"; exit 1; }
wait_url "https://bench.test:$P_CADDY/obj/1024/x" "$P_CADDY" || { cat "$T/caddy.log"; exit 1; }

# CPU seconds (user + system) of a process and its children's threads: every pid in its group.
cpu_of() { # pids...
  local total=0
  for p in "$@"; do
    for t in /proc/"$p"/task/*/stat; do
      total=$((total + $(awk '{print $14 + $15}' "$t" 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}
tree_of() { # root pid → it and its descendants
  echo "$1"; for c in $(pgrep -P "$1" || true); do tree_of "$c"; done
}
HZ=$(getconf CLK_TCK)
reload() { # engine
  case $1 in
    nginx) kill -HUP "$NGINX_PID" ;;
    haproxy) kill -USR2 "$HAPROXY_PID" ;;
    caddy) curl -s -o /dev/null -X POST -H "Content-Type: text/caddyfile" --data-binary @"$T/Caddyfile" "http://127.0.0.1:$P_CADDY_ADMIN/load" ;;
  esac
}
pid_of() { case $1 in nginx) echo "$NGINX_PID" ;; haproxy) echo "$HAPROXY_PID" ;; caddy) echo "$CADDY_PID" ;; esac; }
port_of() { case $1 in nginx) echo "$P_NGINX" ;; haproxy) echo "$P_HAPROXY" ;; caddy) echo "$P_CADDY" ;; esac; }

declare -A RPS CPU
run() { # engine size round
  local port; port=$(port_of "$1")
  local pids; pids=$(tree_of "$(pid_of "$1")")
  local before; before=$(cpu_of $pids)
  local out; out=$(taskset -c 1 h2load -D "$SECS" -c 32 -m 10 -t 1 --connect-to="127.0.0.1:$port" "https://bench.test:$port/obj/$2/x" 2>&1)
  local after; after=$(cpu_of $(tree_of "$(pid_of "$1")"))
  local rps done_
  rps=$(awk '/^finished in/ {gsub(",","",$4); print $4}' <<<"$out")
  done_=$(awk '/^requests:/ {print $8}' <<<"$out")
  local failed; failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  grep -q "h2" <<<"$(grep -i 'Application protocol' <<<"$out")" || { echo "$1: not h2: $out" >&2; exit 1; }
  RPS[$1-$2-$3]=$rps
  CPU[$1-$2-$3]=$(awk -v c=$((after - before)) -v hz="$HZ" -v n="$done_" 'BEGIN{ printf "%.2f", (c / hz) / (n / 10000) }')
  printf '%-8s %7s B round %s: %9s req/s  terminator %s CPU s / 10k req  (failed %s)\n' "$1" "$2" "$3" "$rps" "${CPU[$1-$2-$3]}" "$failed"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

for size in 1024 102400; do
  for engine in nginx haproxy caddy; do curl -sk -o /dev/null --resolve "bench.test:$(port_of $engine):127.0.0.1" "https://bench.test:$(port_of $engine)/obj/$size/x"; done
  for r in $(seq 1 "$ROUNDS"); do for engine in nginx haproxy caddy; do run "$engine" "$size" "$r"; done; done
done

# --- reloads under load ------------------------------------------------------------------------------------------
declare -A RELOAD_FAIL LONG
for engine in nginx haproxy caddy; do
  port=$(port_of "$engine")
  ( for _ in $(seq 1 $((SECS * 2))); do sleep 0.5; reload "$engine"; done ) & RL=$!
  out=$(taskset -c 1 h2load -D "$SECS" -c 8 -m 4 -t 1 --connect-to="127.0.0.1:$port" "https://bench.test:$port/obj/1024/x" 2>&1)
  wait "$RL" || true
  RELOAD_FAIL[$engine]=$(awk '/^requests:/ {print $10 " failed, " $12 " errored of " $2}' <<<"$out")
  echo "$engine reloads every 0.5 s under load: ${RELOAD_FAIL[$engine]}"
  curl -sk -m 60 -o /dev/null --resolve "bench.test:$port:127.0.0.1" "https://bench.test:$port/obj/100000000/big" # stored
  taskset -c 1 curl -sk -m 60 -o "$T/big-$engine" --limit-rate 20M -w '%{http_code} %{size_download}\n' \
    --resolve "bench.test:$port:127.0.0.1" "https://bench.test:$port/obj/100000000/big" > "$T/long-$engine" 2>&1 & DL=$!
  sleep 1; reload "$engine"; sleep 1; reload "$engine"
  wait "$DL" || true
  LONG[$engine]=$(cat "$T/long-$engine")
  echo "$engine 100 MB download across two reloads: ${LONG[$engine]}"
done

echo
echo "| engine | 1 KB HIT req/s | CPU s / 10k | 100 KB HIT req/s | CPU s / 10k | reloads under load | 100 MB across reloads |"
echo "|---|---|---|---|---|---|---|"
for engine in nginx haproxy caddy; do
  r1=(); c1=(); r2=(); c2=()
  for r in $(seq 1 "$ROUNDS"); do
    r1+=("${RPS[$engine-1024-$r]}"); c1+=("${CPU[$engine-1024-$r]}"); r2+=("${RPS[$engine-102400-$r]}"); c2+=("${CPU[$engine-102400-$r]}")
  done
  echo "| $engine | $(median "${r1[@]}") | $(median "${c1[@]}") | $(median "${r2[@]}") | $(median "${c2[@]}") | ${RELOAD_FAIL[$engine]} | ${LONG[$engine]} |"
done
