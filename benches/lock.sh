# Sourced by the benchmarks: takes every e2e slot (tests/support/mod.rs), so
# a benchmark has the machine to itself; held until the script exits.
# FLINT_BENCH_SHARED=1 takes one free slot instead (another emulated host may
# run beside it: the ratios of one run still compare like with like).
mkdir -p target
slots=${FLINT_E2E_SLOTS:-2}
if [[ ${FLINT_BENCH_SHARED:-0} == 1 ]]; then
    until
        for slot in $(seq 0 $((slots - 1))); do
            exec {fd}>"target/.e2e.lock.$slot"
            flock -n "$fd" && break 2
            exec {fd}>&-
        done
        false
    do sleep 1; done
else
    for slot in $(seq 0 $((slots - 1))); do
        exec {fd}>"target/.e2e.lock.$slot"
        flock "$fd"
    done
fi
