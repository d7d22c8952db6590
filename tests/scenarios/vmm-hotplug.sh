# flint vmm end to end: disk hot-plug through ACPI (the guest kernel's
# built-in acpiphp) driven over the per-VM control socket. One VMM run of
# the Debian cloud kernel + test initramfs; the guest half is
# vmm-hotplug-guest.sh (it reports on the console, the host waits for it):
#  1 attach vol-hot1 (PUT /vm/disks): it appears in the guest with its serial
#    and size, the guest reads the host's pattern and writes its own
#  2 detach (DELETE): 202 "detaching", the guest ejects, GET turns 404, the
#    guest's write is in the host file
#  3 attach vol-hot2, grow its file, PATCH resize: the guest sees the size
#  4 forced detach of vol-hot2: 200 at once; the guest drops the device
#  5 the freed slot is reused; error replies 400/404/409/422; boot disks in
#    GET /vm/disks; graceful shutdown -> exit 0

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
for d in hot1 hot2 hot3; do
    dd if=/dev/zero of="$FLINT_WORK/$d.img" bs=1M count=8 2>/dev/null
done
printf 'HOTPLUG-PATTERN' | dd of="$FLINT_WORK/hot1.img" conv=notrunc 2>/dev/null

start_guest hp "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 1 --memory 192 --console stdio --api-socket "$sock" \
    --disk "$FLINT_WORK/boot.img,serial=vol-boot" --disk "$FLINT_GUEST_SCRIPT_DISK,ro" \
    --cmdline "console=ttyS0 reboot=k panic=-1 flint.after=wait"
if ! wait_console hp 'FLINT-GUEST hp-attach-now' 120; then
    result hp-ready fail
    stop_guest hp
    finish
fi
result hp-ready pass "ms=$WAITED_MS"

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

reply=$(api PUT /vm/shutdown)
wait_exit hp 60
[ "$GUEST_RC" = 0 ] && result graceful-shutdown pass || result graceful-shutdown fail "rc=$GUEST_RC"
if grep -q 'FLINT-GUEST result.*status=fail' "$FLINT_WORK/hp.console"; then
    result hp-guest-checks fail "$(grep 'status=fail' "$FLINT_WORK/hp.console" | tr '\n' ' ')"
else
    result hp-guest-checks pass "$(grep -c 'FLINT-GUEST result.*status=pass' "$FLINT_WORK/hp.console") checks"
fi
finish
