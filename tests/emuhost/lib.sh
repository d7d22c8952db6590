# Library for end-to-end scenario scripts; the runner loads it before the
# scenario, in the emulated host (busybox sh) and natively (dash) alike.
#
# Environment (from $FLINT_PAYLOAD/env, written by the runner):
#   FLINT_HOST       emulated | native
#   FLINT_BIN        the flint binary under test
#   FLINT_KERNEL     test kernel bzImage;  FLINT_VMLINUX  its ELF vmlinux
#   FLINT_INITRAMFS  test initramfs (busybox; see images/test-initramfs/init)
#   FLINT_DISK_<NAME> scratch copies of the runner's --disk NAME=PATH disks
#   FLINT_WORK       scratch directory for logs and files
#
# Output protocol (one line each, read by the runner and the Rust tests):
#   FLINT-RESULT name=NAME status=pass|fail [key=value...]
#   FLINT-METRIC name=NAME value=N unit=UNIT
#   [GUEST] ...      a guest's console, streamed live

. "$FLINT_PAYLOAD/env"
FLINT_WORK=${FLINT_WORK:-$FLINT_PAYLOAD/work}
mkdir -p "$FLINT_WORK"
: >"$FLINT_WORK/.results"

now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# result NAME pass|fail [key=value...]: with the emulated host's uptime
# (t=, seconds), so that a log shows where a scenario's time goes.
result() {
    local name=$1 status=$2
    shift 2
    echo "FLINT-RESULT name=$name status=$status $* t=$(cut -d. -f1 /proc/uptime)"
    echo "$status $name" >>"$FLINT_WORK/.results"
    [ "$status" = pass ]
}

# metric NAME VALUE UNIT
metric() { echo "FLINT-METRIC name=$1 value=$2 unit=$3"; }

# expect NAME COMMAND...: runs COMMAND, records pass or fail under NAME.
expect() {
    local name=$1
    shift
    if "$@" >"$FLINT_WORK/expect.out" 2>&1; then
        result "$name" pass
    else
        result "$name" fail "cmd=\"$*\" output=\"$(tr '\n' ' ' <"$FLINT_WORK/expect.out" | cut -c1-300)\""
    fi
}

# finish: exit status of the scenario. Fails when any result failed or when
# the scenario recorded no result at all (a scenario that checks nothing).
finish() {
    if [ ! -s "$FLINT_WORK/.results" ]; then
        echo "FLINT-RESULT name=scenario status=fail reason=no-results"
        exit 1
    fi
    if grep -q '^fail ' "$FLINT_WORK/.results"; then
        echo "scenario: $(grep -c '^fail ' "$FLINT_WORK/.results") failed: $(grep '^fail ' "$FLINT_WORK/.results" | cut -d' ' -f2 | tr '\n' ' ')"
        exit 1
    fi
    echo "scenario: $(grep -c '^pass ' "$FLINT_WORK/.results") passed"
    exit 0
}

# start_guest NAME COMMAND...: runs COMMAND (a VMM) in the background with
# its output in $FLINT_WORK/NAME.console, streamed live as "[NAME] ...".
start_guest() {
    local name=$1
    shift
    rm -f "$FLINT_WORK/$name.rc" "$FLINT_WORK/$name.pid"
    : >"$FLINT_WORK/$name.console"
    now_ms >"$FLINT_WORK/$name.start"
    (
        "$@" >"$FLINT_WORK/$name.console" 2>&1 </dev/null &
        echo $! >"$FLINT_WORK/$name.pid"
        wait $!
        echo $? >"$FLINT_WORK/$name.rc"
    ) &
    # Killing the tail ends the awk too (EOF).
    (
        tail -f -n +1 "$FLINT_WORK/$name.console" 2>/dev/null &
        echo $! >"$FLINT_WORK/$name.streamer"
        wait
    ) | awk -v p="[$name] " '{ print p $0; fflush() }' &
    while [ ! -s "$FLINT_WORK/$name.pid" ]; do sleep 0.05; done
}

# wait_console NAME PATTERN TIMEOUT_S: waits until the guest's console
# matches PATTERN (grep -E). Sets WAITED_MS (since start_guest). Returns 0
# when seen, 1 on timeout, 2 when the VMM exited first.
wait_console() {
    local name=$1 pattern=$2 deadline=$(($(now_ms) + $3 * 1000))
    while :; do
        if grep -qE "$pattern" "$FLINT_WORK/$name.console"; then
            WAITED_MS=$(($(now_ms) - $(cat "$FLINT_WORK/$name.start")))
            return 0
        fi
        if [ -e "$FLINT_WORK/$name.rc" ]; then
            # One last look: the line may have landed just before the exit.
            grep -qE "$pattern" "$FLINT_WORK/$name.console" && continue
            return 2
        fi
        [ "$(now_ms)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# wait_exit NAME TIMEOUT_S: waits for the VMM to exit; sets GUEST_RC.
# Returns 1 (after killing it) on timeout.
wait_exit() {
    local name=$1 deadline=$(($(now_ms) + $2 * 1000))
    while [ ! -e "$FLINT_WORK/$name.rc" ]; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            stop_guest "$name"
            GUEST_RC=timeout
            return 1
        fi
        sleep 0.1
    done
    sleep 0.3 # let the streamer print the last lines
    GUEST_RC=$(cat "$FLINT_WORK/$name.rc")
    kill "$(cat "$FLINT_WORK/$name.streamer")" 2>/dev/null
    return 0
}

# stop_guest NAME: kills the VMM and its console streamer.
stop_guest() {
    local name=$1
    kill -9 "$(cat "$FLINT_WORK/$name.pid")" 2>/dev/null
    sleep 0.3
    kill "$(cat "$FLINT_WORK/$name.streamer")" 2>/dev/null
}

# guest_script FILE: a test-initramfs scenario, encoded for flint.script=.
guest_script() { base64 <"$1" | tr -d '\n'; }
