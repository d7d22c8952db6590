#!/usr/bin/env bash
# debian-12: an AMI-like raw disk image of Debian 12 (bookworm), built from
# Debian packages only by images/lib/debian-ami.sh (see there: layout,
# output). Networking as Debian 12's own cloud images: cloud-init renders
# ifupdown (eni) with dhclient.
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
IMAGE_NAME=debian-12
SUITE=bookworm
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(realpath "$1")
image_checks() {
    [[ -x $mnt/usr/sbin/ifup && -x $mnt/sbin/dhclient ]] || die "$IMAGE_NAME: ifupdown/dhclient missing"
}
source "$IMAGES_DIR/lib/debian-ami.sh"
