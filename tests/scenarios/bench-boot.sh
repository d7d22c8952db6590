# Boot benchmark, side by side in one emulated host, same kernel + initramfs,
# 1 vCPU, 256 MiB, alternating VMMs each round so drift hits all alike:
#  - process start -> the guest /init's ready line
#  - VMM resident memory beyond guest RAM (RSS of all mappings except the
#    guest RAM mapping), sampled at the ready line
#  - flint: process start -> control socket answering GET /vm
ROUNDS=${ROUNDS:-3}
MEM=256
cmd="console=ttyS0 reboot=k panic=-1 flint.after=wait quiet"

# The kernel may merge the guest RAM mapping with an adjacent anonymous
# mapping of the same protection (Flint's 256 MiB RAM showed up as one
# 266252 KiB VMA), so the RAM mapping is the one of RAM_MIB up to RAM_MIB +
# 8 MiB; whatever a neighbour merged into it holds is not counted.
overhead_kib() { # PID RAM_MIB: RSS outside the guest RAM mapping
    awk -v ram=$(($2 * 1024)) '
        /^[0-9a-f]+-[0-9a-f]+ / { skip = 0 }
        /^Size:/ { skip = ($2 >= ram && $2 <= ram + 8192) }
        /^Rss:/ && !skip { rss += $2 }
        END { print rss + 0 }' "/proc/$1/smaps"
}

run_one() { # NAME COMMAND...
    local name=$1
    shift
    start_guest "$name" "$@"
    if wait_console "$name" 'FLINT-GUEST ready' 120; then
        echo "$WAITED_MS" >>"$FLINT_WORK/$name.boot"
        pid=$(cat "$FLINT_WORK/$name.pid")
        overhead_kib "$pid" "$MEM" >>"$FLINT_WORK/$name.rss"
    else
        result "$name-boot" fail
    fi
    stop_guest "$name"
    sleep 1
}

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for round in $(seq "$ROUNDS"); do
    echo "== round $round"
    run_one flint "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
        --memory $MEM --console stdio --cmdline "$cmd"
    run_one qemu-microvm qemu-system-x86_64 -M microvm,pit=on,pic=on,rtc=on -enable-kvm -cpu host \
        -m $MEM -smp 1 -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" -append "$cmd" \
        -nodefaults -serial stdio -display none -no-reboot
    run_one qemu-q35 qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m $MEM -smp 1 \
        -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" -append "$cmd" \
        -nodefaults -serial stdio -display none -no-reboot
    # Control socket readiness.
    sock=$FLINT_WORK/bench.sock
    start=$(now_ms)
    "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" --memory $MEM \
        --console "$FLINT_WORK/api.console" --api-socket "$sock" --cmdline "$cmd" &
    pid=$!
    until curl -s --max-time 1 --unix-socket "$sock" http://vm/vm >/dev/null 2>&1; do
        [ $(($(now_ms) - start)) -gt 10000 ] && break
        sleep 0.01
    done
    echo $(($(now_ms) - start)) >>"$FLINT_WORK/api.ready"
    kill -9 $pid
    wait $pid 2>/dev/null
done

for vmm in flint qemu-microvm qemu-q35; do
    [ -s "$FLINT_WORK/$vmm.boot" ] || continue
    metric "$vmm-boot-to-ready-median" "$(median "$FLINT_WORK/$vmm.boot")" ms
    metric "$vmm-overhead-rss-median" "$(median "$FLINT_WORK/$vmm.rss")" KiB
    result "$vmm-measured" pass "boots=$(tr '\n' ' ' <"$FLINT_WORK/$vmm.boot")"
done
metric flint-api-ready-median "$(median "$FLINT_WORK/api.ready")" ms
finish
