#!/usr/bin/env bash
# Host CPU per I/O of Flint's virtio-blk path: instructions per 4 KiB read,
# counted by callgrind in the device's own functions only (avail-ring
# processing, parsing, io_uring submission, completion, used ring and
# interrupt: QueueHandler::process_queue and ::handle_completions, and what
# they call), on the real io_uring engine and a temp file, for an
# unthrottled disk and one whose EBS limits never bind. Kernel time is not
# in it (callgrind sees user space only). Prints numbers; never pass/fail.
#   benches/blk-cpu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
bin=$(cargo test --release -p flint-vmm --lib --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "flint_vmm" and m["profile"]["test"]:
        print(m["executable"])')
[[ -x $bin ]] || { echo "blk-cpu: no test binary" >&2; exit 1; }
out=target/bench-blk-cpu
mkdir -p "$out"
# 2 rounds x 2 configurations x 19,200 reads (see the test).
requests=$((2 * 2 * 300 * 64))
for fn in process_queue handle_completions; do
    rm -f "$out/callgrind.$fn"
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$fn" \
        --toggle-collect="*QueueHandler*$fn*" \
        "$bin" bench_4k_reads_unthrottled_vs_limits_that_never_bind --ignored --nocapture --test-threads=1 \
        >"$out/$fn.log" 2>&1
done
total=0
for fn in process_queue handle_completions; do
    ir=$(callgrind_annotate "$out/callgrind.$fn" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
    printf '%-20s %12s instructions  %8d per request\n' "$fn" "$ir" $((ir / requests))
    total=$((total + ir))
done
printf '%-20s %12s instructions  %8d per request (%s requests)\n' "block path" "$total" \
    $((total / requests)) "$requests"
echo "FLINT-METRIC name=blk-instructions-per-request value=$((total / requests)) unit=instructions"
