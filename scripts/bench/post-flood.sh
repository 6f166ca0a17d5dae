#!/usr/bin/env bash
# Client invalidation flood (not a test; issue 15, item 1): HIT throughput, the purge log's size and the edge's RSS
# before and after rounds of 750 POSTs to distinct 60 KB URLs (each one the origin accepts invalidates its URL).
# The edge (default config, bare workerd) on core 0; the origin, wrk and the POSTs on core 1.
# Needs: wrk curl python3. Usage: scripts/bench/post-flood.sh [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
. scripts/bench/common.sh
PO=$(free_port); PE=$(free_port); TOKEN=post-flood-token-0123456789
# The origin: a cacheable 1 KB GET; 200 to any POST (long URLs allowed).
taskset -c 1 "$NODE" --max-http-header-size=200000 -e '
  const body = Buffer.alloc(1024, 97);
  require("node:http").createServer((req, res) => { req.resume(); req.on("end", () => {
    if (req.method === "POST") { res.writeHead(200, { "content-length": 2 }); return res.end("ok"); }
    res.writeHead(200, { "cache-control": "max-age=3600", "content-length": body.length }); res.end(body); }); }).listen('"$PO"', "127.0.0.1");' &
PIDS+=($!)
printf '[edge]\norigin = "http://127.0.0.1:%s"\naccess_log = false\n[admin]\ntoken = "%s"\n' "$PO" "$TOKEN" > "$T/cdn.toml"
taskset -c 0 "$NODE" scripts/edge.ts --config "$T/cdn.toml" --port "$PE" --store "$T/store" > "$T/edge.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$PE/.well-known/cdn/health" && break; sleep 0.2; done
curl -s -o /dev/null "http://127.0.0.1:$PE/one"
# The workerd process (the largest of those whose command line names this run's folder; the other is its shell loop).
rss() { for p in $(pgrep -f "workerd serve.*$T" || true); do awk '/VmRSS/ {print int($2/1024)}' "/proc/$p/status"; done | sort -n | tail -1 | sed 's/$/ MB/'; }
hit() { taskset -c 1 wrk -t1 -c32 -d8s "http://127.0.0.1:$PE/one" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
log() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PE/.well-known/cdn/metrics" | awk '/^parrot_edge_purge_log_bytes/ {print $2}'; }
echo "before:   HIT $(hit) req/s, purge log $(log) bytes, edge RSS $(rss)"
for r in $(seq 1 "$ROUNDS"); do
  taskset -c 1 python3 - "$PE" "$r" <<'PY'
import sys, http.client
port, r, long = int(sys.argv[1]), sys.argv[2], "a" * 60000
for i in range(750):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", f"/p/{r}/{i}/{long}", body=b"x")
    res = c.getresponse(); res.read(); c.close()
    if res.status != 200: sys.exit(f"POST answered {res.status}")
PY
  echo "round $r: HIT $(hit) req/s, purge log $(log) bytes, edge RSS $(rss) (after 750 POSTs to distinct 60 KB URLs)"
done
