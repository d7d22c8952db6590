# Runner failure self-test: a guest that never prints its ready line (its
# init is a shell with nothing to do). The scenario must fail on its wait.
start_guest stuck qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 256 -smp 1 \
    -kernel "$FLINT_KERNEL" -initrd "$FLINT_INITRAMFS" \
    -append "console=ttyS0 quiet rdinit=/bin/sh" \
    -nodefaults -serial stdio -display none -no-reboot
if wait_console stuck 'FLINT-GUEST ready' 20; then
    result guest-ready pass
else
    result guest-ready fail "wait=$? (expected: this self-test must fail)"
fi
stop_guest stuck
finish
