#!/usr/bin/env bash
# emuhost: the emulated KVM host that tests/emuhost/run boots under QEMU TCG.
# Output:
#   vmlinuz    Debian's cloud kernel (from test-kernel)
#   initrd.gz  busybox + the modules for virtio disks, KVM (kvm, kvm-amd),
#              TAP/bridge/veth networking; /init is images/emuhost/init
#   tools.ext4 a read-only disk with the host's qemu-system-x86_64, its
#              shared libraries and firmware, laid out as a root overlay, so
#              scenarios can run QEMU-KVM inside the emulated host
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
source "$IMAGES_DIR/lib/initramfs.sh"
out=$1
kernel=${FLINT_IMAGE_TEST_KERNEL:?}
version=$(cat "$kernel/version")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

root=$work/root
initramfs_base "$root"
initramfs_add_modules "$root" "$kernel/modules/$version" \
    virtio_pci virtio_blk virtio_net kvm kvm_amd tun bridge veth loop
install -m 0755 "$IMAGES_DIR/emuhost/init" "$root/init"
initramfs_pack "$root" "$out/initrd.gz"
cp "$kernel/vmlinuz" "$out/vmlinuz"

# The tools disk: binaries plus every shared library they load.
tools=$work/tools
binaries=(/usr/bin/qemu-system-x86_64 /usr/bin/qemu-img /usr/sbin/ip /usr/bin/taskset /usr/bin/curl /usr/bin/fio
    /usr/bin/ssh /usr/bin/ssh-keygen)
mkdir -p "$tools/usr/bin" "$tools/lib/x86_64-linux-gnu" "$tools/lib64" "$tools/usr/share"
for bin in "${binaries[@]}"; do
    [[ -x $bin ]] || die "missing $bin (run scripts/install-deps)"
    cp "$bin" "$tools/usr/bin/"
    ldd "$bin" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
        cp -L "$lib" "$tools/lib/x86_64-linux-gnu/"
    done
done
# Rust binaries need libgcc_s for unwinding.
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$tools/lib/x86_64-linux-gnu/"
cp -L /lib64/ld-linux-x86-64.so.2 "$tools/lib64/"
cp -rL /usr/share/qemu /usr/share/seabios "$tools/usr/share/"
mkdir -p "$tools/usr/lib/x86_64-linux-gnu"
cp -rL /usr/lib/x86_64-linux-gnu/qemu "$tools/usr/lib/x86_64-linux-gnu/"
dpkg-query -W qemu-system-x86 seabios >"$tools/VERSIONS"
size_mb=$(($(du -sm "$tools" | cut -f1) + 32))
mkfs.ext4 -q -F -L flint-tools -d "$tools" "$out/tools.ext4" "${size_mb}M"
log "emuhost: initrd $(du -h "$out/initrd.gz" | cut -f1), tools disk ${size_mb} MiB ($(wc -l <"$tools/VERSIONS") packages)"
