#!/usr/bin/env bash
# Boot benchmark: Flint vs QEMU (microvm, q35) in the same emulated KVM host,
# same kernel and initramfs. Prints medians and ratios; never pass/fail.
#   benches/boot.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
log=target/bench-boot.log
cat >target/bench-boot-scenario.sh <<SCEN
ROUNDS=${1:-3}
$(cat tests/scenarios/bench-boot.sh)
SCEN
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 1500 --log "$log" \
    target/bench-boot-scenario.sh >/dev/null 2>&1 || { echo "benchmark run failed; log: $log" >&2; exit 1; }
grep -a '^FLINT-METRIC' "$log" | sed 's/^FLINT-METRIC //' | column -t
value() { grep -a "name=$1 " "$log" | sed 's/.*value=\([0-9]*\).*/\1/'; }
flint=$(value flint-boot-to-ready-median)
for q in qemu-microvm qemu-q35; do
    other=$(value "$q-boot-to-ready-median")
    [[ -n $flint && -n $other ]] && awk -v f="$flint" -v o="$other" -v q="$q" \
        'BEGIN { printf "boot-to-ready: flint / %s = %.2f\n", q, f / o }'
done
