# Runner self-test 2 and the boot-time baseline: QEMU-KVM in the emulated host
# boots the test kernel + test initramfs to the guest's ready line, runs a
# scenario inside the guest, and the guest powers off.

cat >"$FLINT_WORK/guest.sh" <<'GUEST'
check virtio-modules grep -q '^virtio_pci ' /proc/modules
check cpus test "$(grep -c ^processor /proc/cpuinfo)" -eq 1
GUEST

for machine in q35 microvm; do
    case $machine in
        q35) mopts="-M q35 -device virtio-blk-pci,drive=scratch" ;;
        # microvm: no PCI; ISA serial, virtio-mmio would need command-line devices.
        microvm) mopts="-M microvm,pit=on,pic=on,rtc=on" ;;
    esac
    dd if=/dev/zero of="$FLINT_WORK/scratch.img" bs=1M count=8 2>/dev/null
    start_guest "qemu-$machine" qemu-system-x86_64 $mopts -enable-kvm -cpu host -m 256 -smp 1 \
        -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" \
        -append "console=ttyS0 quiet panic=-1 flint.script=$(guest_script "$FLINT_WORK/guest.sh")" \
        -drive "if=none,id=scratch,file=$FLINT_WORK/scratch.img,format=raw" \
        -nodefaults -serial stdio -display none -no-reboot
    if wait_console "qemu-$machine" 'FLINT-GUEST ready' 120; then
        result "qemu-$machine-ready" pass "ms=$WAITED_MS"
        metric "qemu-$machine-boot-to-ready" "$WAITED_MS" ms
    else
        result "qemu-$machine-ready" fail "wait=$?"
    fi
    if wait_exit "qemu-$machine" 60 && [ "$GUEST_RC" = 0 ]; then
        result "qemu-$machine-poweroff" pass
    else
        result "qemu-$machine-poweroff" fail "rc=$GUEST_RC"
    fi
    # The guest's own checks, reported on its console.
    if grep -q 'status=fail' "$FLINT_WORK/qemu-$machine.console" ||
        ! grep -q 'FLINT-GUEST scenario-exit rc=0' "$FLINT_WORK/qemu-$machine.console"; then
        result "qemu-$machine-guest-checks" fail
    else
        result "qemu-$machine-guest-checks" pass "$(grep -c 'status=pass' "$FLINT_WORK/qemu-$machine.console") checks"
    fi
done
finish
