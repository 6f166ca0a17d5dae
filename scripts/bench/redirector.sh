#!/usr/bin/env bash
# Redirector benchmark (not a test): decisions per second and CPU per decision with 300 mirrors and 100,000 files,
# the pure choice and whole answers (Request → 302 with Link headers, GeoIP lookup included), and the scan planning
# cost per mirror round; in one Node process pinned to one core (taskset -c 0). No network: HTTP costs are the
# edge's and the front door's (scripts/bench/edge.sh).
# Usage: scripts/bench/redirector.sh [seconds per phase, default 3]   env: MIRRORS (300), FILES (100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/common.sh
CLEANUP_WAIT=0
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c 0 "$NODE" scripts/bench/redirector-decisions.ts "${1:-3}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
