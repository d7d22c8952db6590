# EBS limits benchmark, side by side in one emulated host on one backing
# file: the same fio jobs in the test guest under Flint on an unthrottled
# disk ("flint") and on the same disk as a default gp3 volume ("gp3":
# 3,000 IOPS, 125 MiB/s). While each guest runs, the disk's EBS metrics are
# read from the per-VM control socket (GET /vm/disks/data/metrics, and the
# Prometheus text once). Prints FLINT-METRIC lines; never pass/fail on
# numbers.
RUNTIME=${RUNTIME:-10}
JOBS=5 # as in bench-blk-guest.sh
tools=${FLINT_DISK_GUESTTOOLS:?run with --disk guesttools=PATH}
data=$FLINT_WORK/data.img
dd if=/dev/zero of="$data" bs=1M count=256 conv=fsync 2>/dev/null
cmd="console=ttyS0 panic=-1 flint.runtime=$RUNTIME"

# poll_metrics NAME SOCKET: keeps the last metrics reply until NAME exits.
poll_metrics() {
    local name=$1 sock=$2
    while [ ! -e "$FLINT_WORK/$name.rc" ]; do
        if curl -s --max-time 2 --unix-socket "$sock" http://vm/vm/disks/data/metrics \
            -o "$FLINT_WORK/$name.metrics.tmp" 2>/dev/null; then
            mv "$FLINT_WORK/$name.metrics.tmp" "$FLINT_WORK/$name.metrics.json"
        fi
        [ -s "$FLINT_WORK/$name.prom" ] ||
            curl -s --max-time 2 --unix-socket "$sock" http://vm/vm/metrics \
                -o "$FLINT_WORK/$name.prom" 2>/dev/null
        sleep 1
    done
}

# json_field FILE KEY: a number (or null) from the flat metrics object.
json_field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

collect() { # NAME
    local name=$1 job
    grep -a 'FLINT-GUEST result name=fio' "$FLINT_WORK/$name.console" | while read -r _ _ rname status iops bw _; do
        job=${rname#name=fio-}
        metric "$name-$job-iops" "${iops#iops=}" iops
        metric "$name-$job-bw" "${bw#bw_kib=}" KiB/s
    done
    if [ -s "$FLINT_WORK/$name.metrics.json" ]; then
        for key in VolumeReadOps VolumeThrottledOps VolumeThrottledBytes; do
            metric "$name-$key" "$(json_field "$FLINT_WORK/$name.metrics.json" $key)" count
        done
        metric "$name-VolumeTotalReadTime" "$(json_field "$FLINT_WORK/$name.metrics.json" VolumeTotalReadTime)" s
        result "$name-metrics-endpoint" pass
    else
        result "$name-metrics-endpoint" fail "no reply from GET /vm/disks/data/metrics"
    fi
    if grep -q '^flint_volume_read_ops_total{volume_id="data"}' "$FLINT_WORK/$name.prom" 2>/dev/null; then
        result "$name-prometheus-endpoint" pass
    else
        result "$name-prometheus-endpoint" fail "no data series in GET /vm/metrics"
    fi
    if [ "$(grep -c 'FLINT-GUEST result name=fio.*status=pass' "$FLINT_WORK/$name.console")" = $JOBS ]; then
        result "$name-fio" pass
    else
        result "$name-fio" fail "rc=$GUEST_RC"
    fi
}

# run_guest NAME DISK_SPEC: one guest run (tried once more without three fio
# results: a guest in the emulated host rarely resets early), then metrics.
run_guest() {
    local name=$1 disk=$2 try poller sock="$FLINT_WORK/$1.sock"
    for try in 1 2; do
        rm -f "$FLINT_WORK/$name.metrics.json" "$FLINT_WORK/$name.prom"
        start_guest "$name" "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
            --vcpus 2 --memory 512 --console stdio --api-socket "$sock" \
            --disk "$disk" --disk "$tools,ro" --disk "$FLINT_GUEST_SCRIPT_DISK,ro" --cmdline "$cmd"
        poll_metrics "$name" "$sock" &
        poller=$!
        wait_exit "$name" $((RUNTIME * 3 + 180))
        wait "$poller"
        [ "$(grep -c 'FLINT-GUEST result name=fio.*status=pass' "$FLINT_WORK/$name.console")" = $JOBS ] && break
        [ $try = 2 ] && break
        echo "bench: $name: no complete fio results (rc=$GUEST_RC), running it once more"
        cp "$FLINT_WORK/$name.console" "$FLINT_WORK/$name.try1.console"
    done
    metric "$name-tries" "$try" runs
    collect "$name"
}

run_guest flint "$data,id=data"
run_guest gp3 "$data,id=data,type=gp3,size_gib=100"
finish
