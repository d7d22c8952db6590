# Runs inside the test guest (test-initramfs) on every boot of the
# vmm-direct-boot scenario. Parameters come from the kernel command line:
#   flint.cpus=N flint.mem_mib=N   expected vCPUs and memory
#   flint.mode=full|wait|sync      full: the disk/reboot checks; wait: report
#                                  ready and wait for the power button; sync:
#                                  write + sync data, then wait
param() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
mode=$(param flint.mode)

expect_cpus=$(param flint.cpus)
cpus=$(grep -c ^processor /proc/cpuinfo)
[ "$cpus" = "$expect_cpus" ] && result cpus pass "n=$cpus" || result cpus fail "n=$cpus want=$expect_cpus"
mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)
want_kb=$(($(param flint.mem_mib) * 1024))
# The kernel keeps a roughly fixed amount for itself (~37-40 MiB for this
# kernel + initramfs at 128-256 MiB): MemTotal is RAM less at most 48 MiB.
if [ "$mem_kb" -le "$want_kb" ] && [ "$mem_kb" -ge $((want_kb - 48 * 1024)) ]; then
    result memory pass "kb=$mem_kb"
else
    result memory fail "kb=$mem_kb want<=$want_kb"
fi
check acpi-tables test -e /sys/firmware/acpi/tables/DSDT -a -e /sys/firmware/acpi/tables/APIC -a -e /sys/firmware/acpi/tables/FACP
check power-button grep -q 'Power Button' /proc/bus/input/devices
# The same EC2 SMBIOS identity as a firmware boot (F segment, direct boot).
check dmi-vendor grep -qx 'Amazon EC2' /sys/class/dmi/id/sys_vendor
check dmi-uuid-ec2 sh -c 'grep -q "^ec2" /sys/class/dmi/id/product_uuid && [ "$(cat /sys/class/dmi/id/product_uuid)" = "$(cat /sys/class/dmi/id/product_serial)" ]'
online=$(cat /sys/devices/system/cpu/online)
result cpus-online pass "online=$online"

case $mode in
wait)
    exit 0
    ;;
sync)
    # Data written and flushed must survive a SIGKILL of the VMM.
    echo "SYNCED-DATA-$(cat /proc/sys/kernel/random/boot_id)" >/tmp/data
    dd if=/tmp/data of=/dev/vda bs=4096 seek=3 conv=sync,fsync 2>/dev/null &&
        result synced pass || result synced fail
    guest_say "synced"
    exit 0
    ;;
esac

# full: disks, then a reboot, then power off.
check data-disk-serial grep -qx vol-data /sys/block/vda/serial
check ro-disk-serial grep -qx vol-ro /sys/block/vdb/serial
check ro-disk-flag grep -qx 1 /sys/block/vdb/ro
check read-pattern sh -c 'dd if=/dev/vda bs=4096 count=1 2>/dev/null | grep -q FLINT-PATTERN'
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; then
    result ro-write-refused fail
else
    result ro-write-refused pass
fi
if dd if=/dev/vda bs=4096 skip=2 count=1 2>/dev/null | grep -q REBOOTED; then
    # Second boot: the reboot worked and the first boot's write is there.
    check data-after-reboot sh -c 'dd if=/dev/vda bs=4096 skip=1 count=1 2>/dev/null | grep -q BOOT1-DATA'
    result reboot pass
    exit 0
fi
# Discard reaches the device (BLKDISCARD); write-zeroes is advertised
# (busybox cannot issue BLKZEROOUT; the unit tests cover its data path).
nonzero() { dd if=/dev/vda bs=1M skip="$1" count=1 2>/dev/null | tr -d '\0' | wc -c; }
# (dd from a pipe writes short blocks: fill a file first.)
tr '\0' '\377' </dev/zero | head -c 1048576 >/tmp/ff
dd if=/tmp/ff of=/dev/vda bs=1M seek=8 count=1 conv=fsync 2>/dev/null
check discard-supported test "$(cat /sys/block/vda/queue/discard_max_bytes)" -gt 0
check write-zeroes-supported test "$(cat /sys/block/vda/queue/write_zeroes_max_bytes)" -gt 0
check filled test "$(nonzero 8)" -eq 1048576
blkdiscard -o $((8 << 20)) -l $((1 << 20)) /dev/vda && [ "$(nonzero 8)" = 0 ] &&
    result discard pass || result discard fail "left=$(nonzero 8)"
echo BOOT1-DATA >/tmp/b1
check write-sync dd if=/tmp/b1 of=/dev/vda bs=4096 seek=1 conv=sync,fsync
check read-back sh -c 'dd if=/dev/vda bs=4096 skip=1 count=1 2>/dev/null | grep -q BOOT1-DATA'
echo REBOOTED >/tmp/marker
dd if=/tmp/marker of=/dev/vda bs=4096 seek=2 conv=sync,fsync 2>/dev/null
guest_say "rebooting"
reboot -f
