#!/usr/bin/env bash
# A 2-node Ray cluster on this machine's loopback, then a weight-decay search on it.
#
# The head listens on 127.0.0.2 and the second node on 127.0.0.3 (Ray rewrites 127.0.0.1, so
# two nodes on 127.0.0.1 would look like one); each offers 1 CPU, so the search's trials
# must spread over both nodes. The script fails unless trials ran on both addresses. Both
# nodes are stopped on exit, also on failure.
#
#   make ray-cluster          (or: PATH=.venv/bin:$PATH bash scripts/ray_two_nodes.sh)
set -euo pipefail

PORT=${PORT:-6390}
OUT=${OUT:-runs/ray-two-nodes}
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0

trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
ray stop --force >/dev/null 2>&1 || true

ray start --head --node-ip-address=127.0.0.2 --port="$PORT" --num-cpus=1 \
    --include-dashboard=false --object-store-memory=100000000 --disable-usage-stats
ray start --address="127.0.0.2:$PORT" --node-ip-address=127.0.0.3 --num-cpus=1 \
    --object-store-memory=100000000 --disable-usage-stats

python - "$PORT" <<'EOF'
import sys, time
import ray

ray.init(address=f"127.0.0.2:{sys.argv[1]}", log_to_driver=False)
for _ in range(60):
    alive = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
    if len(alive) == 2:
        break
    time.sleep(1)
print("nodes alive:", sorted(alive))
assert len(alive) == 2, "the second node did not join"
EOF

rm -rf "$OUT"
disciplined search wd digits --max-lr 0.1 --epochs 3 --executor ray \
    --ray-address "127.0.0.2:$PORT" --out "$OUT"

python - "$OUT/search.json" <<'EOF'
import json, sys
from collections import Counter

search = json.load(open(sys.argv[1]))
workers = Counter(t["worker"] for c in search["comparisons"] for t in c["results"])
print("trials per node:", dict(workers))
assert set(workers) == {"127.0.0.2", "127.0.0.3"}, f"expected both nodes, got {workers}"
print("ok: the trials ran on both nodes")
EOF
