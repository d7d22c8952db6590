#!/usr/bin/env bash
# AMI boot benchmark: process start -> each boot stage (SeaBIOS, GRUB,
# kernel, userspace, login prompt) for the same image under Flint and under
# QEMU -M pc, side by side in one emulated KVM host. Prints numbers and
# ratios; never pass/fail.
#   benches/ami-boot.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
# Nothing else in emulated hosts meanwhile (benches/lock.sh).
source benches/lock.sh
image=$(images/build debian-12-test)/disk.raw
log=target/bench-ami.log
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 2700 --log "$log" \
    --disk "ami_flint=$image" --disk "ami_qemu=$image" \
    tests/scenarios/bench-ami.sh >/dev/null 2>&1 || { echo "benchmark run failed; log: $log" >&2; exit 1; }
value() { grep -a "name=$1 " "$log" | sed 's/.*value=\([0-9]*\).*/\1/'; }
printf '%-10s %10s %10s %8s\n' stage flint_ms qemu_ms ratio
prev_f=0 prev_q=0
for stage in firmware grub kernel userspace login; do
    f=$(value "flint-$stage") q=$(value "qemu-$stage")
    [[ -n $f && -n $q ]] || { printf '%-10s %10s %10s\n' "$stage" "${f:--}" "${q:--}"; continue; }
    awk -v s="$stage" -v f="$f" -v q="$q" -v pf="$prev_f" -v pq="$prev_q" \
        'BEGIN { printf "%-10s %10d %10d %8.2f   (stage alone: %d vs %d ms)\n", s, f, q, f / q, f - pf, q - pq }'
    prev_f=$f prev_q=$q
done
