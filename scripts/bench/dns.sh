#!/usr/bin/env bash
# GeoDNS benchmark (not a test): dnsperf over UDP against our Node host (twice: `ours` with batched UDP I/O through
# the native addon, `ours-dgram` with [dns] udp_io = "dgram", both running, timed one after the other), PowerDNS 4.7's GeoIP backend, Knot DNS 3.2
# with mod-geoip and gdnsd 3.8 with plugin_geoip: the same zone (the director's A and AAAA by the client's place, a
# static A, the SOA), the same MaxMind test database, one after the other on the same machine. Ours and PowerDNS sign
# online with one ECDSA P-256 key each, Knot signs its GeoIP answers when it loads them, gdnsd has no DNSSEC.
# Modes: unsigned (no DO bit) and signed (dnsperf -D), each without and with ECS. The ECS subnet is one the test
# database knows (checked first with the node's own lookup), and before any timing every server must answer the
# director differently for a European and an Asian subnet. The headline figure is each server's CPU time per answered
# query (user + system of its processes over the run, which moves little with what else the machine runs); queries/s
# and RSS are printed too. Then DoH requests/s with wrk (plain HTTP/1.1) and h2load (TLS + HTTP/2).
# Needs: dnsperf pdns-server pdns-backend-geoip knot knot-module-geoip gdnsd wrk nghttp2-client openssl.
# Usage: [RUNS=3] [SERVERS="ours ours-dgram gdnsd"] scripts/bench/dns.sh [seconds per run, default 10] [parrot-dns
# processes, default 1]; SERVERS picks which servers are timed (default all five); with RUNS > 1
# the UDP runs repeat (the servers' order rotating) and the medians are printed. For the fairest figures pin each
# server to a core of its own and dnsperf to another (taskset), as the issue's measurements did.
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
P_OURS=$(free_port); P_DGRAM=$(free_port); P_HTTP=$(free_port); P_HTTP2=$(free_port); P_TLS=$(free_port); P_PDNS=$(free_port); P_KNOT=$(free_port); P_GDNSD=$(free_port)
# One subnet per continent of the test database: Europe (London), North America (Milton, WA), Asia (Changchun).
EU_NET=81.2.69.160/27; NA_NET=216.160.83.56/29; AS_NET=175.16.199.0/24
# The ECS subnets must be in the test database, by the node's own lookup (src/geoip): else "with ECS" times a miss.
$NODE -e '
const { readFileSync } = require("node:fs");
(async () => {
  const { createGeoIp } = await import(process.cwd() + "/src/geoip/geoip.ts");
  const { mmdbSource } = await import(process.cwd() + "/src/geoip/mmdb.ts");
  const geo = createGeoIp([mmdbSource(readFileSync(process.argv[1]))]);
  for (const [net, want] of process.argv.slice(2).map((a) => a.split("="))) {
    const r = geo.lookup(net.split("/")[0]);
    const got = r?.info.continent;
    if (got !== want) { console.error(`ECS subnet ${net}: the test database says ${got ?? "nothing"}, not ${want}`); process.exit(1); }
    console.log(`ECS ${net}: ${r.info.city ?? "?"}, ${r.info.country}, ${got}, block /${r.locationPrefix}`);
  }
})();' "$CITY" "$EU_NET=EU" "$NA_NET=NA" "$AS_NET=AS"

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
records = [ { name = "www", type = "A", value = "192.0.2.80" } ]
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
ipv6 = "2001:db8::21"
lat = 51.51
lon = -0.13
[[edges]]
name = "na"
ipv4 = "192.0.2.22"
ipv6 = "2001:db8::22"
lat = 47.61
lon = -122.33
[[edges]]
name = "as"
ipv4 = "192.0.2.23"
ipv6 = "2001:db8::23"
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
    www.geo.example.org:
      - a: 192.0.2.80
    eu.edge.geo.example.org:
      - a: 192.0.2.21
      - a: 192.0.2.22
      - aaaa: 2001:db8::21
      - aaaa: 2001:db8::22
      - txt: "$TXT"
    na.edge.geo.example.org:
      - a: 192.0.2.22
      - a: 192.0.2.21
      - aaaa: 2001:db8::22
      - aaaa: 2001:db8::21
      - txt: "$TXT"
    as.edge.geo.example.org:
      - a: 192.0.2.23
      - a: 192.0.2.22
      - aaaa: 2001:db8::23
      - aaaa: 2001:db8::22
      - txt: "$TXT"
    unknown.edge.geo.example.org:
      - a: 192.0.2.22
      - a: 192.0.2.21
      - aaaa: 2001:db8::22
      - aaaa: 2001:db8::21
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

# Knot DNS: the same zone, mod-geoip by continent (the director's records in the zone answer unknown places), one UDP
# worker; signs with its own P-256 key (made here) when it loads the zone and the module.
mkdir -p "$T/knot"
cat > "$T/knot/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$P_KNOT
  rundir: $T/knot
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
  edns-client-subnet: on
log:
  - target: stderr
    any: warning
database:
  storage: $T/knot
policy:
  - id: p256
    algorithm: ecdsap256sha256
    single-type-signing: on
mod-geoip:
  - id: geo
    config-file: $T/knot/geo.conf
    ttl: 30
    mode: geodb
    geodb-file: $CITY
    geodb-key: [ continent/code ]
zone:
  - domain: geo.example.org
    file: $T/knot/geo.example.org.zone
    module: mod-geoip/geo
    dnssec-signing: on
    dnssec-policy: p256
CONF
cat > "$T/knot/geo.conf" <<CONF
director.geo.example.org:
  - geo: "EU"
    A: [ 192.0.2.21, 192.0.2.22 ]
    AAAA: [ "2001:db8::21", "2001:db8::22" ]
  - geo: "NA"
    A: [ 192.0.2.22, 192.0.2.21 ]
    AAAA: [ "2001:db8::22", "2001:db8::21" ]
  - geo: "AS"
    A: [ 192.0.2.23, 192.0.2.22 ]
    AAAA: [ "2001:db8::23", "2001:db8::22" ]
CONF
cat > "$T/knot/geo.example.org.zone" <<ZONE
\$TTL 30
@ SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 30
@ NS ns1.example.org.
@ NS ns2.example.org.
director A 192.0.2.22
director A 192.0.2.21
director AAAA 2001:db8::22
director AAAA 2001:db8::21
www A 192.0.2.80
ZONE
# The key must exist before the module loads (it signs its records then).
keymgr -c "$T/knot/knot.conf" geo.example.org generate algorithm=ecdsap256sha256 ksk=yes zsk=yes > "$T/knot/keymgr.log" 2>&1
knotd -c "$T/knot/knot.conf" > "$T/knot.log" 2>&1 &
PIDS+=($!); KNOT_PID=$!

# gdnsd: the same zone, plugin_geoip by continent (unknown places: the datacenters' order), one UDP thread; no DNSSEC.
mkdir -p "$T/gdnsd/zones" "$T/gdnsd/run" "$T/gdnsd/state"
cat > "$T/gdnsd/config" <<CONF
options => {
  listen => [ 127.0.0.1:$P_GDNSD ]
  run_dir => $T/gdnsd/run
  state_dir => $T/gdnsd/state
  udp_threads => 1
  tcp_threads => 1
}
plugins => {
  geoip => {
    maps => {
      bycontinent => {
        geoip2_db => $CITY
        datacenters => [ eu, na, as ]
        map => { EU => [ eu, na ], NA => [ na, eu ], AS => [ as, na ] }
      }
    }
    resources => {
      director => {
        map => bycontinent
        service_types => [ ]
        dcmap => {
          eu => { addrs_v4 => [ 192.0.2.21, 192.0.2.22 ], addrs_v6 => [ "2001:db8::21", "2001:db8::22" ] }
          na => { addrs_v4 => [ 192.0.2.22, 192.0.2.21 ], addrs_v6 => [ "2001:db8::22", "2001:db8::21" ] }
          as => { addrs_v4 => [ 192.0.2.23, 192.0.2.22 ], addrs_v6 => [ "2001:db8::23", "2001:db8::22" ] }
        }
      }
    }
  }
}
CONF
cat > "$T/gdnsd/zones/geo.example.org" <<ZONE
\$TTL 30
@ SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 30
@ NS ns1.example.org.
@ NS ns2.example.org.
director 30 DYNA geoip!director
www A 192.0.2.80
ZONE
gdnsd -c "$T/gdnsd" start > "$T/gdnsd.log" 2>&1 &
PIDS+=($!); GDNSD_PID=$!

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
# The same node with node:dgram (one system call and one call into JavaScript per datagram each way), for comparison
# (with QUERY_LOG=1 its log lines go to a file, not through the pipe).
sed 's/^query_log = /udp_io = "dgram"\nquery_log = /' "$T/cdn.toml" > "$T/cdn-dgram.toml"
$NODE scripts/dns.ts --config "$T/cdn-dgram.toml" --dns-port "$P_DGRAM" --port "$P_HTTP2" --workers "$WORKERS" > "$T/ours-dgram.log" 2>&1 &
PIDS+=($!); DGRAM_PID=$!
up() { dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" director.geo.example.org A >/dev/null 2>&1; }
for i in $(seq 100); do
  grep -q "^dns http " "$T/ours.log" && grep -q "^dns http " "$T/ours-dgram.log" && up "$P_OURS" && up "$P_DGRAM" && up "$P_PDNS" && up "$P_KNOT" && up "$P_GDNSD" && break
  sleep 0.2
done
grep -h "^dns udp+tcp" "$T/ours.log" "$T/ours-dgram.log"
declare -A PORT=([ours]=$P_OURS [ours-dgram]=$P_DGRAM [pdns]=$P_PDNS [knot]=$P_KNOT [gdnsd]=$P_GDNSD)
declare -A PID=([ours]=$OURS_PID [ours-dgram]=$DGRAM_PID [pdns]=$PDNS_PID [knot]=$KNOT_PID [gdnsd]=$GDNSD_PID)
SERVERS=${SERVERS:-ours ours-dgram pdns knot gdnsd}
# Before timing: each server answers the director by region (a European and an Asian subnet get different sets).
director() { dig +short +time=2 +tries=1 @127.0.0.1 -p "$1" +subnet="$2" director.geo.example.org A | sort | tr '\n' ' '; }
for who in $SERVERS; do
  eu=$(director "${PORT[$who]}" "$EU_NET"); na=$(director "${PORT[$who]}" "$NA_NET"); as=$(director "${PORT[$who]}" "$AS_NET")
  printf '%-6s director A: EU %-24s NA %-24s AS %s\n' "$who" "$eu" "$na" "$as"
  if [ -z "$eu" ] || [ "$eu" = "$as" ]; then echo "$who does not answer by region (EU and AS alike): not timing it" >&2; exit 1; fi
done
echo "txt:    ours $(dig +short @127.0.0.1 -p "$P_OURS" +subnet=$EU_NET director.geo.example.org TXT), pdns $(dig +short @127.0.0.1 -p "$P_PDNS" +subnet=$EU_NET director.geo.example.org TXT | tail -1)"
echo "signed: RRSIGs in a director A answer: ours $(dig +dnssec @127.0.0.1 -p "$P_OURS" director.geo.example.org A | grep -c 'IN.RRSIG'), pdns $(dig +dnssec @127.0.0.1 -p "$P_PDNS" director.geo.example.org A | grep -c 'IN.RRSIG'), knot $(dig +dnssec @127.0.0.1 -p "$P_KNOT" +subnet=$EU_NET director.geo.example.org A | grep -c 'IN.RRSIG')"

printf 'director.geo.example.org A\ndirector.geo.example.org AAAA\nwww.geo.example.org A\ngeo.example.org SOA\n' > "$T/queries"
# ECS $EU_NET as option 8: family 1, source prefix, scope 0, the address's first ceil(source / 8) bytes.
ECS="-E 8:$(python3 -c 'import sys, ipaddress; n = ipaddress.ip_network(sys.argv[1]); k = (n.prefixlen + 7) // 8; print("0001%02x00" % n.prefixlen + n.network_address.packed[:k].hex())' "$EU_NET")"
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
# Resident memory of a server's processes, and how much of it is private to them (RSS also counts the pages of the
# executable and libraries, which every process of the same binary shares: two node processes are not twice the RSS).
rss() { local t=0 u=0 p; for p in $(procs "$1"); do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); u=$((u + $(awk '/^Private_(Clean|Dirty)/ {s += $2} END {print s}' "/proc/$p/smaps_rollup"))); done; echo "$((t / 1024)) MB ($((u / 1024)) MB private)"; }
MODES="plain ecs signed signed-ecs"
declare -A R C
for run in $(seq "$RUNS"); do
  for mode in $MODES; do
    extra=""
    case $mode in ecs) extra="$ECS" ;; signed) extra="-D" ;; signed-ecs) extra="-D $ECS" ;; esac
    # Rotate which server goes first, so none always gets the fresher machine.
    order=$(echo $SERVERS | tr ' ' '\n' | awk -v r="$run" '{a[NR]=$0} END {for (i = 0; i < NR; i++) print a[(i + r - 1) % NR + 1]}')
    for who in $order; do
      [ "$who" = gdnsd ] && [ "${mode#signed}" != "$mode" ] && continue # no DNSSEC
      read -r q c < <(perf "${PID[$who]}" "${PORT[$who]}" "$extra")
      R[$who-$mode]="${R[$who-$mode]:-} $q"; C[$who-$mode]="${C[$who-$mode]:-} $c"
    done
  done
  echo "run $run: CPU µs/query $(for m in $MODES; do printf '%s %s  ' "$m" "$(for w in $SERVERS; do echo "${C[$w-$m]:-} -" | awk '{printf "%s/", ($1 == "-" ? "-" : $(NF-1))}'; done)"; done)"
done
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
echo
echo "server CPU per answered query, µs (median of $RUNS; lower is better), and queries/s:"
printf '%-11s' "UDP"; for w in $SERVERS; do printf '%18s' "$w"; done; printf '%14s\n' "ours/gdnsd"
for mode in $MODES; do
  printf '%-11s' "$mode"
  for w in $SERVERS; do
    c=$(echo "${C[$w-$mode]:-}" | median); q=$(echo "${R[$w-$mode]:-}" | median)
    printf '%18s' "$c ($(awk -v q="$q" 'BEGIN { if (q == "-") print "-"; else printf "%.0f", q }'))"
  done
  printf '%14s\n' "$(awk -v a="$(echo "${C[ours-$mode]:-}" | median)" -v b="$(echo "${C[gdnsd-$mode]:-}" | median)" 'BEGIN { if (b != "-" && b > 0) printf "%.2f", a / b; else print "-" }')"
done
echo "(µs of user + system CPU of the server's processes per completed query, and queries/s in parentheses)"
echo "parrot-dns processes: $WORKERS, query log: $QUERY_LOG"
echo "RSS after the UDP runs: parrot-dns $(rss $OURS_PID), with node:dgram $(rss $DGRAM_PID), PowerDNS $(rss $PDNS_PID), Knot $(rss $KNOT_PID), gdnsd $(rss $GDNSD_PID)"

Q=$(python3 -c 'import base64,struct; q=struct.pack(">HHHHHH",0,0x100,1,0,0,0)+b"".join(bytes([len(l)])+l for l in b"director.geo.example.org".split(b"."))+b"\0"+struct.pack(">HH",1,1); print(base64.urlsafe_b64encode(q).decode().rstrip("="))')
echo
echo "DoH plain HTTP/1.1 (wrk, 1 thread, 32 connections, GET):"
wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$P_HTTP/dns-query?dns=$Q" | grep -E "Requests/sec|Non-2xx|errors" || true
echo "DoH TLS + HTTP/2 (h2load, 8 connections x 16 streams, GET):"
h2load -D "$SECS" -c 8 -m 16 "https://127.0.0.1:$P_TLS/dns-query?dns=$Q" 2>&1 | grep -E "^finished in|^requests:|status codes" || true
echo "RSS at the end: parrot-dns $(rss $OURS_PID)"
