#!/usr/bin/env bash
# Boot benchmark: Flint vs QEMU (microvm, q35) in the same emulated KVM host,
# same kernel and initramfs. Prints medians and ratios; never pass/fail.
#   benches/boot.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
# Nothing else in emulated hosts meanwhile (benches/lock.sh).
source benches/lock.sh
source benches/report.sh
log=target/bench-boot.log
cat >target/bench-boot-scenario.sh <<SCEN
ROUNDS=${1:-3}
$(cat tests/scenarios/bench-boot.sh)
SCEN
rc=0
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 1500 --log "$log" \
    target/bench-boot-scenario.sh >"$log.runner" 2>&1 || rc=$?
bench_metrics
value() { grep -a "name=$1 " "$log" | sed 's/.*value=\([0-9]*\).*/\1/' || true; }
flint=$(value flint-boot-to-ready-median)
for q in qemu-microvm qemu-q35; do
    other=$(value "$q-boot-to-ready-median")
    [[ -n $flint && -n $other ]] && awk -v f="$flint" -v o="$other" -v q="$q" \
        'BEGIN { printf "boot-to-ready: flint / %s = %.2f\n", q, f / o }'
done
bench_finish
