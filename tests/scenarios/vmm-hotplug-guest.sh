# Runs inside the test guest (test-initramfs) for the vmm-hotplug scenario:
# waits for each disk the host hot-plugs (found by serial), checks it, and
# tells the host on the console ("FLINT-GUEST hp-..."), which drives the
# next step over the control socket. flint.role=second (the second VM):
# only reads back the volume the first one wrote.

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

# fio IOPS of 4 KiB random reads at queue depth 32 on /dev/$1 for $2 s.
fio_iops() {
    /mnt/tools/bin/fio --name=limit --filename="/dev/$1" --rw=randread --bs=4k --iodepth=32 \
        --ioengine=io_uring --direct=1 --runtime="$2" --time_based \
        --output-format=terse --terse-version=3 2>/dev/null | tail -n 1 | cut -d';' -f8
}
# The hot-plug GPE (\_GPE._E01): masked, an eject request stays pending.
gpe=/sys/firmware/acpi/interrupts/gpe01

if grep -q 'flint.role=second' /proc/cmdline; then
    guest_say "hp2-attach-now"
    if wait_until 120 present vol-busy; then
        mkdir -p /mnt/busy
        check second-vm-mounts mount -o ro "/dev/$dev" /mnt/busy
        check second-vm-reads-first-vms-data grep -q FIRST-VM-DATA /mnt/busy/data
        umount /mnt/busy
    else
        result second-vm-sees-volume fail "$(ls /sys/block | tr '\n' ' ')"
    fi
    guest_say "hp2-done"
    exit 0
fi

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
    # One blk-mq hardware queue per vCPU (VIRTIO_BLK_F_MQ).
    check hot1-one-queue-per-vcpu test "$(ls -d /sys/block/$dev/mq/* | wc -l)" = "$(grep -c ^processor /proc/cpuinfo)"
    check guest-has-two-vcpus test "$(grep -c ^processor /proc/cpuinfo)" = 2
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

# ---- 6: the host attaches and detaches vol-loop 20 times (acpiphp does
# everything); the guest just waits for what comes after.
guest_say "hp-loop-now"

# ---- 7: vol-iops (O_DIRECT on the host), io1 at 100 IOPS: fio measures
# the limit; the host lifts it and resizes the disk to say so; fio again.
mkdir -p /mnt/tools
mount -o ro "$(findfs LABEL=flint-gtools)" /mnt/tools || result fio-tools fail "no guest-tools disk"
if wait_until 900 present vol-iops; then
    iops_dev=$dev
    iops=$(fio_iops "$iops_dev" 8)
    result fio-throttled pass "iops=$iops"
    guest_say "hp-fio-throttled iops=$iops"
    size0=$(cat "/sys/block/$iops_dev/size")
    resized() { [ "$(cat "/sys/block/$iops_dev/size")" != "$size0" ]; }
    if wait_until 120 resized; then
        iops=$(fio_iops "$iops_dev" 8)
        result fio-unthrottled pass "iops=$iops"
        guest_say "hp-fio-unthrottled iops=$iops"
    else
        result fio-unthrottled fail "no resize from the host"
    fi
else
    result vol-iops-appeared fail
fi

# ---- 8: a mounted volume whose detach the guest holds back (hot-plug GPE
# masked) stays "detaching"; once the guest has written, unmounted and
# unmasked, the eject goes through. The host resizes the disk to say it
# has seen the detach wait.
if wait_until 120 present vol-busy; then
    busy=$dev
    mkdir -p /mnt/busy
    check busy-mounted mount "/dev/$busy" /mnt/busy
    echo FIRST-VM-DATA >/mnt/busy/data
    check busy-gpe-masked sh -c "echo mask >$gpe"
    guest_say "hp-busy-held"
    size0=$(cat "/sys/block/$busy/size")
    busy_resized() { [ "$(cat "/sys/block/$busy/size")" != "$size0" ]; }
    if wait_until 180 busy_resized; then
        check busy-still-usable-while-detaching sh -c "echo more >>/mnt/busy/data && sync"
    else
        result busy-host-signal fail
    fi
    check busy-unmounted umount /mnt/busy
    check busy-gpe-unmasked sh -c "echo unmask >$gpe"
    wait_until 90 absent vol-busy && result busy-ejected pass || result busy-ejected fail
else
    result vol-busy-appeared fail
fi
guest_say "hp-busy-done"
