# Sourced by the benchmarks that run one emulated-host scenario: how they
# report it. Both read $log (the scenario's log; the runner's own output is
# in $log.runner); bench_finish also reads $rc (the runner's exit status).

# The run's FLINT-METRIC lines as a table.
bench_metrics() {
    grep -a '^FLINT-METRIC' "$log" | tr -d '\r' | sed 's/^FLINT-METRIC //' | column -t || true
}

# A failed run still prints what it measured (call this last), then says so
# and exits 1.
bench_finish() {
    if ((rc)); then
        { grep -a 'FLINT-RESULT.*status=fail' "$log" | tr -d '\r' | sed 's/^/failed: /' || true; } >&2
        grep -a '^run: FAIL' "$log.runner" >&2 2>/dev/null || true
        echo "benchmark run failed (rc=$rc); log: $log" >&2
        exit 1
    fi
}
