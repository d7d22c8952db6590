# flint vmm end to end: disk hot-plug through ACPI (the guest kernel's
# built-in acpiphp) driven over the per-VM control socket. One VMM run of
# the Debian cloud kernel + test initramfs; the guest half is
# vmm-hotplug-guest.sh (it reports on the console, the host waits for it):
#  0 attach + detach vol-early at once, before the guest's ACPI is up: the
#    detach says why it waits (guest-not-listening) and completes once the
#    guest is up (the VMM signals the lost request again)
#  1 attach vol-hot1 (PUT /vm/disks): it appears in the guest with its serial
#    and size, the guest reads the host's pattern and writes its own
#  2 detach (DELETE): 202 "detaching", the guest ejects, GET turns 404, the
#    guest's write is in the host file
#  3 attach vol-hot2, grow its file, PATCH resize: the guest sees the size
#  4 forced detach of vol-hot2: 200 at once; the guest drops the device
#  5 the freed slot is reused; error replies 400/404/409/422; boot disks in
#    GET /vm/disks
#  6 20 attach/detach cycles of one volume: the VMM's fds, MSI GSIs, slots
#    and memory come back to where they were
#  7 vol-iops on O_DIRECT, io1 at 100 IOPS: fio in the guest within +-10 %;
#    limits lifted live: well above it
#  8 a mounted volume whose eject the guest holds back stays "detaching"
#    until the guest lets go; the guest's writes are in the file
#  graceful shutdown -> exit 0; then a second VM gets the volume the first
#  wrote (hot-attached) and reads the data back
# 2 vCPUs: each disk has two request queues (the guest checks).

sock=$FLINT_WORK/hp.sock
# api METHOD PATH [BODY]: prints the reply body, then the HTTP status alone
# on the last line.
api() {
    if [ -n "$3" ]; then
        curl -s --max-time 20 --unix-socket "$sock" -X "$1" -w '\n%{http_code}' -d "$3" "http://vm$2"
    else
        curl -s --max-time 20 --unix-socket "$sock" -X "$1" -w '\n%{http_code}' "http://vm$2"
    fi
}
status_of() { printf '%s\n' "$1" | tail -n 1; }
body_of() { printf '%s\n' "$1" | sed '$d'; }
# expect_status NAME WANT REPLY
expect_status() {
    if [ "$(status_of "$3")" = "$2" ]; then
        result "$1" pass "$(body_of "$3" | tr '\n' ' ' | cut -c1-200)"
    else
        result "$1" fail "want=$2 got=$(status_of "$3") body=$(body_of "$3" | tr '\n' ' ' | cut -c1-200)"
    fi
}
# json_field NAME REPLY: a scalar field of a flat JSON object.
json_field() { body_of "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -n 1; }
attach_body() { # ID FILE
    printf '{"id":"%s","path":"%s","read_only":false,"serial":"%s","limits":null}' "$1" "$2" "$1"
}
# wait_gone ID SECONDS: GET /vm/disks/ID turns 404.
wait_gone() {
    local n=$(($2 * 10))
    while [ $n -gt 0 ]; do
        [ "$(status_of "$(api GET "/vm/disks/$1")")" = 404 ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

dd if=/dev/zero of="$FLINT_WORK/boot.img" bs=1M count=4 2>/dev/null
for d in hot1 hot2 hot3 loop; do
    dd if=/dev/zero of="$FLINT_WORK/$d.img" bs=1M count=8 2>/dev/null
done
# vol-iops is read with O_DIRECT: real blocks, not a hole (the payload is ext4).
dd if=/dev/urandom of="$FLINT_WORK/iops.img" bs=1M count=64 conv=fsync 2>/dev/null
# vol-busy: an ext4 filesystem made on the real host.
dd if="${FLINT_DISK_BUSYFS:?run with --disk busyfs=PATH}" of="$FLINT_WORK/busy.img" bs=1M 2>/dev/null
printf 'HOTPLUG-PATTERN' | dd of="$FLINT_WORK/hot1.img" conv=notrunc 2>/dev/null

start_guest hp "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 2 --memory 256 --console stdio --api-socket "$sock" \
    --disk "$FLINT_WORK/boot.img,serial=vol-boot" --disk "$FLINT_GUEST_SCRIPT_DISK,ro" \
    --disk "${FLINT_DISK_GUESTTOOLS:?run with --disk guesttools=PATH},ro" \
    --cmdline "console=ttyS0 reboot=k panic=-1 flint.after=wait"
# ---- 0: attached and detached before the guest's ACPI is up (the kernel is
# still decompressing): the eject request's GPE is lost (ACPICA clears it
# when it enables the GPE); the VMM signals it again until the guest ejects.
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
dd if=/dev/zero of="$FLINT_WORK/early.img" bs=1M count=8 2>/dev/null
expect_status early-attach 200 "$(api PUT /vm/disks "$(attach_body vol-early "$FLINT_WORK/early.img")")"
expect_status early-detach-202 202 "$(api DELETE /vm/disks/vol-early)"
reply=$(api GET /vm/disks/vol-early)
case $reply in
*'"eject_wait":"guest-not-listening"'*) result early-detach-says-why pass ;;
*) result early-detach-says-why fail "$(body_of "$reply" | tr '\n' ' ')" ;;
esac
if ! wait_console hp 'FLINT-GUEST hp-attach-now' 120; then
    result hp-ready fail
    stop_guest hp
    finish
fi
result hp-ready pass "ms=$WAITED_MS"
wait_gone vol-early 120 && result early-detach-completes pass || result early-detach-completes fail "$(body_of "$(api GET /vm/disks/vol-early)")"

# Boot-time disks are listed, with the slots they boot in.
list=$(api GET /vm/disks)
expect_status list-boot-disks 200 "$list"
case $(body_of "$list") in
*'"id":"vol-boot"'*'"slot":1'*'"state":"attached"'*) result boot-disk-listed pass ;;
*) result boot-disk-listed fail "$(body_of "$list")" ;;
esac

# ---- 1: attach
reply=$(api PUT /vm/disks "$(attach_body vol-hot1 "$FLINT_WORK/hot1.img")")
expect_status attach-hot1 200 "$reply"
slot1=$(json_field slot "$reply")
[ "$(json_field size_bytes "$reply")" = 8388608 ] && result attach-size pass || result attach-size fail "$(body_of "$reply")"
wait_console hp 'FLINT-GUEST hp-hot1-written' 90 && result hot1-seen-by-guest pass "ms=$WAITED_MS" || result hot1-seen-by-guest fail
expect_status attach-duplicate-409 409 "$(api PUT /vm/disks "$(attach_body vol-hot1 "$FLINT_WORK/hot3.img")")"
expect_status attach-missing-file-422 422 "$(api PUT /vm/disks "$(attach_body vol-missing "$FLINT_WORK/missing.img")")"
expect_status attach-bad-json-400 400 "$(api PUT /vm/disks '{"id":')"
expect_status attach-relative-path-400 400 "$(api PUT /vm/disks '{"id":"vol-rel","path":"rel.img"}')"
expect_status get-unknown-404 404 "$(api GET /vm/disks/vol-nope)"

# ---- 2: detach through the guest's eject
reply=$(api DELETE /vm/disks/vol-hot1)
expect_status detach-hot1-202 202 "$reply"
[ "$(json_field state "$reply")" = detaching ] && result detach-state-detaching pass || result detach-state-detaching fail "$(body_of "$reply")"
wait_gone vol-hot1 60 && result detach-completed pass || result detach-completed fail "$(body_of "$(api GET /vm/disks/vol-hot1)")"
wait_console hp 'FLINT-GUEST hp-hot1-removed' 60 && result hot1-gone-in-guest pass || result hot1-gone-in-guest fail
expect host-sees-hot-write grep -q GUEST-WROTE-HOT1 "$FLINT_WORK/hot1.img"

# ---- 3: attach another, resize it
reply=$(api PUT /vm/disks "$(attach_body vol-hot2 "$FLINT_WORK/hot2.img")")
expect_status attach-hot2 200 "$reply"
slot2=$(json_field slot "$reply")
[ "$slot2" = "$slot1" ] && result ejected-slot-reused pass "slot=$slot2" || result ejected-slot-reused fail "slot1=$slot1 slot2=$slot2"
if wait_console hp 'FLINT-GUEST hp-hot2-seen' 90; then
    dd if=/dev/zero of="$FLINT_WORK/hot2.img" bs=1M count=0 seek=16 2>/dev/null
    reply=$(api PATCH /vm/disks/vol-hot2 '{"resize":true}')
    expect_status resize-hot2 200 "$reply"
    [ "$(json_field size_bytes "$reply")" = 16777216 ] && result resize-size pass || result resize-size fail "$(body_of "$reply")"
    wait_console hp 'FLINT-GUEST hp-hot2-resized' 60 && result resize-seen-by-guest pass || result resize-seen-by-guest fail
else
    result hot2-seen-by-guest fail
fi
reply=$(api PATCH /vm/disks/vol-hot2 '{"limits":{"volume_type":"gp3","size_gib":16,"iops":3000}}')
expect_status limits-hot2 200 "$reply"
case $(body_of "$reply") in *'"iops":3000'*) result limits-returned pass ;; *) result limits-returned fail "$(body_of "$reply")" ;; esac

# ---- 4: forced detach
reply=$(api DELETE '/vm/disks/vol-hot2?force=true')
expect_status force-detach-200 200 "$reply"
expect_status force-detach-gone-404 404 "$(api GET /vm/disks/vol-hot2)"
wait_console hp 'FLINT-GUEST hp-hot2-removed' 60 && result forced-gone-in-guest pass || result forced-gone-in-guest fail

# ---- 5: the slot comes back once the guest ejected it (the guest drops
# the device, then its _EJ0 writes the eject register: give it a moment)
sleep 2
reply=$(api PUT /vm/disks "$(attach_body vol-hot3 "$FLINT_WORK/hot3.img")")
expect_status attach-hot3 200 "$reply"
[ "$(json_field slot "$reply")" = "$slot2" ] && result forced-slot-reused pass || result forced-slot-reused fail "$(body_of "$reply")"
wait_console hp 'FLINT-GUEST hp-hot3-seen' 90 && result hot3-seen-by-guest pass || result hot3-seen-by-guest fail

# ---- 6: 20 attach/detach cycles; what the VMM holds comes back.
pid=$(json_field pid "$(api GET /vm)")
# usage: fds, MSI GSIs, and the VMM's resident KiB outside guest RAM (the
# one mapping of 64 MiB or more: pages the guest touches count in RSS too,
# and a guest that handled 20 hot-plugs has touched more).
usage() {
    echo "$(ls /proc/$pid/fd | wc -l) $(json_field msi_gsis "$(api GET /vm)")" \
        "$(awk '/^Size:/ { big = ($2 >= 65536) } /^Rss:/ && !big { s += $2 } END { print s }' /proc/$pid/smaps)"
}
if wait_console hp 'FLINT-GUEST hp-loop-now' 60; then
    # One cycle first: allocations made once (a bigger fd table, the event
    # loop's buffers) are not leaks.
    api PUT /vm/disks "$(attach_body vol-loop "$FLINT_WORK/loop.img")" >/dev/null
    api DELETE /vm/disks/vol-loop >/dev/null
    wait_gone vol-loop 60
    set -- $(usage)
    fds0=$1 gsis0=$2 rss0=$3
    ok=0 slots=""
    for i in $(seq 20); do
        reply=$(api PUT /vm/disks "$(attach_body vol-loop "$FLINT_WORK/loop.img")")
        [ "$(status_of "$reply")" = 200 ] || break
        slots="$slots $(json_field slot "$reply")"
        [ "$(status_of "$(api DELETE /vm/disks/vol-loop)")" = 202 ] || break
        wait_gone vol-loop 60 || break
        ok=$i
        # Memory is compared from cycle 5 on: glibc may still take a new
        # arena in the first cycles (a jump of a few MiB once, seen in CI);
        # a leak repeats every cycle.
        [ "$i" = 5 ] && rss5=$(usage | awk '{ print $3 }')
    done
    set -- $(usage)
    [ "$ok" = 20 ] && result loop-20-cycles pass "slots:$slots" || result loop-20-cycles fail "completed=$ok"
    [ "$1" = "$fds0" ] && result loop-no-fd-leak pass "fds=$1" || result loop-no-fd-leak fail "fds $fds0 -> $1"
    [ -n "$2" ] && [ "$2" = "$gsis0" ] && result loop-no-gsi-leak pass "msi_gsis=$2" || result loop-no-gsi-leak fail "msi_gsis $gsis0 -> $2"
    # Slots: one, reused every time.
    [ "$(echo $slots | tr ' ' '\n' | sort -u | wc -l)" = 1 ] && result loop-no-slot-leak pass || result loop-no-slot-leak fail "$slots"
    # Memory over the last 15 cycles: the allocator may keep a little; a
    # leak of one device per cycle (its io_uring, slots and rings) would be
    # far more.
    growth=$(($3 - ${rss5:-0}))
    [ -n "${rss5:-}" ] && [ "$growth" -lt 1024 ] && result loop-no-memory-leak pass "vmm_rss_kib=$rss0,$rss5->$3" ||
        result loop-no-memory-leak fail "vmm_rss_kib=$rss0,${rss5:-none}->$3"
    metric loop-rss-growth "$growth" KiB
else
    result loop-ready fail
fi

# ---- 7: throttled fio on an O_DIRECT volume.
reply=$(api PUT /vm/disks "{\"id\":\"vol-iops\",\"path\":\"$FLINT_WORK/iops.img\",\"serial\":\"vol-iops\",\"direct\":true,\"limits\":{\"volume_type\":\"io1\",\"size_gib\":10,\"iops\":100}}")
expect_status attach-iops-direct 200 "$reply"
[ "$(json_field direct "$reply")" = true ] && result attach-direct-listed pass || result attach-direct-listed fail "$(body_of "$reply")"
if wait_console hp 'FLINT-GUEST hp-fio-throttled' 300; then
    iops=$(grep -a 'FLINT-GUEST hp-fio-throttled' "$FLINT_WORK/hp.console" | tail -n 1 | sed 's/.*iops=\([0-9]*\).*/\1/' | tr -d '\r')
    metric fio-io1-100-iops "$iops" iops
    [ -n "$iops" ] && [ "$iops" -ge 90 ] && [ "$iops" -le 110 ] &&
        result fio-within-10pct-of-limit pass "iops=$iops limit=100" ||
        result fio-within-10pct-of-limit fail "iops=$iops limit=100"
    m=$(api GET /vm/disks/vol-iops/metrics)
    throttled=$(json_field VolumeThrottledOps "$m")
    [ "${throttled:-0}" -gt 0 ] && result throttle-counted pass "VolumeThrottledOps=$throttled" || result throttle-counted fail "$(body_of "$m")"
    expect_status limits-lifted 200 "$(api PATCH /vm/disks/vol-iops '{"limits":null}')"
    dd if=/dev/zero of="$FLINT_WORK/iops.img" bs=1M count=0 seek=72 2>/dev/null
    expect_status iops-resize-signal 200 "$(api PATCH /vm/disks/vol-iops '{"resize":true}')"
    if wait_console hp 'FLINT-GUEST hp-fio-unthrottled' 120; then
        free=$(grep -a 'FLINT-GUEST hp-fio-unthrottled' "$FLINT_WORK/hp.console" | tail -n 1 | sed 's/.*iops=\([0-9]*\).*/\1/' | tr -d '\r')
        metric fio-unthrottled-iops "$free" iops
        # TCG guests do a few hundred IOPS here; 1.5x the old limit is
        # out of the throttle's reach (its bucket holds 0.1 s).
        [ -n "$free" ] && [ "$free" -ge 150 ] && result fio-unthrottled-above-limit pass "iops=$free" ||
            result fio-unthrottled-above-limit fail "iops=$free"
    else
        result fio-unthrottled-above-limit fail "no result from the guest"
    fi
else
    result fio-within-10pct-of-limit fail "no result from the guest"
fi
expect_status iops-detach 200 "$(api DELETE '/vm/disks/vol-iops?force=true')"

# ---- 8: a mounted volume the guest does not let go of.
expect_status attach-busy 200 "$(api PUT /vm/disks "$(attach_body vol-busy "$FLINT_WORK/busy.img")")"
if wait_console hp 'FLINT-GUEST hp-busy-held' 120; then
    reply=$(api DELETE /vm/disks/vol-busy)
    expect_status busy-detach-202 202 "$reply"
    sleep 15
    reply=$(api GET /vm/disks/vol-busy)
    [ "$(json_field state "$reply")" = detaching ] && result busy-stays-detaching pass "after 15 s" ||
        result busy-stays-detaching fail "$(body_of "$reply")"
    size=$(stat -c %s "$FLINT_WORK/busy.img")
    dd if=/dev/zero of="$FLINT_WORK/busy.img" bs=1 count=0 seek=$((size + 1048576)) 2>/dev/null
    expect_status busy-resize-signal 200 "$(api PATCH /vm/disks/vol-busy '{"resize":true}')"
    wait_gone vol-busy 120 && result busy-detached-once-guest-let-go pass || result busy-detached-once-guest-let-go fail
    expect busy-guest-data-in-file grep -aq FIRST-VM-DATA "$FLINT_WORK/busy.img"
else
    result busy-held fail
fi
wait_console hp 'FLINT-GUEST hp-busy-done' 120 || true

reply=$(api PUT /vm/shutdown)
wait_exit hp 60
[ "$GUEST_RC" = 0 ] && result graceful-shutdown pass || result graceful-shutdown fail "rc=$GUEST_RC"
if grep -q 'FLINT-GUEST result.*status=fail' "$FLINT_WORK/hp.console"; then
    result hp-guest-checks fail "$(grep 'status=fail' "$FLINT_WORK/hp.console" | tr '\n' ' ')"
else
    result hp-guest-checks pass "$(grep -c 'FLINT-GUEST result.*status=pass' "$FLINT_WORK/hp.console") checks"
fi

# ---- the volume on another instance: a second VM, hot-attached.
sock=$FLINT_WORK/hp2.sock
start_guest hp2 "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 1 --memory 192 --console stdio --api-socket "$sock" \
    --disk "$FLINT_GUEST_SCRIPT_DISK,ro" \
    --cmdline "console=ttyS0 reboot=k panic=-1 flint.role=second"
if wait_console hp2 'FLINT-GUEST hp2-attach-now' 120; then
    expect_status second-vm-attach 200 "$(api PUT /vm/disks "$(attach_body vol-busy "$FLINT_WORK/busy.img")")"
    wait_console hp2 'FLINT-GUEST hp2-done' 120 || true
    grep -q 'FLINT-GUEST result name=second-vm-reads-first-vms-data status=pass' "$FLINT_WORK/hp2.console" &&
        result volume-read-back-on-second-vm pass || result volume-read-back-on-second-vm fail
else
    result second-vm-ready fail
fi
wait_exit hp2 60
[ "$GUEST_RC" = 0 ] && result second-vm-exit pass || result second-vm-exit fail "rc=$GUEST_RC"
finish
