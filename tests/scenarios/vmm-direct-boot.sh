# flint vmm end to end: direct boot of the Debian cloud kernel + test
# initramfs under Flint. One scenario, five VMM runs:
#  1 bzImage, 2 vCPUs: CPU count, memory, ACPI, virtio-blk read/write/serial,
#    read-only disk, a guest reboot (two boots, one process), poweroff -> 0,
#    and the written data in the host file afterwards
#  2 ELF vmlinux (PVH), 1 vCPU: control socket status, graceful shutdown
#    through the socket (ACPI power button) -> 0
#  3 SIGTERM -> graceful shutdown -> 0
#  4 data written + synced in the guest survives SIGKILL of the VMM
#  5 hard stop through the socket -> exit 4
# plus bad configs (exit 1, one clear line).

api() { curl -s --max-time 10 --unix-socket "$1" -X "$2" "http://vm$3"; }
# The guest script (vmm-guest.sh) is on its own read-only disk, which the
# test initramfs finds; it is always the last disk.
cmdline() { echo "console=ttyS0 reboot=k panic=-1 $*"; }
script_disk="--disk $FLINT_GUEST_SCRIPT_DISK,ro"

dd if=/dev/zero of="$FLINT_WORK/data.img" bs=1M count=64 2>/dev/null
printf 'FLINT-PATTERN' | dd of="$FLINT_WORK/data.img" conv=notrunc 2>/dev/null
dd if=/dev/zero of="$FLINT_WORK/ro.img" bs=1M count=8 2>/dev/null
ro_sum=$(md5sum <"$FLINT_WORK/ro.img")

guest_checks_pass() { # NAME: every guest result of that run passed
    if grep -q 'FLINT-GUEST result.*status=fail' "$FLINT_WORK/$1.console"; then
        result "$1-guest-checks" fail "$(grep 'status=fail' "$FLINT_WORK/$1.console" | tr '\n' ' ')"
    else
        result "$1-guest-checks" pass "$(grep -c 'FLINT-GUEST result.*status=pass' "$FLINT_WORK/$1.console") checks"
    fi
}

# ---- 1: full, with a reboot
start_guest full "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 2 --memory 256 --console stdio \
    --disk "$FLINT_WORK/data.img,serial=vol-data" --disk "$FLINT_WORK/ro.img,ro,serial=vol-ro" $script_disk \
    --cmdline "$(cmdline flint.mode=full flint.cpus=2 flint.mem_mib=256)"
wait_console full 'FLINT-GUEST ready' 120 && result full-ready pass "ms=$WAITED_MS" && metric flint-boot-to-ready "$WAITED_MS" ms || result full-ready fail
wait_exit full 240
[ "$GUEST_RC" = 0 ] && result full-poweroff-exit-0 pass || result full-poweroff-exit-0 fail "rc=$GUEST_RC"
[ "$(grep -c 'FLINT-GUEST ready' "$FLINT_WORK/full.console")" = 2 ] && result full-rebooted pass || result full-rebooted fail
guest_checks_pass full
expect host-sees-guest-write grep -q BOOT1-DATA "$FLINT_WORK/data.img"
host_nonzero() { dd if="$FLINT_WORK/data.img" bs=1M skip="$1" count=1 2>/dev/null | tr -d '\0' | wc -c; }
[ "$(host_nonzero 8)" = 0 ] && result host-sees-discard pass ||
    result host-sees-discard fail "left=$(host_nonzero 8)"
[ "$(md5sum <"$FLINT_WORK/ro.img")" = "$ro_sum" ] && result ro-disk-unchanged pass || result ro-disk-unchanged fail

# ---- 2: PVH + control socket + graceful shutdown
sock=$FLINT_WORK/vm2.sock
start_guest pvh "$FLINT_BIN" vmm --kernel "$FLINT_VMLINUX" --initrd "$FLINT_INITRAMFS" \
    --vcpus 1 --memory 192 --console stdio --api-socket "$sock" $script_disk \
    --cmdline "$(cmdline flint.mode=wait flint.after=wait flint.cpus=1 flint.mem_mib=192)"
if wait_console pvh 'FLINT-GUEST scenario-exit' 120; then
    result pvh-ready pass "ms=$WAITED_MS"
    status=$(api "$sock" GET /vm)
    case $status in *'"state":"running"'*) result api-status pass "$status" ;; *) result api-status fail "$status" ;; esac
    reply=$(api "$sock" PUT /vm/shutdown)
    case $reply in *accepted*) result api-shutdown-accepted pass ;; *) result api-shutdown-accepted fail "$reply" ;; esac
    wait_exit pvh 60
    [ "$GUEST_RC" = 0 ] && result api-graceful-shutdown pass || result api-graceful-shutdown fail "rc=$GUEST_RC"
    expect pvh-power-button-seen grep -q 'FLINT-GUEST power-button' "$FLINT_WORK/pvh.console"
    expect api-socket-removed test ! -e "$sock"
else
    result pvh-ready fail
    stop_guest pvh
fi
guest_checks_pass pvh

# ---- 3: SIGTERM
start_guest term "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 1 --memory 128 --console stdio $script_disk \
    --cmdline "$(cmdline flint.mode=wait flint.after=wait flint.cpus=1 flint.mem_mib=128)"
if wait_console term 'FLINT-GUEST scenario-exit' 120; then
    kill -TERM "$(cat "$FLINT_WORK/term.pid")"
    wait_exit term 60
    [ "$GUEST_RC" = 0 ] && result sigterm-graceful pass || result sigterm-graceful fail "rc=$GUEST_RC"
else
    result sigterm-ready fail
    stop_guest term
fi
guest_checks_pass term

# ---- 4: SIGKILL after sync
start_guest kill "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 1 --memory 128 --console stdio --disk "$FLINT_WORK/data.img,serial=vol-data" $script_disk \
    --cmdline "$(cmdline flint.mode=sync flint.after=wait flint.cpus=1 flint.mem_mib=128)"
if wait_console kill 'FLINT-GUEST synced' 120; then
    kill -KILL "$(cat "$FLINT_WORK/kill.pid")"
    wait_exit kill 30
    expect synced-data-survives-sigkill grep -q SYNCED-DATA "$FLINT_WORK/data.img"
else
    result sync-ready fail
    stop_guest kill
fi
guest_checks_pass kill

# ---- 5: hard stop through the socket
sock=$FLINT_WORK/vm5.sock
start_guest stop "$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --initrd "$FLINT_INITRAMFS" \
    --vcpus 1 --memory 128 --console stdio --api-socket "$sock" $script_disk \
    --cmdline "$(cmdline flint.mode=wait flint.after=wait flint.cpus=1 flint.mem_mib=128)"
if wait_console stop 'FLINT-GUEST ready' 120; then
    api "$sock" PUT /vm/stop >/dev/null
    wait_exit stop 30
    [ "$GUEST_RC" = 4 ] && result api-hard-stop-exit-4 pass || result api-hard-stop-exit-4 fail "rc=$GUEST_RC"
else
    result stop-ready fail
    stop_guest stop
fi

# ---- bad configs: exit 1 and one clear line
"$FLINT_BIN" vmm --kernel /nonexistent/vmlinuz 2>"$FLINT_WORK/bad.err"
rc=$?
[ $rc = 1 ] && grep -q 'kernel /nonexistent/vmlinuz' "$FLINT_WORK/bad.err" && result bad-kernel-path pass || result bad-kernel-path fail "rc=$rc $(cat "$FLINT_WORK/bad.err")"
"$FLINT_BIN" vmm --kernel "$FLINT_INITRAMFS" 2>"$FLINT_WORK/bad.err"
rc=$?
[ $rc = 1 ] && grep -q 'neither a bzImage nor' "$FLINT_WORK/bad.err" && result not-a-kernel pass || result not-a-kernel fail "rc=$rc $(cat "$FLINT_WORK/bad.err")"
"$FLINT_BIN" vmm --kernel "$FLINT_KERNEL" --disk "$FLINT_WORK/missing.img" 2>"$FLINT_WORK/bad.err"
rc=$?
[ $rc = 1 ] && grep -q 'missing.img' "$FLINT_WORK/bad.err" && result missing-disk pass || result missing-disk fail "rc=$rc"
finish
