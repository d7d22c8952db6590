#!/usr/bin/env bash
# Network benchmark: TCP throughput guest<->host through a TAP, Flint vs
# QEMU (virtio-net-pci, tap), and the metadata service's requests per
# second and latency from inside the guest (Flint), side by side in one
# emulated KVM host. Prints numbers and ratios; never pass/fail.
#   benches/net.sh [REQUESTS [MIB]]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
# Nothing else in emulated hosts meanwhile (benches/lock.sh).
source benches/lock.sh
log=target/bench-net.log
{ echo "N=${1:-200}"; echo "MB=${2:-256}"; cat tests/scenarios/bench-net.sh; } >target/bench-net-scenario.sh
FLINT_BIN=$PWD/target/release/flint tests/emuhost/run --timeout 1500 --log "$log" \
    --guest-script tests/scenarios/bench-net-guest.sh \
    target/bench-net-scenario.sh >/dev/null 2>&1 || { echo "benchmark run failed; log: $log" >&2; exit 1; }
grep -a '^FLINT-METRIC' "$log" | sed 's/^FLINT-METRIC //' | column -t
value() { grep -a "name=$1 " "$log" | sed 's/.*value=\([0-9]*\).*/\1/'; }
for m in tcp-guest-to-host tcp-host-to-guest; do
    f=$(value "flint-$m") q=$(value "qemu-$m")
    [[ -n $f && -n $q && $q != 0 ]] && awk -v m="$m" -v f="$f" -v q="$q" 'BEGIN { printf "%-20s flint/qemu %.2f\n", m, f / q }'
done
