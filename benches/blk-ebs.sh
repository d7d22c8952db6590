#!/usr/bin/env bash
# EBS limits benchmark: fio in the guest under Flint on an unthrottled disk
# and on the same disk as a default gp3 volume (3,000 IOPS, 125 MiB/s),
# side by side in one emulated KVM host; the disk's EBS metrics read from
# the control socket while each guest runs. Prints numbers, the gp3 run's
# share of the unthrottled one and of gp3's limit; never pass/fail on
# numbers (the run fails only if a guest or an endpoint did).
#   benches/blk-ebs.sh [RUNTIME_SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
tools=$(images/build guest-tools)/tools.ext4
# Nothing else in emulated hosts meanwhile (benches/lock.sh).
source benches/lock.sh
source benches/report.sh
log=target/bench-blk-ebs.log
{ echo "RUNTIME=${1:-10}"; cat tests/scenarios/bench-blk-ebs.sh; } >target/bench-blk-ebs-scenario.sh
rc=0
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 1500 --log "$log" \
    --disk "guesttools=$tools" --guest-script tests/scenarios/bench-blk-guest.sh \
    target/bench-blk-ebs-scenario.sh >"$log.runner" 2>&1 || rc=$?
bench_metrics
value() { grep -a "name=$1 " "$log" | tr -d '\r' | sed 's/.*value=\([0-9.]*\).*/\1/' | tail -n 1 || true; }
# gp3's limits in the jobs' units: 3,000 IOPS; 125 MiB/s = 128,000 KiB/s.
for job in randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 randwrite-4k-qd32 read-128k-qd8; do
    for unit in iops bw; do
        f=$(value "flint-$job-$unit"); g=$(value "gp3-$job-$unit")
        limit=3000
        [[ $unit = bw ]] && limit=128000
        [[ -n $f$g ]] && awk -v j="$job-$unit" -v f="$f" -v g="$g" -v l="$limit" '
            function r(a, b) { return (a == "" || b == "" || b == 0) ? " n/a" : sprintf("%.2f", a / b) }
            BEGIN { printf "%-22s gp3/unthrottled %s  gp3/gp3-limit %s\n", j, r(g, f), r(g, l) }'
    done
done
bench_finish
