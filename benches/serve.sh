#!/usr/bin/env bash
# flint serve benchmark: RunInstances -> running latency (excluding the
# guest's boot: the stand-in VMM), DescribeInstances latency with 1,000
# instance records, API requests per second on the Unix socket. Runs on
# this machine (no VMs, no emulated host). Prints numbers; never pass/fail.
#   benches/serve.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo >/dev/null || source "$HOME/.cargo/env"
cargo build --release --quiet
venv=${FLINT_VENV:-${FLINT_CACHE_DIR:-/var/cache/flint}/venv}
[[ -x $venv/bin/python3 ]] || { echo "serve bench: run scripts/install-deps first (needs $venv)" >&2; exit 1; }
ami=$(images/build debian-12-test)/disk.raw
FLINT_BIN=$PWD/target/release/flint FLINT_STANDIN=$PWD/tests/support/standin_vmm.py \
    FLINT_BENCH_AMI=$ami "$venv/bin/python3" benches/serve_bench.py
