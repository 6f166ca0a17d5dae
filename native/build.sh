#!/usr/bin/env bash
# Builds native/udp-batch.node, the DNS node's batched UDP I/O (recvmmsg/sendmmsg), with g++ and Node's headers; run
# by `npm ci` (the root install script). Without a compiler or headers it says so and exits 0: the node then uses
# node:dgram and says so when it starts.
set -uo pipefail
cd "$(dirname "$0")"
out=udp-batch.node
headers=""
for d in ${npm_config_nodedir:+"$npm_config_nodedir/include/node"} "$(dirname "$(dirname "$(command -v node)")")/include/node" \
  /usr/include/node /usr/local/include/node; do
  if [ -f "$d/node_api.h" ] && [ -f "$d/uv.h" ]; then headers=$d; break; fi
done
if [ -z "$headers" ] || ! command -v g++ >/dev/null; then
  echo "native/build.sh: no g++ or no Node headers (node_api.h, uv.h): not building $out; the DNS node will use node:dgram" >&2
  exit 0
fi
# N-API 8 only (Node 12.22 on): the binary does not depend on the Node version it was built with.
if g++ -std=c++17 -O2 -Wall -shared -fPIC -DNAPI_VERSION=8 -I"$headers" -o "$out.tmp" udp-batch.cc; then
  mv "$out.tmp" "$out"
  echo "native/build.sh: built native/$out (headers $headers)"
else
  rm -f "$out.tmp"
  echo "native/build.sh: the build failed: the DNS node will use node:dgram" >&2
fi
exit 0
