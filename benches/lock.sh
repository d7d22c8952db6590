# Sourced by the benchmarks: takes every e2e slot (tests/support/mod.rs), so
# a benchmark has the machine to itself; held until the script exits.
mkdir -p target
for slot in $(seq 0 $((${FLINT_E2E_SLOTS:-2} - 1))); do
    exec {fd}>"target/.e2e.lock.$slot"
    flock "$fd"
done
