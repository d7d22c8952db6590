# AMI boot benchmark, side by side in one emulated host: the debian-12-test
# image (first boot each: every VMM gets its own copy) under Flint and under
# QEMU -M pc (SeaBIOS, virtio-blk-pci), 2 vCPUs, 768 MiB, one after the
# other. Both present EC2's SMBIOS identity (QEMU through -smbios), so
# both guests take the same path: cloud-init's Ec2 datasource, with no
# NIC and so no metadata service (without it, a QEMU guest's ds-identify
# disables cloud-init and skips minutes of work Flint's guest does).
# Prints the time from process start to each stage; never pass/fail on
# numbers.
flint_disk=${FLINT_DISK_AMI_FLINT:?}
qemu_disk=${FLINT_DISK_AMI_QEMU:?}
printf '\370\003' >"$FLINT_WORK/sercon-port"

stages() { # NAME
    local n=$1
    for s in "firmware SeaBIOS" "grub Welcome.to.GRUB|Booting..Debian" "kernel Linux.version" \
        "userspace Welcome.to.*Debian" "login login:"; do
        set -- $s
        # Generous: a 2-vCPU guest shares one emulated CPU (emuhost/init),
        # and QEMU's userspace-to-login took over 600 s in such a run.
        if wait_console "$n" "$2" 1200; then
            metric "$n-$1" "$WAITED_MS" ms
        else
            result "$n-$1" fail
        fi
    done
    wait_console "$n" 'FLINT-AMI action=' 120 || true
    stop_guest "$n"
    result "$n-measured" pass
}

start_guest flint "$FLINT_BIN" vmm --image "$flint_disk" --vcpus 2 --memory 768 --console stdio \
    --instance-type m5.large
stages flint
uuid=ec2a7b3c-1d2e-4f50-8a9b-0c1d2e3f4a5b
start_guest qemu qemu-system-x86_64 -M pc -enable-kvm -cpu host -m 768 -smp 2 \
    -smbios "type=0,vendor=Amazon EC2" \
    -smbios "type=1,manufacturer=Amazon EC2,product=m5.large,uuid=$uuid,serial=$uuid" \
    -smbios "type=2,manufacturer=Amazon EC2,asset=i-0123456789abcdef0" \
    -smbios "type=3,manufacturer=Amazon EC2,asset=Amazon EC2" \
    -drive "file=$qemu_disk,format=raw,if=none,id=root,cache=none,aio=io_uring" \
    -device virtio-blk-pci,drive=root,bootindex=0 \
    -fw_cfg "name=etc/sercon-port,file=$FLINT_WORK/sercon-port" \
    -nodefaults -serial stdio -display none -no-reboot
stages qemu
finish
