#!/usr/bin/env bash
# GeoDNS benchmark (not a test): dnsperf over UDP against our Node host and against PowerDNS 4.7's GeoIP backend,
# same zone, same MaxMind test database, same machine, one after the other, both zones signed online with one ECDSA
# P-256 key (ours from [dns.dnssec], PowerDNS's from `pdnsutil secure-zone`): unsigned (no DO bit) and signed
# (dnsperf -D) queries, with and without ECS; then DoH requests/s with wrk (plain HTTP/1.1) and h2load (TLS +
# HTTP/2). Needs: dnsperf pdns-server pdns-backend-geoip wrk nghttp2-client openssl.
# Besides queries/s (which moves with whatever else the machine runs), it prints each server's CPU time per answered
# query, which does not. Usage: [RUNS=3] scripts/bench/dns.sh [seconds per run, default 10] [parrot-dns processes,
# default 1]; with RUNS > 1 the UDP runs repeat (servers alternating) and the medians are printed.
# The query log is off ([dns] query_log = false) unless QUERY_LOG=1: then every query's JSON line goes to a file,
# to see what logging costs. Response rate limiting is off (one client sends everything). Edges have no url here, so
# no health probes run.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
RUNS=${RUNS:-1}
QUERY_LOG=$([ "${QUERY_LOG:-0}" = 1 ] && echo true || echo false)
WORKERS=${2:-1}
. scripts/bench/common.sh
CITY=$PWD/test/fixtures/GeoIP2-City-Test.mmdb
ASN=$PWD/test/fixtures/GeoLite2-ASN-Test.mmdb
TXT='ip %ip %af city %ci country %cc %co state %cn region %re name %na as %as'
P_OURS=$(free_port); P_HTTP=$(free_port); P_TLS=$(free_port); P_PDNS=$(free_port)

$NODE scripts/dns.ts keygen --out "$T/csk.pem" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
cat > "$T/cdn.toml" <<TOML
[dns]
zone = "geo.example.org"
ttl = 30
nameservers = ["ns1.example.org", "ns2.example.org"]
hostmaster = "hostmaster.example.org"
tls_cert = "cert.pem"
tls_key = "key.pem"
max_inflight = 4096
query_log = $QUERY_LOG
[dns.rrl]
rate = 0
[dns.dnssec]
keys = [ { file = "csk.pem", role = "csk" } ]
[dns.director]
name = "director"
answers = 2
txt = "$TXT"
default = ["na"]
[geoip]
city = "$CITY"
asn = "$ASN"
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
[[edges]]
name = "as"
ipv4 = "192.0.2.23"
lat = 39.9
lon = 116.4
TOML

# PowerDNS: the same zone, edges chosen by continent (its GeoIP backend has no distance ordering).
cat > "$T/zone.yaml" <<YAML
domains:
- domain: geo.example.org
  ttl: 30
  records:
    geo.example.org:
      - soa: ns1.example.org hostmaster.example.org 1 3600 600 604800 30
      - ns: ns1.example.org
      - ns: ns2.example.org
    eu.edge.geo.example.org:
      - a: 192.0.2.21
      - a: 192.0.2.22
      - txt: "$TXT"
    na.edge.geo.example.org:
      - a: 192.0.2.22
      - a: 192.0.2.21
      - txt: "$TXT"
    as.edge.geo.example.org:
      - a: 192.0.2.23
      - a: 192.0.2.22
      - txt: "$TXT"
    unknown.edge.geo.example.org:
      - a: 192.0.2.22
      - a: 192.0.2.21
      - txt: "$TXT"
  services:
    director.geo.example.org: '%cn.edge.geo.example.org'
YAML
mkdir -p "$T/pdns" "$T/pdns-keys"
cat > "$T/pdns/pdns.conf" <<CONF
launch=geoip
geoip-zones-file=$T/zone.yaml
geoip-database-files=mmdb:$CITY
geoip-dnssec-keydir=$T/pdns-keys
local-address=127.0.0.1:$P_PDNS
edns-subnet-processing=yes
log-dns-queries=no
loglevel=3
daemon=no
guardian=no
disable-syslog=yes
write-pid=no
socket-dir=$T/pdns
CONF
# Live signing: a CSK (ECDSA P-256, algorithm 13) that PowerDNS's GeoIP backend keeps in its key directory.
pdnsutil --config-dir="$T/pdns" secure-zone geo.example.org > "$T/pdnsutil.log" 2>&1
/usr/sbin/pdns_server --config-dir="$T/pdns" > "$T/pdns.log" 2>&1 &
PIDS+=($!); PDNS_PID=$!
if [ "$QUERY_LOG" = true ]; then
  # Log lines go through a pipe (as to a log shipper) and are dropped; the rest is kept in ours.log.
  mkfifo "$T/out"
  grep --line-buffered -v '^{' < "$T/out" > "$T/ours.log" &
  PIDS+=($!)
  $NODE scripts/dns.ts --config "$T/cdn.toml" --dns-port "$P_OURS" --port "$P_HTTP" --tls-port "$P_TLS" --workers "$WORKERS" > "$T/out" 2>&1 &
else
  $NODE scripts/dns.ts --config "$T/cdn.toml" --dns-port "$P_OURS" --port "$P_HTTP" --tls-port "$P_TLS" --workers "$WORKERS" > "$T/ours.log" 2>&1 &
fi
PIDS+=($!); OURS_PID=$!
for i in $(seq 100); do
  grep -q "^dns http " "$T/ours.log" && dig +short +time=1 +tries=1 @127.0.0.1 -p "$P_PDNS" director.geo.example.org A >/dev/null 2>&1 &&
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$P_OURS" director.geo.example.org A >/dev/null 2>&1 && break
  sleep 0.2
done
echo "ours:   $(dig +short @127.0.0.1 -p "$P_OURS" +subnet=81.2.69.142/32 director.geo.example.org TXT)"
echo "pdns:   $(dig +short @127.0.0.1 -p "$P_PDNS" +subnet=81.2.69.142/32 director.geo.example.org TXT | tail -1)"
echo "signed: ours $(dig +dnssec @127.0.0.1 -p "$P_OURS" director.geo.example.org A | grep -c 'IN.RRSIG') RRSIG, pdns $(dig +dnssec @127.0.0.1 -p "$P_PDNS" director.geo.example.org A | grep -c 'IN.RRSIG') RRSIG in a director A answer"

printf 'director.geo.example.org A\ndirector.geo.example.org TXT\nwww.geo.example.org A\ngeo.example.org SOA\n' > "$T/queries"
# ECS 81.2.69.0/24 (family 1, source 24): option 8.
ECS="-E 8:00011800510245"
# A server's processes: the one started and its children (parrot-dns --workers).
procs() { echo "$1"; ps --ppid "$1" -o pid= 2>/dev/null || true; }
cpu_ticks() { local t=0 p; for p in $(procs "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
TICK=$(getconf CLK_TCK)
perf() { # pid port extra → "queries/s µs-CPU-per-query"
  local before after out
  before=$(cpu_ticks "$1")
  out=$(dnsperf -s 127.0.0.1 -p "$2" -d "$T/queries" -l "$SECS" -c 4 -q 200 $3 2>&1)
  after=$(cpu_ticks "$1")
  echo "$out" | awk -v t=$((after - before)) -v hz="$TICK" '/Queries completed/ {q=$3} /Queries per second/ {qps=$4}
    END {printf "%s %.1f\n", qps, (q > 0 ? t / hz * 1e6 / q : 0)}'
}
rss() { local t=0 p; for p in $(procs "$1"); do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$((t / 1024)) MB"; }
MODES="plain ecs signed signed-ecs"
declare -A R C
for run in $(seq "$RUNS"); do
  for mode in $MODES; do
    extra=""
    case $mode in ecs) extra="$ECS" ;; signed) extra="-D" ;; signed-ecs) extra="-D $ECS" ;; esac
    # Alternate which server goes first, so neither always gets the fresher machine.
    for who in $([ $((run % 2)) = 1 ] && echo "ours pdns" || echo "pdns ours"); do
      if [ "$who" = ours ]; then read -r q c < <(perf "$OURS_PID" "$P_OURS" "$extra"); else read -r q c < <(perf "$PDNS_PID" "$P_PDNS" "$extra"); fi
      R[$who-$mode]="${R[$who-$mode]:-} $q"; C[$who-$mode]="${C[$who-$mode]:-} $c"
    done
  done
  echo "run $run: $(for m in $MODES; do printf '%s %s/%s  ' "$m" "$(echo ${R[ours-$m]} | awk '{print $NF}')" "$(echo ${R[pdns-$m]} | awk '{print $NF}')"; done)"
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
echo
printf '%-11s %14s %14s %8s   %s\n' "UDP ($RUNS)" "parrot-dns" "PowerDNS 4.7" "ratio" "server CPU µs/query (parrot-dns / PowerDNS, ratio)"
for mode in $MODES; do
  qo=$(echo "${R[ours-$mode]}" | median); qp=$(echo "${R[pdns-$mode]}" | median)
  co=$(echo "${C[ours-$mode]}" | median); cp=$(echo "${C[pdns-$mode]}" | median)
  printf '%-11s %14s %14s %8s   %s / %s (%s)\n' "$mode" "$qo" "$qp" "$(awk -v a="$qo" -v b="$qp" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')" \
    "$co" "$cp" "$(awk -v a="$co" -v b="$cp" 'BEGIN{ if (a>0) printf "%.2f", b/a; else print "-" }')"
done
echo "(medians of $RUNS runs; queries/s ratio = parrot-dns / PowerDNS; CPU ratio = PowerDNS / parrot-dns, higher is better for parrot-dns)"
echo "parrot-dns processes: $WORKERS, query log: $QUERY_LOG"
echo "RSS after UDP runs: parrot-dns $(rss $OURS_PID), PowerDNS $(rss $PDNS_PID)"

Q=$(python3 -c 'import base64,struct; q=struct.pack(">HHHHHH",0,0x100,1,0,0,0)+b"".join(bytes([len(l)])+l for l in b"director.geo.example.org".split(b"."))+b"\0"+struct.pack(">HH",1,1); print(base64.urlsafe_b64encode(q).decode().rstrip("="))')
echo
echo "DoH plain HTTP/1.1 (wrk, 1 thread, 32 connections, GET):"
wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$P_HTTP/dns-query?dns=$Q" | grep -E "Requests/sec|Non-2xx|errors" || true
echo "DoH TLS + HTTP/2 (h2load, 8 connections x 16 streams, GET):"
h2load -D "$SECS" -c 8 -m 16 "https://127.0.0.1:$P_TLS/dns-query?dns=$Q" 2>&1 | grep -E "^finished in|^requests:|status codes" || true
echo "RSS at the end: parrot-dns $(rss $OURS_PID)"
