# Sourced by the benchmarks (after they cd to the repository): the project's Node and tools on PATH, a temporary
# folder $T and the processes in PIDS, both cleaned up at exit, free ports, waiting for a server.
NODE=$PWD/node_modules/.bin/node
export PATH=$PWD/node_modules/.bin:$PATH
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep "${CLEANUP_WAIT:-1}"; rm -rf "$T"; }
trap cleanup EXIT
# A TCP port free on $1 (default 127.0.0.1) right now.
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('${1:-127.0.0.1}',0)); print(s.getsockname()[1])"; }
# Waits (30 s at most) until $1 answers a 2xx/3xx; curl -k: self-signed HTTPS counts.
wait_http() { for _ in $(seq 1 300); do curl -sfk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }
# Serves the ES-module worker $T/$1.js with bare workerd pinned to core 0 on 127.0.0.1:$2 (`$T/$1.capnp`, so
# `pgrep -f "serve $1.capnp"` finds it); $3 = net lets its fetch() reach the network.
serve_worker() {
  local name=$1 port=$2 outbound="" net="" workerd=$PWD/node_modules/workerd/bin/workerd
  if [ "${3:-}" = net ]; then outbound=', globalOutbound = "net"'; net=', (name = "net", network = (allow = ["public", "private"]))'; fi
  cat > "$T/$name.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = (modules = [(name = "$name.js", esModule = embed "$name.js")], compatibilityDate = "$(sed -n 's/^compatibility_date *= *"\(.*\)"/\1/p' wrangler.toml)"$outbound))$net],
  sockets = [(name = "http", address = "127.0.0.1:$port", http = (), service = "main")],
);
CAPNP
  (cd "$T" && exec taskset -c 0 "$workerd" serve "$name.capnp") & PIDS+=($!)
}
