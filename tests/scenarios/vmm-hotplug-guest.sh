# Runs inside the test guest (test-initramfs) for the vmm-hotplug scenario:
# waits for each disk the host hot-plugs (found by serial), checks it, and
# tells the host on the console ("FLINT-GUEST hp-..."), which drives the
# next step over the control socket.

# The vdX name of the disk with serial $1.
find_serial() {
    local f
    for f in /sys/block/vd*/serial; do
        [ -e "$f" ] || continue
        if [ "$(cat "$f")" = "$1" ]; then
            f=${f%/serial}
            echo "${f##*/}"
            return 0
        fi
    done
    return 1
}
present() { dev=$(find_serial "$1") && [ -b "/dev/$dev" ]; }
absent() { ! find_serial "$1" >/dev/null; }
# wait_until SECONDS COMMAND...
wait_until() {
    local n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# acpiphp registered the hot-plug slots (named by _SUN; a hot-plug slot has
# a "power" attribute); NIC slots 5..8 have no _EJ0, so they are not
# hot-plug slots (ACPI_PCI_SLOT may still list them, without "power").
check acpiphp-slot-3 test -e /sys/bus/pci/slots/3/power
check no-nic-hotplug-slot test ! -e /sys/bus/pci/slots/5/power
check boot-disk-serial present vol-boot

guest_say "hp-attach-now"
if wait_until 90 present vol-hot1; then
    result hot1-appeared pass "dev=$dev"
    check hot1-size test "$(cat "/sys/block/$dev/size")" = 16384
    check hot1-pattern sh -c "dd if=/dev/$dev bs=4096 count=1 2>/dev/null | grep -q HOTPLUG-PATTERN"
    echo GUEST-WROTE-HOT1 >/tmp/w
    check hot1-write dd if=/tmp/w of="/dev/$dev" bs=4096 seek=1 conv=sync,fsync
else
    result hot1-appeared fail "$(ls /sys/block | tr '\n' ' ')"
fi
guest_say "hp-hot1-written"
wait_until 90 absent vol-hot1 && result hot1-removed pass || result hot1-removed fail
guest_say "hp-hot1-removed"

if wait_until 90 present vol-hot2; then
    result hot2-appeared pass "dev=$dev"
    guest_say "hp-hot2-seen"
    # The host grows the file to 16 MiB and asks for a resize.
    hot2=$dev
    grown() { [ "$(cat "/sys/block/$hot2/size")" = 32768 ]; }
    wait_until 90 grown && result hot2-resized pass || result hot2-resized fail "size=$(cat "/sys/block/$hot2/size")"
    guest_say "hp-hot2-resized"
else
    result hot2-appeared fail
fi
# Forced removal: the device vanishes under the driver, then the eject
# request makes acpiphp drop it.
wait_until 90 absent vol-hot2 && result hot2-removed pass || result hot2-removed fail
guest_say "hp-hot2-removed"

wait_until 90 present vol-hot3 && result hot3-appeared pass "dev=$dev" || result hot3-appeared fail
guest_say "hp-hot3-seen"
