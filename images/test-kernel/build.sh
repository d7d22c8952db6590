#!/usr/bin/env bash
# test-kernel: Debian's linux-image-cloud-amd64, as shipped.
# Output: vmlinuz (bzImage), vmlinux (ELF, extracted from the bzImage's LZ4
# payload), config, version, modules/<version>/ (the package's module tree).
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
out=$1

pkg=$(cloud_kernel_package)
deb=$(fetch_deb "$pkg")
log "test-kernel: unpacking $(basename "$deb")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work"

vmlinuz=$(ls "$work"/boot/vmlinuz-*)
version=${vmlinuz##*/vmlinuz-}
cp "$vmlinuz" "$out/vmlinuz"
cp "$work/boot/config-$version" "$out/config"
echo "$version" >"$out/version"
# The package leaves modules.dep to depmod at install time; generate it so
# initramfs recipes can resolve module dependencies.
depmod -b "$work" "$version"
mkdir -p "$out/modules"
cp -a "$work/lib/modules/$version" "$out/modules/"

# The bzImage's protected-mode payload is an LZ4 (legacy frame) compressed
# ELF vmlinux; its offset and length within the protected-mode code are
# payload_offset/payload_length at 0x248/0x24c of the setup header, and the
# protected-mode code starts after (setup_sects + 1) * 512 bytes.
u8() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
setup_sects=$(u8 "$out/vmlinuz" $((0x1f1)))
((setup_sects == 0)) && setup_sects=4
payload_offset=$(u32 "$out/vmlinuz" $((0x248)))
payload_length=$(u32 "$out/vmlinuz" $((0x24c)))
start=$(((setup_sects + 1) * 512 + payload_offset))
log "test-kernel: extracting vmlinux ($payload_length compressed bytes at $start)"
dd if="$out/vmlinuz" of="$work/payload.lz4" iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" status=none
magic=$(od -An -t x1 -N 4 "$work/payload.lz4" | tr -d ' ')
[[ $magic == 02214c18 ]] || die "payload is not a legacy LZ4 frame (magic $magic)"
# lz4 complains about the size trailer after the last block; the output is whole.
lz4 -d -c "$work/payload.lz4" >"$out/vmlinux" 2>/dev/null || true
file "$out/vmlinux" | grep -q 'ELF 64-bit.*x86-64' || die "extracted vmlinux is not an x86-64 ELF"
log "test-kernel: $version ($(du -h "$out/vmlinuz" | cut -f1) bzImage, $(du -h "$out/vmlinux" | cut -f1) vmlinux)"
