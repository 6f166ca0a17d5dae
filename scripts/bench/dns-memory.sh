#!/usr/bin/env bash
# DNS node memory (not a test): starts the node (`node [NODE_FLAGS] scripts/dns.ts`, from this checkout or from
# SRC=<another checkout>, to compare) with the GeoIP test data, prints its RSS, PSS and private memory idle and after
# dnsperf's four query mixes (the zone of scripts/bench/dns.sh: query log and rate limiting off) (plain, ECS, DO, DO + ECS; [seconds each], default 5) with the CPU per query of each,
# and V8's heap as /metrics shows it. RUNS=3 repeats it (alternate it with SRC=… yourself: the machine changes).
# EMBEDDED=1 leaves [geoip] out: the node then reads DB-IP's files from the npm packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
. scripts/bench/common.sh
SRC=${SRC:-$PWD}
CITY=$PWD/test/fixtures/GeoIP2-City-Test.mmdb
ASN=$PWD/test/fixtures/GeoLite2-ASN-Test.mmdb
$NODE scripts/dns.ts keygen --out "$T/csk.pem" >/dev/null
cat > "$T/cdn.toml" <<TOML
[admin]
token = "memory-bench-token-0123456789abcdef"
[dns]
zone = "geo.example.org"
nameservers = ["ns1.example.org", "ns2.example.org"]
hostmaster = "hostmaster.example.org"
ttl = 30
max_inflight = 4096
query_log = false
records = [ { name = "www", type = "A", value = "192.0.2.80" } ]
[dns.rrl]
rate = 0
[dns.dnssec]
keys = [ { file = "csk.pem", role = "csk" } ]
[dns.director]
name = "director"
answers = 2
default = ["na"]
$([ "${EMBEDDED:-0}" = 1 ] || printf '[geoip]\ncity = "%s"\nasn = "%s"\n' "$CITY" "$ASN")
[[edges]]
name = "eu"
ipv4 = "192.0.2.21"
lat = 51.51
lon = -0.13
[[edges]]
name = "na"
ipv4 = "192.0.2.22"
lat = 47.61
lon = -122.33
TOML
printf 'director.geo.example.org A\ndirector.geo.example.org AAAA\nwww.geo.example.org A\ngeo.example.org SOA\n' > "$T/queries"
ECS="-E 8:00011b00510245a0" # 81.2.69.160/27, London in the test database
mem() { awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_(Clean|Dirty)/ {v+=$2} END {printf "RSS %d MB, PSS %d MB, private %d MB", r/1024, p/1024, v/1024}' "/proc/$1/smaps_rollup"; }
heap() { curl -s -H "authorization: Bearer memory-bench-token-0123456789abcdef" "http://127.0.0.1:$1/metrics" |
  awk '/^parrot_dns_process_heap_(used|total)_bytes/ {sub(/\{.*\}/, "", $1); printf "%s %d MB  ", $1, $2 / 1048576}'; }
for run in $(seq "${RUNS:-1}"); do
  P=$(free_port); H=$(free_port)
  (cd "$SRC" && exec $NODE ${NODE_FLAGS:-} scripts/dns.ts --config "$T/cdn.toml" --dns-port "$P" --port "$H" > "$T/node.log" 2>&1) &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "^dns http " "$T/node.log" && break; sleep 0.2; done
  pid=$(sed -n 's/.* pid \([0-9]*\)$/\1/p' "$T/node.log" | head -1)
  sleep 2
  echo "run $run ($SRC, flags: ${NODE_FLAGS:-none}), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "  idle:       $(mem "$pid"); $(heap "$H")"
  for extra in "" "$ECS" "-D" "-D $ECS"; do
    b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$(dnsperf -s 127.0.0.1 -p "$P" -d "$T/queries" -l "$SECS" -c 4 -q 200 $extra 2>&1)
    a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    echo "$out" | awk -v t=$((a - b)) -v hz="$(getconf CLK_TCK)" -v x="${extra:-plain}" '/Queries completed/ {q=$3} /Queries per second/ {qps=$4}
      END {printf "  %-28s %.0f q/s, %.2f µs CPU per query\n", x, qps, t / hz * 1e6 / q}'
  done
  echo "  after load: $(mem "$pid"), peak RSS $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status") MB; $(heap "$H")"
  kill "$pid"; sleep 0.5
done
