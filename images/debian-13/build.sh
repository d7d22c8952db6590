#!/usr/bin/env bash
# debian-13: an AMI-like raw disk image of Debian 13 (trixie), built from
# Debian packages only by images/lib/debian-ami.sh (see there: layout,
# output). Networking as Debian 13's own cloud images: cloud-init renders
# netplan, which hands the NIC to systemd-networkd (no ifupdown, no
# dhclient).
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
IMAGE_NAME=debian-13
SUITE=trixie
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(realpath "$1")
image_checks() {
    [[ -x $mnt/usr/sbin/netplan && -x $mnt/usr/lib/systemd/systemd-networkd ]] ||
        die "$IMAGE_NAME: netplan/systemd-networkd missing"
    [[ ! -e $mnt/usr/sbin/ifup ]] || die "$IMAGE_NAME: ifupdown is installed (cloud-init would render eni)"
    in_chroot systemctl is-enabled systemd-networkd.service >/dev/null 2>&1 ||
        in_chroot systemctl enable systemd-networkd.service >/dev/null 2>&1 ||
        die "$IMAGE_NAME: cannot enable systemd-networkd"
}
source "$IMAGES_DIR/lib/debian-ami.sh"
