# The demo scenario: KVM works, then the test guest boots under KVM, runs a
# few commands and powers off.
echo "== flint kvm-check"
"$FLINT_BIN" kvm-check && result kvm-check pass || result kvm-check fail

cat >"$FLINT_WORK/guest.sh" <<'GUEST'
echo "hello from $(uname -sr), $(grep -c ^processor /proc/cpuinfo) vCPU(s), $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB"
check virtio-pci grep -q '^virtio_pci ' /proc/modules
GUEST
echo "== booting the test guest under KVM"
start_guest guest qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 256 -smp 2 \
    -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" \
    -append "console=ttyS0 panic=-1 flint.script=$(guest_script "$FLINT_WORK/guest.sh")" \
    -nodefaults -serial stdio -display none -no-reboot
wait_console guest 'FLINT-GUEST ready' 180 && result guest-ready pass "ms=$WAITED_MS" || result guest-ready fail
wait_exit guest 120 && [ "$GUEST_RC" = 0 ] && result guest-poweroff pass || result guest-poweroff fail "rc=$GUEST_RC"
finish
