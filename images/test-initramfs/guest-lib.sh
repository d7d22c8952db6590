# Helpers for scenario scripts inside the test guest: `. /lib/flint-guest.sh`.

# Prints one machine-readable line on the console.
guest_say() { echo "FLINT-GUEST $*" >/dev/console; }

# Milliseconds since the guest kernel started (10 ms resolution).
uptime_ms() {
    awk '{ printf "%d", $1 * 1000 }' /proc/uptime
}

# result NAME pass|fail [DETAIL...]
result() {
    local name=$1 status=$2
    shift 2
    guest_say "result name=$name status=$status $*"
    [ "$status" = pass ]
}

# check NAME COMMAND...: runs the command, reports pass/fail under NAME.
check() {
    local name=$1
    shift
    if "$@" >/tmp/check.out 2>&1; then
        result "$name" pass
    else
        result "$name" fail "cmd=\"$*\" output=\"$(tr '\n' ' ' </tmp/check.out | cut -c1-200)\""
    fi
}
