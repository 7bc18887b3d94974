#!/usr/bin/env bash
# What the GraphQL traffic-control filter (plugins/graphql/src/filter.rs)
# costs per operation on operations of 12, 23 and 30 fields: the whole
# on_request phase, the limits check alone, an APQ hit, and a first-seen
# document (parse + analysis). Release build; one thread; prints ns/op
# (median of 7 rounds of ITERS operations, default 20000).
#
#   bash bench/graphql_limits.sh            # ITERS=100000 bash bench/graphql_limits.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q -p covet-graphql --example graphql-limits
"$CARGO_TARGET_DIR/release/examples/graphql-limits"
