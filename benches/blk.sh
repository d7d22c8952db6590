#!/usr/bin/env bash
# Block I/O benchmark: fio on the host file vs in the guest under Flint
# (page cache; O_DIRECT with the direct option, with and without I/O
# batching) vs under QEMU
# (virtio-blk-pci, aio=io_uring; cache=none and cache=writeback), side by
# side in one emulated KVM host: 4k random read/write at qd1 and qd32, 128k
# sequential reads; IOPS, KiB/s, p50/p99 latency. Prints numbers and
# ratios; never pass/fail. benches/blk-cpu.sh gives the host CPU cost.
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
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 2100 --log "$log" \
    --disk "guesttools=$tools" --guest-script tests/scenarios/bench-blk-guest.sh \
    target/bench-blk-scenario.sh >"$log.runner" 2>&1 || rc=$?
bench_metrics
value() { grep -a "name=$1 " "$log" | sed 's/.*value=\([0-9.]*\).*/\1/' | tail -n 1 || true; }
# Ratios: throughput as flint/other (higher is better), latency as
# other/flint (higher is better too). flint-direct vs qemu (cache=none) is
# like for like: both O_DIRECT.
for job in randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 randwrite-4k-qd32 read-128k-qd8; do
    for unit in iops bw p50 p99; do
        h=$(value "host-$job-$unit"); f=$(value "flint-$job-$unit"); d=$(value "flint-direct-$job-$unit")
        n=$(value "flint-direct-nobatch-$job-$unit")
        q=$(value "qemu-$job-$unit"); w=$(value "qemu-wb-$job-$unit")
        [[ -n $f$d$q$w ]] && awk -v j="$job-$unit" -v u="$unit" -v h="$h" -v f="$f" -v d="$d" -v n="$n" -v q="$q" -v w="$w" '
            function r(a, b) {
                if (a == "" || b == "" || a == 0 || b == 0) return "  n/a"
                return sprintf("%5.2f", (u ~ /^p/) ? b / a : a / b)
            }
            BEGIN { printf "%-22s flint/host %s  direct/host %s  qemu/host %s  direct/qemu %s  flint/qemu-wb %s  direct/nobatch %s\n",
                j, r(f, h), r(d, h), r(q, h), r(d, q), r(f, w), r(d, n) }'
    done
done
bench_finish
