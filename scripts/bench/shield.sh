#!/usr/bin/env bash
# Tiered-cache benchmark (not a test): origin bytes and requests per object for 1, 3 and 6 edges, without and with
# two shields (200 clients, a 1.5 GB object in 8 Range segments each), and the latency a shield hop adds on a HIT at
# the shield and on a MISS (p50/p99). Bare workerd boxes on loopback (scripts/bench/shield.ts says how).
# Usage: scripts/bench/shield.sh   env: SIZE (bytes, default 1500000000), CLIENTS (200), SEGMENTS (8), EDGES ("1 3 6"),
#        SHIELDS (2), REQUESTS (latency requests per case, 2000), ONLY=release|latency
# The boxes hold the object in their stores: each box needs SIZE bytes of disk under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PWD/node_modules/.bin/node" scripts/bench/shield.ts
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
