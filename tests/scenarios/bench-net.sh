# Network benchmark, side by side in one emulated host: the test guest on a
# TAP under Flint (virtio-net + its link services) and under QEMU
# (virtio-net-pci, tap, vhost off), same kernel, initramfs, 2 vCPUs. TCP
# throughput guest<->host for both; metadata-service requests per second
# (new connection per request, and pipelined keep-alive) for Flint. Prints
# FLINT-METRIC lines; never pass/fail on numbers. Throughput is in KiB/s
# (MiB/s in integers rounded the emulated host's ~1.5 MiB/s down to 1), and
# counts only when every byte arrived. The tools on both ends are busybox
# nc, which moves 1 KiB per read/write: in the emulated host it, not the
# VMM, may be what limits both Flint and QEMU. imds-spawn is what starting a
# process costs in the guest, part of every imds-new-conn request (wget).
N=${N:-200}
MB=${MB:-256}
IP=ip
[ -x /tools/usr/bin/ip ] && IP=/tools/usr/bin/ip
printf '{"instance_id": "i-0be4c4b00000000ff", "instance_type": "t3.micro", "local_ipv4": "172.31.0.10", "mac": "02:00:ac:1f:00:0a"}' \
    >"$FLINT_WORK/md.json"
cmd="console=ttyS0 quiet panic=-1 flint.n=$N flint.mb=$MB"

# busybox nc (the small one, 1 KiB reads) half-closes as soon as its stdin
# ends, and a busybox nc peer exits on that EOF even with input left to
# send. A background job's stdin is /dev/null, so a sink run as
# `nc -l ... &` cut the guest's sender off after a few KiB. The sink's stdin
# is a FIFO opened read-write instead: never readable, never at EOF.
# Each run has its own ports (a leftover listener of the previous run would
# make the next bind fail) and `timeout` ends listeners nobody reached.
sinks() { # TX_PORT RX_PORT: a sink on the first, a source on the second
    rm -f "$FLINT_WORK/sink.bytes" "$FLINT_WORK/hold"
    mkfifo "$FLINT_WORK/hold"
    (timeout 1200 nc -l -p "$1" <>"$FLINT_WORK/hold" | wc -c >"$FLINT_WORK/sink.tmp" &&
        mv "$FLINT_WORK/sink.tmp" "$FLINT_WORK/sink.bytes") &
    # The source's stdin ends after the data: its half-close is the
    # guest's EOF; it exits when the guest closes.
    (dd if=/dev/zero bs=65536 count=$((MB * 16)) 2>/dev/null | timeout 1200 nc -l -p "$2" >/dev/null) &
    # Both listening before the guest can connect.
    for i in $(seq 100); do
        l=$(netstat -ltn 2>/dev/null)
        case $l in *":$1 "*) case $l in *":$2 "*) break ;; esac ;; esac
        sleep 0.1
    done
}

# sink_bytes: what the sink counted, once its sender closed (waits 30 s).
sink_bytes() {
    for i in $(seq 300); do
        [ -s "$FLINT_WORK/sink.bytes" ] && break
        sleep 0.1
    done
    cat "$FLINT_WORK/sink.bytes" 2>/dev/null
}

run() { # NAME TX_PORT RX_PORT COMMAND...
    local name=$1 tx=$2 rx=$3
    shift 3
    $IP tuntap add dev flint0 mode tap 2>/dev/null
    $IP addr add 172.31.0.1/20 dev flint0 2>/dev/null
    $IP link set flint0 up
    sinks "$tx" "$rx"
    start_guest "$name" "$@"
    wait_exit "$name" 900
    grep -a 'FLINT-GUEST result' "$FLINT_WORK/$name.console" | while read -r _ _ n _ a b _; do
        n=${n#name=}
        case $n in
            imds-*) r=${a#requests=}; cs=${b#cs=}; [ "$cs" -gt 0 ] && metric "$name-$n-per-s" $((r * 100 / cs)) req/s
                    [ "$r" -gt 0 ] && metric "$name-$n-latency" $((cs * 10000 / r)) us ;;
            tcp-tx) cs=${b#cs=}
                    # Only what the host's sink really received counts.
                    got=$(sink_bytes)
                    if [ "${got:-0}" -eq $((MB * 1048576)) ] && [ "$cs" -gt 0 ]; then
                        metric "$name-tcp-guest-to-host" $((MB * 1024 * 100 / cs)) KiB/s
                    else
                        result "$name-tcp-tx-complete" fail "sink got ${got:-0} bytes"
                    fi ;;
            tcp-rx) by=${a#bytes=}; cs=${b#cs=}
                    if [ "${by:-0}" -eq $((MB * 1048576)) ] && [ "$cs" -gt 0 ]; then
                        metric "$name-tcp-host-to-guest" $((by / 1024 * 100 / cs)) KiB/s
                    else
                        result "$name-tcp-rx-complete" fail "guest got ${by:-0} bytes"
                    fi ;;
        esac
    done
    grep -q 'FLINT-GUEST result name=tcp-rx' "$FLINT_WORK/$name.console" && result "$name-measured" pass || result "$name-measured" fail
    # Listeners the guest never reached: one local connection ends each.
    nc 127.0.0.1 "$tx" </dev/null >/dev/null 2>&1
    nc 127.0.0.1 "$rx" </dev/null >/dev/null 2>&1
    $IP link del flint0 2>/dev/null
}

run flint 5001 5002 "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" --vcpus 2 --memory 512 \
    --console stdio --disk "$FLINT_GUEST_SCRIPT_DISK,ro" \
    --net tap=flint0,mac=02:00:ac:1f:00:0a,ip=172.31.0.10/20 --metadata "$FLINT_WORK/md.json" \
    --cmdline "$cmd flint.tx=5001 flint.rx=5002 flint.imds=1"
run qemu 5011 5012 qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 512 -smp 2 \
    -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" -append "$cmd flint.tx=5011 flint.rx=5012" \
    -drive "if=none,id=script,file=$FLINT_GUEST_SCRIPT_DISK,format=raw,readonly=on" -device virtio-blk-pci,drive=script \
    -netdev tap,id=n0,ifname=flint0,script=no,downscript=no,vhost=off -device virtio-net-pci,netdev=n0,mac=02:00:ac:1f:00:0a,romfile= \
    -nodefaults -serial stdio -display none -no-reboot
finish
