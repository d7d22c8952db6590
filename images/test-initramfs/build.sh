#!/usr/bin/env bash
# test-initramfs: a busybox-static initramfs for direct-boot tests of the
# test kernel. See images/test-initramfs/init for what it does at boot.
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
source "$IMAGES_DIR/lib/initramfs.sh"
out=$1
kernel=${FLINT_IMAGE_TEST_KERNEL:?}
version=$(cat "$kernel/version")

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
initramfs_base "$root"
# virtio transport and devices; button + evdev so that an ACPI power-button
# press reaches the init's watcher.
initramfs_add_modules "$root" "$kernel/modules/$version" \
    virtio_pci virtio_blk virtio_net button evdev
install -m 0755 "$IMAGES_DIR/test-initramfs/init" "$root/init"
install -m 0644 "$IMAGES_DIR/test-initramfs/guest-lib.sh" "$root/lib/flint-guest.sh"
echo "$version" >"$root/etc/kernel-version"
initramfs_pack "$root" "$out/initramfs.gz"
cp "$root/lib/modules/load-order" "$out/modules.txt"
log "test-initramfs: $(wc -l <"$out/modules.txt") modules, $(du -h "$out/initramfs.gz" | cut -f1)"
