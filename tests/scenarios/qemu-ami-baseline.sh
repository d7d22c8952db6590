# The debian-12 AMI under QEMU-KVM (-M pc: SeaBIOS, the image's own GRUB,
# virtio-blk-pci) in the same emulated host Flint is tested in: proves the
# image boots under real KVM to a login prompt and records the baseline
# split (firmware, GRUB, kernel, userspace) that Flint's AMI boot is
# compared with.
disk=${FLINT_DISK_DEBIAN12:?run with --disk debian12=PATH}
# SeaBIOS writes to the serial port when fw_cfg has etc/sercon-port (a
# little-endian port number), as Flint's fw_cfg will.
printf '\370\003' >"$FLINT_WORK/sercon-port"
# One vCPU: the emulated host runs guests on one of its CPUs
# (images/emuhost/init), where a second vCPU only slows the boot down.
start_guest ami qemu-system-x86_64 -M pc -enable-kvm -cpu host -m 1024 -smp 1 \
    -drive "file=$disk,format=raw,if=none,id=root,cache=unsafe" \
    -device virtio-blk-pci,drive=root,bootindex=0 \
    -fw_cfg "name=etc/sercon-port,file=$FLINT_WORK/sercon-port" \
    -nodefaults -serial stdio -display none -no-reboot
stage() { # NAME PATTERN TIMEOUT
    if wait_console ami "$2" "$3"; then
        metric "qemu-ami-$1" "$WAITED_MS" ms
        result "ami-$1" pass "ms=$WAITED_MS"
    else
        result "ami-$1" fail "pattern=$2 wait=$?"
    fi
}
stage firmware 'SeaBIOS' 60
stage grub 'Booting .Debian|Loading Linux' 120
stage kernel 'Linux version' 120
stage userspace 'Welcome to .*Debian' 600
stage login 'login:' 900
expect ami-no-failed-units sh -c "! grep -a 'FAILED' '$FLINT_WORK/ami.console'"
stop_guest ami
finish
