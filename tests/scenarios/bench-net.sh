# Network benchmark, side by side in one emulated host: the test guest on a
# TAP under Flint (virtio-net + its link services) and under QEMU
# (virtio-net-pci, tap, vhost off), same kernel, initramfs, 2 vCPUs. TCP
# throughput guest<->host for both; metadata-service requests per second
# (new connection per request, and pipelined keep-alive) for Flint. Prints
# FLINT-METRIC lines; never pass/fail on numbers.
N=${N:-200}
MB=${MB:-256}
IP=ip
[ -x /tools/usr/bin/ip ] && IP=/tools/usr/bin/ip
printf '{"instance_id": "i-0be4c4b00000000ff", "instance_type": "t3.micro", "local_ipv4": "172.31.0.10", "mac": "02:00:ac:1f:00:0a"}' \
    >"$FLINT_WORK/md.json"
cmd="console=ttyS0 quiet panic=-1 flint.n=$N flint.mb=$MB"

sinks() { # a sink on 5001 and a source on 5002, one connection each
    (nc -l -p 5001 | wc -c >"$FLINT_WORK/sink.bytes") &
    SINK_PIDS=$!
    (dd if=/dev/zero bs=65536 count=$((MB * 16)) 2>/dev/null | nc -l -p 5002) &
    SINK_PIDS="$SINK_PIDS $!"
}

run() { # NAME COMMAND...
    local name=$1
    shift
    $IP tuntap add dev flint0 mode tap 2>/dev/null
    $IP addr add 172.31.0.1/20 dev flint0 2>/dev/null
    $IP link set flint0 up
    sinks
    start_guest "$name" "$@"
    wait_exit "$name" 900
    grep -a 'FLINT-GUEST result' "$FLINT_WORK/$name.console" | while read -r _ _ n _ a b _; do
        n=${n#name=}
        case $n in
            imds-*) r=${a#requests=}; cs=${b#cs=}; [ "$cs" -gt 0 ] && metric "$name-$n-per-s" $((r * 100 / cs)) req/s
                    [ "$r" -gt 0 ] && metric "$name-$n-latency" $((cs * 10000 / r)) us ;;
            tcp-tx) cs=${b#cs=}
                    # Only what the host's sink really received counts.
                    sleep 1
                    got=$(cat "$FLINT_WORK/sink.bytes" 2>/dev/null)
                    if [ "${got:-0}" -eq $((MB * 1048576)) ] && [ "$cs" -gt 0 ]; then
                        metric "$name-tcp-guest-to-host" $((MB * 100 / cs)) MiB/s
                    else
                        result "$name-tcp-tx-complete" fail "sink got ${got:-0} bytes"
                    fi ;;
            tcp-rx) by=${a#bytes=}; cs=${b#cs=}; [ "$cs" -gt 0 ] && metric "$name-tcp-host-to-guest" $((by / 10485 / cs)) MiB/s ;;
        esac
    done
    grep -q 'FLINT-GUEST result name=tcp-rx' "$FLINT_WORK/$name.console" && result "$name-measured" pass || result "$name-measured" fail
    kill $SINK_PIDS 2>/dev/null
    $IP link del flint0 2>/dev/null
}

run flint "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" --vcpus 2 --memory 512 \
    --console stdio --disk "$FLINT_GUEST_SCRIPT_DISK,ro" \
    --net tap=flint0,mac=02:00:ac:1f:00:0a,ip=172.31.0.10/20 --metadata "$FLINT_WORK/md.json" \
    --cmdline "$cmd flint.imds=1"
run qemu qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 512 -smp 2 \
    -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" -append "$cmd" \
    -drive "if=none,id=script,file=$FLINT_GUEST_SCRIPT_DISK,format=raw,readonly=on" -device virtio-blk-pci,drive=script \
    -netdev tap,id=n0,ifname=flint0,script=no,downscript=no,vhost=off -device virtio-net-pci,netdev=n0,mac=02:00:ac:1f:00:0a,romfile= \
    -nodefaults -serial stdio -display none -no-reboot
finish
