#!/usr/bin/env bash
# Block I/O benchmark: fio on the host file vs in the guest under Flint vs
# under QEMU (virtio-blk-pci, aio=io_uring; cache=none and cache=writeback),
# side by side in one emulated KVM host. Prints numbers and ratios; never
# pass/fail.
#   benches/blk.sh [RUNTIME_SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
tools=$(images/build guest-tools)/tools.ext4
# Nothing else in emulated hosts meanwhile (benches/lock.sh).
source benches/lock.sh
source benches/report.sh
log=target/bench-blk.log
{ echo "RUNTIME=${1:-10}"; cat tests/scenarios/bench-blk.sh; } >target/bench-blk-scenario.sh
rc=0
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 1500 --log "$log" \
    --disk "guesttools=$tools" --guest-script tests/scenarios/bench-blk-guest.sh \
    target/bench-blk-scenario.sh >"$log.runner" 2>&1 || rc=$?
bench_metrics
value() { grep -a "name=$1 " "$log" | sed 's/.*value=\([0-9]*\).*/\1/' || true; }
for job in randread-4k-qd1 randread-4k-qd32 read-128k-qd8; do
    for unit in iops bw; do
        h=$(value "host-$job-$unit"); f=$(value "flint-$job-$unit")
        q=$(value "qemu-$job-$unit"); w=$(value "qemu-wb-$job-$unit")
        [[ -n $f$q$w ]] && awk -v j="$job-$unit" -v h="$h" -v f="$f" -v q="$q" -v w="$w" '
            function r(a, b) { return (a == "" || b == "" || b == 0) ? " n/a" : sprintf("%.2f", a / b) }
            BEGIN { printf "%-22s flint/host %s  qemu/host %s  flint/qemu %s  flint/qemu-wb %s\n", j, r(f, h), r(q, h), r(f, q), r(f, w) }'
    done
done
bench_finish
