# Block I/O benchmark, side by side in one emulated host on one backing
# file: fio on the host file directly, fio in the test guest under Flint
# three times (the default, through the host page cache: "flint"; with the
# direct option, O_DIRECT: "flint-direct"; and that without I/O
# batching: "flint-direct-nobatch"), and under QEMU (virtio-blk-pci,
# aio=io_uring) twice: cache=none (O_DIRECT, "qemu") and cache=writeback
# ("qemu-wb"). Same kernel, initramfs, vCPUs and memory. Each fio job gives
# IOPS, KiB/s, p50 and p99 completion latency. Prints FLINT-METRIC lines;
# never pass/fail on numbers.
RUNTIME=${RUNTIME:-10}
tools=${FLINT_DISK_GUESTTOOLS:?run with --disk guesttools=PATH}
data=$FLINT_WORK/data.img
dd if=/dev/zero of="$data" bs=1M count=256 conv=fsync 2>/dev/null
# Not quiet: if a guest resets (seen once under Flint: a second ready line,
# nothing else with quiet), its kernel output is in the log.
cmd="console=ttyS0 panic=-1 flint.runtime=$RUNTIME"

JOBS=5 # as in bench-blk-guest.sh
for job in "randread 4k 1" "randread 4k 32" "randwrite 4k 1" "randwrite 4k 32" "read 128k 8"; do
    set -- $job
    out=$(fio --name=bench --filename="$data" --rw="$1" --bs="$2" --iodepth="$3" \
        --ioengine=io_uring --direct=1 --runtime="$RUNTIME" --time_based \
        --output-format=terse --terse-version=3 2>&1 | tail -n 1)
    case $1 in *write*) base=47 ;; *) base=6 ;; esac
    pct() { echo "$out" | cut -d';' -f$(($base + 12))-$(($base + 31)) | tr ';' '\n' | sed -n "s/^$1%=//p" | head -n 1; }
    metric "host-$1-$2-qd$3-iops" "$(echo "$out" | cut -d';' -f$(($base + 2)))" iops
    metric "host-$1-$2-qd$3-bw" "$(echo "$out" | cut -d';' -f$(($base + 1)))" KiB/s
    metric "host-$1-$2-qd$3-p50" "$(pct 50.000000)" us
    metric "host-$1-$2-qd$3-p99" "$(pct 99.000000)" us
done

collect() { # NAME: guest boots and results -> metrics
    metric "$1-guest-boots" "$(grep -c 'FLINT-GUEST ready' "$FLINT_WORK/$1.console")" boots
    grep -a 'FLINT-GUEST result name=fio' "$FLINT_WORK/$1.console" | tr -d '\r' | while read -r _ _ name status iops bw _ p50 p99; do
        job=${name#name=fio-}
        metric "$1-$job-iops" "${iops#iops=}" iops
        metric "$1-$job-bw" "${bw#bw_kib=}" KiB/s
        metric "$1-$job-p50" "${p50#p50_us=}" us
        metric "$1-$job-p99" "${p99#p99_us=}" us
    done
    if grep -q 'FLINT-GUEST result name=fio.*status=fail' "$FLINT_WORK/$1.console" ||
        [ "$(grep -c 'FLINT-GUEST result name=fio.*status=pass' "$FLINT_WORK/$1.console")" != $JOBS ]; then
        result "$1-fio" fail "rc=$GUEST_RC"
    else
        result "$1-fio" pass
    fi
}

# run_guest NAME COMMAND...: one guest run, then its metrics. A run without
# every fio result is tried once more (in the emulated host a guest
# rarely resets early: QEMU -no-reboot then exits, Flint reboots it); the
# first try's console stays in NAME.try1.console and the log.
run_guest() {
    local name=$1 try
    for try in 1 2; do
        start_guest "$@"
        wait_exit "$name" $((RUNTIME * 3 + 180))
        [ "$(grep -c 'FLINT-GUEST result name=fio.*status=pass' "$FLINT_WORK/$name.console")" = $JOBS ] && break
        [ $try = 2 ] && break
        echo "bench: $name: no complete fio results (rc=$GUEST_RC, $(grep -c 'FLINT-GUEST ready' "$FLINT_WORK/$name.console") boots), running it once more"
        cp "$FLINT_WORK/$name.console" "$FLINT_WORK/$name.try1.console"
    done
    metric "$name-tries" "$try" runs
    collect "$name"
}

# NAME DISK-OPTIONS VMM-FLAGS; flint-direct-nobatch serves every kick and
# completion at once (--no-io-batching): the comparison for the event
# loop's batching (crates/vmm/src/loop_policy.rs).
for run in "flint" "flint-direct ,direct" "flint-direct-nobatch ,direct --no-io-batching"; do
    set -- $run
    run_guest "$1" "$FLINT_BIN" vmm ${3:-} --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
        --vcpus 2 --memory 512 --console stdio --disk "$data${2:-}" --disk "$tools,ro" \
        --disk "$FLINT_GUEST_SCRIPT_DISK,ro" --cmdline "$cmd"
done
for cache in none writeback; do
    name=qemu
    [ $cache = writeback ] && name=qemu-wb
    run_guest "$name" qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 512 -smp 2 \
        -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" -append "$cmd" \
        -drive "if=none,id=data,file=$data,format=raw,cache=$cache,aio=io_uring" -device virtio-blk-pci,drive=data \
        -drive "if=none,id=tools,file=$tools,format=raw,readonly=on" -device virtio-blk-pci,drive=tools \
        -drive "if=none,id=script,file=$FLINT_GUEST_SCRIPT_DISK,format=raw,readonly=on" -device virtio-blk-pci,drive=script \
        -nodefaults -serial stdio -display none -no-reboot
done
finish
