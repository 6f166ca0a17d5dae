#!/usr/bin/env bash
# Mixed-workload benchmark (not a test; issue 20): a realistic mix through this edge (bare workerd, one process, the
# default memory tier) and through nginx proxy_cache side by side, each pinned to one server core (taskset -c 0); the
# origin (scripts/bench/mix-origin.ts) and the load (wrk -t1, scripts/bench/mix.lua) on the other (-c 1).
# The mix, per request (the same seeded sequence for both servers):
#   site   MIX[0] % (default 70): SITE_OBJECTS (2,000) HTML, CSS, JS and images of 1–200 KB, drawn by Zipf rank (ZIPF_S 1.0)
#   apt    MIX[1] % (default 25): a pool of APT_OBJECTS (10,000) .debs of APT_MIN–APT_MAX bytes (8–128 KiB, log-uniform:
#          about 430 MB, several times the edge's 64 MiB memory tier), drawn uniformly
#   iso    MIX[2] % (default 5): a SEGMENT (1 MiB) Range at a random offset of one of ISOS (2) ISO_BYTES (512 MiB) images
#   MISS_PCT % (default 1) of all requests: new site objects (unique URLs; both servers fetch and store them)
# nginx: `proxy_cache` for everything, plus `slice 1m` (key $uri$slice_range) for /iso/, as a mirror is set up; the
# edge slices large objects itself (slice_threshold_bytes). Before the runs every object is fetched once through each
# server (curl --parallel 8; the fill time is printed), so the runs measure a warm cache whose apt pool does not fit
# the memory tier. Each of RUNS rounds runs both servers for SECS seconds (the order alternating by round) and reports
# requests/s, MB/s (every byte wrk read), p50/p99, server CPU µs per request (utime + stime of the server's processes,
# /proc/<pid>/stat) and RSS (VmRSS summed over them, and VmHWM); the table gives medians and the median of the rounds'
# edge / nginx ratios. Server processes: the edge's workerd (the idle Node launcher not counted); nginx's master,
# worker and cache manager.
# Needs: wrk nginx curl python3 (apt-get install wrk nginx curl).
# Usage: scripts/bench/mix.sh                       (RUNS=3 SECS=20: 2 minutes of runs after the fill, 1-3 minutes)
#        SMOKE=1 scripts/bench/mix.sh               (one 3 s round, 500 site objects, 1,000 debs, one 64 MiB ISO)
# env: RUNS SECS CONNS (wrk connections, 32) SITE_OBJECTS ZIPF_S APT_OBJECTS APT_MIN APT_MAX ISOS ISO_BYTES SEGMENT
#      MIX (site,apt,iso %) MISS_PCT SEED ONLY=edge|nginx PARTS=1 (then each part of the mix alone, one run each)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${SMOKE:-0}" = 1 ]; then
  : "${RUNS:=1}" "${SECS:=3}" "${SITE_OBJECTS:=500}" "${APT_OBJECTS:=1000}" "${ISOS:=1}" "${ISO_BYTES:=67108864}"
fi
RUNS=${RUNS:-3}; SECS=${SECS:-20}; CONNS=${CONNS:-32}
SITE_OBJECTS=${SITE_OBJECTS:-2000}; ZIPF_S=${ZIPF_S:-1.0}
APT_OBJECTS=${APT_OBJECTS:-10000}; APT_MIN=${APT_MIN:-8192}; APT_MAX=${APT_MAX:-131072}
ISOS=${ISOS:-2}; ISO_BYTES=${ISO_BYTES:-536870912}; SEGMENT=${SEGMENT:-1048576}
MIX=${MIX:-70,25,5}; MISS_PCT=${MISS_PCT:-1}; SEED=${SEED:-1}
export SEGMENT MIX MISS_PCT ZIPF_S SEED
. scripts/bench/common.sh
for tool in wrk nginx curl python3; do command -v "$tool" > /dev/null || { echo "mix.sh needs $tool (apt-get install $tool)" >&2; exit 1; }; done

# --- the path lists (one source for the fill, the load and the checks) ---------------------------------------------
export MIX_DIR=$T/lists
mkdir -p "$MIX_DIR"
python3 - "$MIX_DIR" "$SITE_OBJECTS" "$APT_OBJECTS" "$APT_MIN" "$APT_MAX" "$ISOS" "$ISO_BYTES" "$SEED" <<'PY'
import math, random, sys
out, n_site, n_apt, apt_min, apt_max, n_iso, iso_bytes, seed = sys.argv[1], *map(int, sys.argv[2:])
rnd = random.Random(seed)
def log_uniform(lo, hi): return int(math.exp(rnd.uniform(math.log(lo), math.log(hi))))
# A site's objects by kind (share of 10, directory, extension, size range in bytes); ranks mix the kinds.
kinds = [(2, "pages", "html", 4_000, 60_000), (1, "css", "css", 2_000, 50_000), (1, "js", "js", 5_000, 150_000),
         (4, "img", "jpg", 10_000, 200_000), (2, "img", "png", 1_000, 100_000)]
wheel = [k for k in kinds for _ in range(k[0])]
with open(f"{out}/site.txt", "w") as f:
    for i in range(n_site):
        _, d, ext, lo, hi = wheel[i % len(wheel)]
        f.write(f"/site/{d}/{i}-{log_uniform(lo, hi)}.{ext}\n")
with open(f"{out}/apt.txt", "w") as f:
    for i in range(n_apt):
        f.write(f"/debian/pool/main/p/pkg{i}/pkg{i}_1.0-1_amd64-{log_uniform(apt_min, apt_max)}.deb\n")
with open(f"{out}/iso.txt", "w") as f:
    for i in range(n_iso):
        f.write(f"/iso/debian-{i}-amd64-DVD-{iso_bytes}.iso\n")
PY
list_bytes() { cat "$MIX_DIR"/"$1" | sed -n 's/.*-\([0-9]*\)\.[a-z]*$/\1/p' | awk '{s += $1} END {printf "%.0f", s / 1e6}'; }
echo "site $SITE_OBJECTS objects ($(list_bytes site.txt) MB), apt pool $APT_OBJECTS debs ($(list_bytes apt.txt) MB), $ISOS ISO(s) of $ISO_BYTES bytes; mix site,apt,iso $MIX %, $MISS_PCT % new objects; wrk -t1 -c$CONNS, $SECS s, $RUNS run(s)"

# --- origin (load core) --------------------------------------------------------------------------------------------
P_ORIGIN=$(free_port)
taskset -c 1 "$NODE" scripts/bench/mix-origin.ts --port "$P_ORIGIN" > "$T/origin.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$P_ORIGIN/__sent"
origin_mb() { curl -s "http://127.0.0.1:$P_ORIGIN/__sent" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['bytes'] / 1e6))"; }

# --- the edge (server core): one workerd process, the default memory tier -------------------------------------------
P_EDGE=$(free_port)
mkdir -p "$T/edge"
cat > "$T/edge/cdn.toml" <<TOML
[edge]
name = "bench"
origin = "http://127.0.0.1:$P_ORIGIN"
store_max_bytes = 20000000000
access_log = false
[admin]
token = "mix-bench-token-0123456789"
TOML
taskset -c 0 "$NODE" scripts/edge.ts --config "$T/edge/cdn.toml" --port "$P_EDGE" --store "$T/edge/store" > "$T/edge/edge.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 300); do grep -qs "edge ready" "$T/edge/edge.log" && break; sleep 0.1; done
grep -q "edge ready" "$T/edge/edge.log" || { cat "$T/edge/edge.log"; exit 1; }
EDGE_PIDS=$(sed -n 's/^workerd pids: \([0-9 ]*\).*/\1/p' "$T/edge/edge.log")
# The edge's memory-tier reads and the store reads it passed on, so far: "hits misses".
edge_tier() {
  curl -s -H "authorization: Bearer mix-bench-token-0123456789" "http://127.0.0.1:$P_EDGE/.well-known/cdn/metrics" |
    awk '$1 == "parrot_edge_store_hot_hits_total" {h = $2} $1 == "parrot_edge_store_hot_misses_total" {m = $2} END {print h + 0, m + 0}'
}

# --- nginx proxy_cache (server core), slice 1m for the ISOs ---------------------------------------------------------
P_NGINX=$(free_port)
N=$T/nginx
mkdir -p "$N/cache" "$N/tmp" "$N/logs"
cat > "$N/nginx.conf" <<NGINX
worker_processes 1;
user $(id -un);
daemon off;
pid $N/nginx.pid;
error_log $N/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $N/tmp/body; proxy_temp_path $N/tmp/proxy; fastcgi_temp_path $N/tmp/fcgi;
  uwsgi_temp_path $N/tmp/uwsgi; scgi_temp_path $N/tmp/scgi;
  proxy_cache_path $N/cache levels=1:2 keys_zone=mix:64m max_size=20g inactive=1d use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 32; }
  server {
    listen 127.0.0.1:$P_NGINX;
    proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_cache mix; proxy_cache_lock on;
    add_header X-Cache-Status \$upstream_cache_status;
    location / { proxy_pass http://origin; }
    location /iso/ {
      slice 1m;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1d;
      proxy_pass http://origin;
    }
  }
}
NGINX
taskset -c 0 nginx -p "$N" -c "$N/nginx.conf" -e "$N/logs/error.log" & PIDS+=($!)
wait_http "http://127.0.0.1:$P_NGINX/__sent" || { cat "$N/logs/error.log"; exit 1; }
nginx_pids() { local m; m=$(cat "$N/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }

SERVERS=(edge nginx); [ -n "${ONLY:-}" ] && SERVERS=("$ONLY")
port_of() { [ "$1" = edge ] && echo "$P_EDGE" || echo "$P_NGINX"; }
pids_of() { [ "$1" = edge ] && echo "$EDGE_PIDS" || nginx_pids; }

# --- fill: every object once through each server ---------------------------------------------------------------------
for s in "${SERVERS[@]}"; do
  port=$(port_of "$s")
  cat "$MIX_DIR"/site.txt "$MIX_DIR"/apt.txt "$MIX_DIR"/iso.txt | awk -v p="$port" '{print "url = \"http://127.0.0.1:" p $0 "\"\noutput = \"/dev/null\""}' > "$T/fill-$s.conf"
  t0=$(date +%s.%N); o0=$(origin_mb)
  taskset -c 1 curl -s --no-progress-meter --parallel --parallel-max 8 -K "$T/fill-$s.conf" -w '%{http_code}\n' > "$T/fill-$s.codes"
  t1=$(date +%s.%N)
  bad=$(grep -vc '^200$' "$T/fill-$s.codes" || true)
  printf '%-6s fill: %d objects in %.1f s, %s MB from the origin, %s answers not 200\n' "$s" "$(wc -l < "$T/fill-$s.codes")" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$(($(origin_mb) - o0))" "$bad"
done
# A sample of each kind now answers from the cache (X-Cache-Status HIT on both; the ISO by a Range, as in the runs).
for s in "${SERVERS[@]}"; do
  port=$(port_of "$s"); hits=0; n=0
  for p in $(shuf -n 10 --random-source=<(yes) "$MIX_DIR"/site.txt) $(shuf -n 10 --random-source=<(yes) "$MIX_DIR"/apt.txt) $(head -1 "$MIX_DIR"/iso.txt); do
    n=$((n + 1)); range=(); [[ "$p" == /iso/* ]] && range=(-r 1000000-1999999)
    curl -s "${range[@]}" -o /dev/null -D - "http://127.0.0.1:$port$p" | grep -qi '^x-cache-status: HIT' && hits=$((hits + 1))
  done
  echo "$s after the fill: $hits of $n sampled objects HIT"
done

# --- the rounds ------------------------------------------------------------------------------------------------------
cpu_of() { local t=0 v p; for p in $1; do v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done; echo "$t"; }
# A process gone meanwhile (nginx's cache loader exits a minute after the start) counts nothing.
mem_of() { local p; for p in $2; do cat "/proc/$p/status" 2>/dev/null || true; done | awk -v k="$1" '$1 == k":" {s += $2} END {printf "%.0f", s / 1024}'; }
declare -A R
measure() { # server key round: one wrk run of SECS against the server, results in R[server,*,key]
  local s=$1 k=$2 r=$3 pids c0 c1 o0 out line requests bytes duration_us status_errors socket_errors p50_us p99_us
  local t0=(0 0) t1=(0 0) tier=""
  [ "$s" = edge ] && read -ra t0 <<<"$(edge_tier)"
  pids=$(pids_of "$s"); c0=$(cpu_of "$pids"); o0=$(origin_mb)
  out=$(TAG="$s-$k" taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s scripts/bench/mix.lua "http://127.0.0.1:$(port_of "$s")")
  c1=$(cpu_of "$pids")
  line=$(grep '^MIXRESULT' <<<"$out") || { echo "$out" >&2; exit 1; }
  eval "$(sed 's/^MIXRESULT //' <<<"$line")" # requests= bytes= duration_us= status_errors= socket_errors= p50_us= p99_us=
  R[$s,rps,$k]=$(awk -v n="$requests" -v d="$duration_us" 'BEGIN{printf "%.0f", n / d * 1e6}')
  R[$s,mbs,$k]=$(awk -v b="$bytes" -v d="$duration_us" 'BEGIN{printf "%.0f", b / d}')
  R[$s,cpu,$k]=$(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN{printf "%.0f", c / t * 1e6 / n}')
  R[$s,p50,$k]=$(awk -v v="$p50_us" 'BEGIN{printf "%.1f", v / 1000}'); R[$s,p99,$k]=$(awk -v v="$p99_us" 'BEGIN{printf "%.1f", v / 1000}')
  R[$s,rss,$k]=$(mem_of VmRSS "$pids"); R[$s,hwm,$k]=$(mem_of VmHWM "$pids")
  R[$s,origin,$k]=$(($(origin_mb) - o0))
  if [ "$s" = edge ]; then
    read -ra t1 <<<"$(edge_tier)"
    tier=$(awk -v h=$((t1[0] - t0[0])) -v m=$((t1[1] - t0[1])) 'BEGIN{if (h + m > 0) printf ", memory tier %.0f %% of %d reads", 100 * h / (h + m), h + m}')
  fi
  printf '%-6s %-10s %s req/s, %s MB/s, p50 %s ms, p99 %s ms, %s µs CPU/req, RSS %s MB (peak %s), origin %s MB, errors: %s status, %s socket%s\n' \
    "$s" "$r:" "${R[$s,rps,$k]}" "${R[$s,mbs,$k]}" "${R[$s,p50,$k]}" "${R[$s,p99,$k]}" "${R[$s,cpu,$k]}" "${R[$s,rss,$k]}" \
    "${R[$s,hwm,$k]}" "${R[$s,origin,$k]}" "$status_errors" "$socket_errors" "$tier"
}
# Both servers back to back in each round, the order alternating, so a busy moment of the machine hits both.
in_order() { local r=$1; shift; if [ $((r % 2)) = 0 ] && [ $# = 2 ]; then echo "$2 $1"; else echo "$@"; fi; }
for r in $(seq 1 "$RUNS"); do
  for s in $(in_order "$r" "${SERVERS[@]}"); do measure "$s" "$r" "round $r"; done
done
# PARTS=1: each part of the mix alone (one run each, no new objects), to see where a gap comes from.
if [ "${PARTS:-0}" = 1 ]; then
  for part in site:100,0,0 apt:0,100,0 iso:0,0,100; do
    for s in "${SERVERS[@]}"; do MIX=${part#*:} MISS_PCT=0 measure "$s" "${part%%:*}" "${part%%:*} only"; done
  done
fi

# --- table: medians, and the median of the rounds' edge / nginx ratios -------------------------------------------------
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
med() { for r in $(seq 1 "$RUNS"); do [ -n "${R[$1,$2,$r]:-}" ] && echo "${R[$1,$2,$r]}"; done | median; }
ratio() { for r in $(seq 1 "$RUNS"); do
  [ -n "${R[edge,$1,$r]:-}" ] && [ -n "${R[nginx,$1,$r]:-}" ] && awk -v a="${R[edge,$1,$r]}" -v b="${R[nginx,$1,$r]}" 'BEGIN{if (b + 0 > 0) printf "%.2f\n", a / b}'
done | median; }
echo
echo "| mixed workload, medians of $RUNS run(s) | edge | nginx | edge / nginx |"
echo "|---|---|---|---|"
for k in "rps:requests/s" "mbs:MB/s" "p50:p50 ms" "p99:p99 ms" "cpu:server CPU µs per request" "rss:RSS MB (end of run)" "hwm:peak RSS MB (VmHWM)"; do
  echo "| ${k#*:} | $(med edge "${k%%:*}") | $(med nginx "${k%%:*}") | $(ratio "${k%%:*}") |"
done
if [ "${PARTS:-0}" = 1 ]; then
  echo
  echo "| each part alone (one run) | edge req/s | nginx req/s | edge / nginx | edge MB/s | nginx MB/s | edge CPU µs/req | nginx CPU µs/req |"
  echo "|---|---|---|---|---|---|---|---|"
  for part in site apt iso; do
    echo "| $part | ${R[edge,rps,$part]:--} | ${R[nginx,rps,$part]:--} | $(awk -v a="${R[edge,rps,$part]:-0}" -v b="${R[nginx,rps,$part]:-0}" 'BEGIN{if (b > 0) printf "%.2f", a / b; else print "-"}') | ${R[edge,mbs,$part]:--} | ${R[nginx,mbs,$part]:--} | ${R[edge,cpu,$part]:--} | ${R[nginx,cpu,$part]:--} |"
  done
fi
echo
echo "(goals, issue 20: edge ≥ 0.5× nginx requests/s and ≥ 1.0× nginx MB/s; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
