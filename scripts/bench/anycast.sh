#!/usr/bin/env bash
# Anycast overhead (not a test): what the announcer (checks + birdc every interval_ms) and BIRD cost an edge box.
# A router BIRD on 127.77.0.2, an edge box (`node scripts/edge.ts`, bare workerd) with [anycast] on 127.77.0.1, a tiny
# origin; once the prefix is announced, CPU (utime+stime, reaped birdc children included) and RSS of the announcer and
# of BIRD over SECS seconds, three runs per interval, medians printed.
# Needs: bird2 python3 bc. Usage: scripts/bench/anycast.sh [seconds per run, default 30] [intervals, default "1000 250"]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-30}
INTERVALS=${2:-1000 250}
CLEANUP_WAIT=2
. scripts/bench/common.sh
BOX=127.77.0.1
ROUTER=127.77.0.2
ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
P_ORIGIN=$(free_port 127.0.0.1); P_BOX_BGP=$(free_port $BOX); P_ROUTER=$(free_port $ROUTER)

"$NODE" -e 'require("node:http").createServer((q, s) => s.end("x")).listen(Number(process.argv[1]), "127.0.0.1")' "$P_ORIGIN" & PIDS+=($!)
cat > "$T/router.conf" <<EOF
router id 10.255.0.2;
protocol device {}
protocol bgp box { local $ROUTER port $P_ROUTER as 64511; neighbor $BOX port $P_BOX_BGP as 64512; strict bind on; multihop 2;
  connect delay time 1; connect retry time 1; error wait time 1, 2; ipv4 { import all; export none; }; }
EOF
bird -f -c "$T/router.conf" -s "$T/router.ctl" & PIDS+=($!)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for INTERVAL in $INTERVALS; do
  : > "$T/ann-cpu"; : > "$T/ann-rss"; : > "$T/bird-cpu"; : > "$T/bird-rss"
  for run in 1 2 3; do
    TIMEOUT=$(( INTERVAL < 800 ? INTERVAL : 800 ))
    cat > "$T/cdn.toml" <<EOF
[edge]
name = "bench"
origin = "http://127.0.0.1:$P_ORIGIN"
store_dir = "$T/store"
[admin]
token = "bench-admin-token-0123456789"
[anycast]
service = "edge"
prefixes = ["198.51.100.0/24"]
local_as = 64512
router_id = "192.0.2.1"
interval_ms = $INTERVAL
timeout_ms = $TIMEOUT
run_dir = "$T/run"
[[anycast.neighbors]]
name = "router"
address = "$ROUTER"
as = 64511
port = $P_ROUTER
local_address = "$BOX"
local_port = $P_BOX_BGP
multihop = 2
EOF
    "$NODE" scripts/edge.ts --config "$T/cdn.toml" --host $BOX --port 0 > "$T/box.log" 2>&1 & BOXPID=$!
    for _ in $(seq 1 300); do birdc -s "$T/router.ctl" show route protocol box | grep -q 198.51.100.0/24 && break; sleep 0.1; done
    birdc -s "$T/router.ctl" show route protocol box | grep -q 198.51.100.0/24 || { cat "$T/box.log"; exit 1; }
    ANN=$(sed -n 's/.*announcer pid \([0-9]*\).*/\1/p' "$T/box.log" | tail -1)
    BIRD=$(sed -n 's/.*BIRD pid \([0-9]*\).*/\1/p' "$T/box.log" | tail -1)
    A0=$(ticks "$ANN"); B0=$(ticks "$BIRD")
    sleep "$SECS"
    A1=$(ticks "$ANN"); B1=$(ticks "$BIRD")
    HZ=$(getconf CLK_TCK)
    echo "scale=2; ($A1 - $A0) * 100 / $HZ / $SECS" | bc >> "$T/ann-cpu"
    echo "scale=2; ($B1 - $B0) * 100 / $HZ / $SECS" | bc >> "$T/bird-cpu"
    rss "$ANN" >> "$T/ann-rss"; rss "$BIRD" >> "$T/bird-rss"
    kill -TERM "$BOXPID"; wait "$BOXPID" || true
  done
  echo "interval_ms $INTERVAL: announcer $(median < "$T/ann-cpu") % of a core, $(median < "$T/ann-rss") kB RSS; BIRD $(median < "$T/bird-cpu") % of a core, $(median < "$T/bird-rss") kB RSS (medians of 3 × ${SECS} s)"
done
