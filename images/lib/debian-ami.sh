# Builds an AMI-like raw disk image of a Debian release from Debian
# packages only (debootstrap + chroot), bootable by legacy BIOS (grub-pc)
# and UEFI (GRUB at the removable path EFI/BOOT/BOOTX64.EFI). Sourced by
# the images/debian-NN/build.sh recipes, which set, before sourcing:
#   IMAGE_NAME  the recipe's name (work dir, caches, messages)
#   SUITE       the Debian suite (bookworm, trixie)
#   recipe_dir  the recipe's folder: packages, initramfs-modules,
#               debian.sources, grub.cfg, cloud.cfg, ssh-host-keys.service
#   out         the output dir
# and define image_checks (run in the "checks" step; $mnt is the root).
#
# Output: disk.raw (sparse, 4 GiB virtual, GPT: 1 BIOS boot, 2 ESP, 3 ext4
# root) and info (key=value: sizes, kernel version, layout, UUIDs).
#
# Needs root, loop devices, debootstrap, sgdisk, mkfs.vfat, mkfs.ext4.
# Mirror: taken from the host's apt sources (override with
# FLINT_DEBIAN_MIRROR / FLINT_DEBIAN_SECURITY_MIRROR).
: "${IMAGE_NAME:?}" "${SUITE:?}" "${recipe_dir:?}" "${out:?}"
declare -F image_checks >/dev/null || die "$IMAGE_NAME: the recipe defines no image_checks"

DISK_SIZE=4G
BIOS_BOOT_MIB=1
ESP_MIB=100
IMAGE_HOSTNAME=debian

# One build at a time per cache (images/build holds a lock per recipe), so a
# fixed work dir is safe and lets a later run clean up after a killed one.
work=$FLINT_CACHE_DIR/work/$IMAGE_NAME
mnt=$work/root
disk=$out/disk.raw
loop=

for tool in debootstrap sgdisk mkfs.vfat mkfs.ext4 losetup fstrim chroot; do
    command -v "$tool" >/dev/null || die "$IMAGE_NAME: $tool not found (packages: debootstrap gdisk dosfstools e2fsprogs util-linux)"
done
((EUID == 0)) || die "$IMAGE_NAME: must run as root"

# ---------------------------------------------------------------- cleanup

# Ends processes whose root is inside the chroot (daemons a maintainer
# script may have started despite policy-rc.d), so the mounts can go.
kill_chroot_procs() {
    local p r found=0
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        if [[ $r == "$mnt" || $r == "$mnt"/* ]]; then
            log "$IMAGE_NAME: killing leftover chroot process ${p#/proc/} ($(tr '\0' ' ' <"$p/cmdline" 2>/dev/null))"
            kill -TERM "${p#/proc/}" 2>/dev/null || true
            found=1
        fi
    done
    if ((found)); then
        sleep 1
        for p in /proc/[0-9]*; do
            r=$(readlink "$p/root" 2>/dev/null) || continue
            [[ $r == "$mnt" || $r == "$mnt"/* ]] && kill -KILL "${p#/proc/}" 2>/dev/null || true
        done
    fi
    return 0
}

unmount_all() {
    local t
    kill_chroot_procs
    # Deepest first.
    while read -r t; do
        [[ -n $t ]] || continue
        umount "$t" 2>/dev/null || umount -l "$t" || log "$IMAGE_NAME: warning: cannot unmount $t"
    done < <(findmnt -rn -o TARGET | awk -v m="$mnt" '$0 == m || index($0, m "/") == 1' | sort -r)
}

detach_loops() {
    # Loop devices backed by this build's disk, or by a disk of an earlier
    # (killed) build of this recipe, which may have been deleted since.
    local dev back
    while read -r dev back; do
        [[ -n $dev ]] || continue
        if [[ $back == "$disk" || $back == "$FLINT_CACHE_DIR"/images/$IMAGE_NAME-[0-9a-f]*/disk.raw* ]]; then
            losetup -d "$dev" 2>/dev/null || log "$IMAGE_NAME: warning: cannot detach $dev ($back)"
        fi
    done < <(losetup -l -n -O NAME,BACK-FILE 2>/dev/null)
}

# The EXIT trap may run while a command's output is redirected to a log;
# keep the original stderr for its messages.
exec 3>&2
cleanup() {
    local rc=$?
    set +e
    exec 1>&3 2>&3
    unmount_all
    [[ -n $loop ]] && losetup -d "$loop" 2>/dev/null
    detach_loops
    ((rc == 0)) || log "$IMAGE_NAME: build failed (exit $rc); mounts and loop devices released"
    return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Leftovers of an earlier run that was killed before its trap could run.
if findmnt -rn -o TARGET | grep -q "^$mnt\(/\|$\)" ||
    losetup -l -n -O BACK-FILE 2>/dev/null | grep -q "^$FLINT_CACHE_DIR/images/$IMAGE_NAME-[0-9a-f]"; then
    log "$IMAGE_NAME: releasing mounts and loop devices left by an interrupted build"
fi
unmount_all
detach_loops
if findmnt -rn -o TARGET | grep -q "^$work/"; then
    die "$IMAGE_NAME: cannot unmount leftovers under $work"
fi
rm -rf "$work"
mkdir -p "$mnt"

# ---------------------------------------------------------------- mirror

# URIs of the first deb822 stanza (or one-line entry) of the host's apt
# sources whose suites include $1.
host_mirror() {
    local suite=$1 f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk -v s="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                u = ""; ok = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u = a[1] }
                    if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/); for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 }
                }
                if (ok && u != "") { print u; exit }
            }' "$f")
        [[ -n $uri ]] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk -v s="$suite" '$1 == "deb" { u = ($2 ~ /^\[/) ? $3 : $2; d = ($2 ~ /^\[/) ? $4 : $3; if (d == s) { print u; exit } }' "$f")
        [[ -n $uri ]] && { echo "${uri%/}"; return; }
    done
}
mirror=${FLINT_DEBIAN_MIRROR:-$(host_mirror "$SUITE")}
mirror=${mirror:-http://deb.debian.org/debian}
security_mirror=${FLINT_DEBIAN_SECURITY_MIRROR:-$(host_mirror "$SUITE-security")}
security_mirror=${security_mirror:-http://deb.debian.org/debian-security}
log "$IMAGE_NAME: mirror $mirror, security $security_mirror"

# ---------------------------------------------------------------- disk

log "$IMAGE_NAME: creating $DISK_SIZE sparse disk, GPT"
rm -f "$disk"
truncate -s "$DISK_SIZE" "$disk"
sgdisk --zap-all \
    -n "1:${BIOS_BOOT_MIB}M:+${BIOS_BOOT_MIB}M" -t 1:EF02 -c 1:bios-boot \
    -n "2:$((2 * BIOS_BOOT_MIB))M:+${ESP_MIB}M" -t 2:EF00 -c 2:esp \
    -n 3:0:0 -t 3:8300 -c 3:root \
    "$disk" >/dev/null

loop=$(losetup -f --show -P "$disk")
log "$IMAGE_NAME: attached $loop"
# Some kernels lack the GPT parser that losetup -P relies on; partx adds the
# partitions through BLKPG from userspace then.
sleep 0.2
[[ -b ${loop}p3 ]] || partx -a "$loop" 2>/dev/null || true
for _ in $(seq 50); do
    [[ -b ${loop}p3 ]] && break
    sleep 0.1
done
[[ -b ${loop}p1 && -b ${loop}p2 && -b ${loop}p3 ]] || die "$IMAGE_NAME: partition devices of $loop did not appear"

mkfs.vfat -F 32 -n EFI "${loop}p2" >/dev/null
# Features GRUB 2.06 and bookworm's e2fsprogs understand (no orphan_file,
# no metadata_csum_seed, which newer mke2fs defaults may turn on).
mkfs.ext4 -q -L root -O ^orphan_file,^metadata_csum_seed "${loop}p3"
root_uuid=$(blkid -c /dev/null -s UUID -o value "${loop}p3")
esp_uuid=$(blkid -c /dev/null -s UUID -o value "${loop}p2")
root_partuuid=$(blkid -c /dev/null -s PARTUUID -o value "${loop}p3")
[[ -n $root_uuid && -n $esp_uuid ]] || die "$IMAGE_NAME: cannot read filesystem UUIDs"
log "$IMAGE_NAME: root UUID $root_uuid, ESP UUID $esp_uuid"

mount "${loop}p3" "$mnt"

# ---------------------------------------------------------------- debootstrap

bootstrap_cache=$FLINT_CACHE_DIR/debs/debootstrap-$SUITE
apt_cache=$FLINT_CACHE_DIR/debs/$IMAGE_NAME-apt
mkdir -p "$bootstrap_cache" "$apt_cache/partial"

log "$IMAGE_NAME: debootstrap $SUITE (minbase)"
debootstrap --variant=minbase --arch=amd64 \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    --cache-dir="$bootstrap_cache" \
    "$SUITE" "$mnt" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "$IMAGE_NAME: debootstrap failed (log: $work/debootstrap.log)"
}
log "$IMAGE_NAME: debootstrap done ($(du -sh -x "$mnt" | cut -f1))"

# /boot/efi stays an empty mount point during the build: the ESP is
# written with mtools at the end (see "bootloader").
mkdir -p "$mnt/boot/efi"

# A private /dev for the chroot, so that nothing is created in the host's
# /dev: the basic nodes, the loop device and its partitions, and the
# /dev/disk/by-uuid links grub-mkconfig wants before it writes root=UUID=.
mount -t tmpfs -o mode=0755,size=16M devfs "$mnt/dev"
for n in null zero full random urandom tty console loop-control; do
    [[ -e /dev/$n ]] && cp -a "/dev/$n" "$mnt/dev/"
done
for n in "$loop" "$loop"p1 "$loop"p2 "$loop"p3; do
    cp -a "$n" "$mnt/dev/"
done
ln -s pts/ptmx "$mnt/dev/ptmx"
ln -s /proc/self/fd "$mnt/dev/fd"
ln -s /proc/self/fd/0 "$mnt/dev/stdin"
ln -s /proc/self/fd/1 "$mnt/dev/stdout"
ln -s /proc/self/fd/2 "$mnt/dev/stderr"
mkdir -p "$mnt/dev/pts" "$mnt/dev/shm" "$mnt/dev/disk/by-uuid" "$mnt/dev/disk/by-partuuid"
ln -s "../../${loop#/dev/}p3" "$mnt/dev/disk/by-uuid/$root_uuid"
ln -s "../../${loop#/dev/}p2" "$mnt/dev/disk/by-uuid/$esp_uuid"
ln -s "../../${loop#/dev/}p3" "$mnt/dev/disk/by-partuuid/$root_partuuid"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$mnt/dev/pts"
mount -t proc proc "$mnt/proc"
mount -t sysfs sysfs "$mnt/sys"
mount -t tmpfs -o mode=0755 tmpfs "$mnt/run"
mount -t tmpfs -o mode=1777 tmpfs "$mnt/tmp"
mount --bind "$apt_cache" "$mnt/var/cache/apt/archives"

in_chroot() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
        chroot "$mnt" "$@"
}
apt_in_chroot() {
    in_chroot apt-get -q -y -o APT::Sandbox::User=root \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# No daemons start during the build.
printf '#!/bin/sh\nexit 101\n' >"$mnt/usr/sbin/policy-rc.d"
chmod 755 "$mnt/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$mnt/etc/resolv.conf" 2>/dev/null || true

rm -f "$mnt/etc/apt/sources.list"
sed -e "s|@MIRROR@|$mirror|" -e "s|@SECURITY_MIRROR@|$security_mirror|" \
    "$recipe_dir/debian.sources" >"$mnt/etc/apt/sources.list.d/debian.sources"
echo "$IMAGE_HOSTNAME" >"$mnt/etc/hostname"
cat >"$mnt/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$IMAGE_HOSTNAME

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
cat >"$mnt/etc/fstab" <<EOF
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
UUID=$root_uuid	/	ext4	rw,discard,errors=remount-ro	0	1
UUID=$esp_uuid	/boot/efi	vfat	umask=0077,nofail,x-systemd.device-timeout=5min	0	2
EOF
# Devices may come late: on a slow host (an emulated one: Debian 13's first
# boot took over 90 s from "Expecting device" to udevd's coldplug) systemd's
# default 90 s device timeout sent the boot to emergency mode over the ESP,
# which the running system does not need (nofail), and could leave the
# serial console without its getty.
mkdir -p "$mnt/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultDeviceTimeoutSec=5min\n' >"$mnt/etc/systemd/system.conf.d/50-flint-device-timeout.conf"

# ---------------------------------------------------------------- packages

log "$IMAGE_NAME: apt-get update + upgrade"
apt_in_chroot update >/dev/null
apt_in_chroot dist-upgrade >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; die "$IMAGE_NAME: apt-get dist-upgrade failed"; }

# GRUB's debconf: no install device (this build runs grub-install itself; an
# instance's disk name is not known here).
in_chroot debconf-set-selections <<'EOF'
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
EOF

# initramfs-tools first, so that its modules list is in place before the
# kernel's initramfs is generated.
apt_in_chroot install --no-install-recommends initramfs-tools >>"$work/apt.log" 2>&1 ||
    { tail -n 30 "$work/apt.log" >&2; die "$IMAGE_NAME: installing initramfs-tools failed"; }
grep -v '^\s*#' "$recipe_dir/initramfs-modules" | sed '/^\s*$/d' >>"$mnt/etc/initramfs-tools/modules"

mapfile -t packages < <(sed 's/#.*//' "$recipe_dir/packages" | tr -s ' \t' '\n' | sed '/^$/d')
log "$IMAGE_NAME: installing ${#packages[@]} packages"
apt_in_chroot install --no-install-recommends "${packages[@]}" >>"$work/apt.log" 2>&1 ||
    { tail -n 40 "$work/apt.log" >&2; die "$IMAGE_NAME: apt-get install failed (log: $work/apt.log)"; }

kernel_version=$(cd "$mnt/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -n1)
[[ -n $kernel_version ]] || die "$IMAGE_NAME: no kernel in /boot"
log "$IMAGE_NAME: kernel $kernel_version, cloud-init $(in_chroot dpkg-query -W -f '${Version}' cloud-init)"

# ---------------------------------------------------------------- configuration

install -m 644 "$recipe_dir/grub.cfg" "$mnt/etc/default/grub.d/50-flint.cfg"
install -m 644 "$recipe_dir/cloud.cfg" "$mnt/etc/cloud/cloud.cfg.d/01_flint.cfg"
install -m 644 "$recipe_dir/ssh-host-keys.service" "$mnt/etc/systemd/system/ssh-host-keys.service"
in_chroot systemctl enable ssh-host-keys.service >/dev/null 2>&1
[[ -L $mnt/etc/systemd/system/ssh.service.wants/ssh-host-keys.service ]] || die "$IMAGE_NAME: cannot enable ssh-host-keys.service"
[[ -L $mnt/etc/systemd/system/multi-user.target.wants/ssh.service ]] || die "$IMAGE_NAME: ssh.service is not enabled"

# C.UTF-8 needs no generation; also provide en_US.UTF-8, the locale that
# cloud-init's Debian distro applies by default (saves a first-boot locale-gen).
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$mnt/etc/locale.gen"
in_chroot locale-gen >/dev/null
in_chroot update-locale LANG=C.UTF-8

# ---------------------------------------------------------------- bootloader

log "$IMAGE_NAME: GRUB: grub-install i386-pc on $loop, x86_64-efi core image at EFI/BOOT/BOOTX64.EFI"
in_chroot grub-install --target=i386-pc "$loop" >>"$work/grub.log" 2>&1 ||
    { cat "$work/grub.log" >&2; die "$IMAGE_NAME: grub-install i386-pc failed"; }
# UEFI: what `grub-install --target=x86_64-efi --efi-directory=/boot/efi
# --removable --no-nvram` does, by hand, because grub-install insists on the
# ESP being mounted and build hosts' kernels may lack vfat (this machine's
# does): modules into /boot/grub/x86_64-efi, a core image whose embedded
# config finds the root filesystem by UUID, copied to the removable path
# EFI/BOOT/BOOTX64.EFI on the ESP with mtools (Debian's package, unpacked).
efidir=/boot/grub/x86_64-efi
mkdir -p "$mnt$efidir"
cp "$mnt"/usr/lib/grub/x86_64-efi/*.mod "$mnt"/usr/lib/grub/x86_64-efi/*.lst "$mnt$efidir/"
printf '%s\n' "search.fs_uuid $root_uuid root" "set prefix=(\$root)'/boot/grub'" >"$mnt$efidir/load.cfg"
in_chroot grub-mkimage --directory=/usr/lib/grub/x86_64-efi --format=x86_64-efi \
    --prefix= --config="$efidir/load.cfg" --output="$efidir/core.efi" \
    ext2 part_gpt search_fs_uuid >>"$work/grub.log" 2>&1 ||
    { cat "$work/grub.log" >&2; die "$IMAGE_NAME: grub-mkimage x86_64-efi failed"; }
mtools_deb=$(fetch_deb mtools)
mkdir -p "$work/mtools"
dpkg-deb -x "$mtools_deb" "$work/mtools"
mt=$work/mtools/usr/bin
export MTOOLS_SKIP_CHECK=1
# (mtools complains that a partition has no geometry; that is harmless.)
{ "$mt/mmd" -i "${loop}p2" ::/EFI ::/EFI/BOOT &&
    "$mt/mcopy" -i "${loop}p2" "$mnt$efidir/core.efi" ::/EFI/BOOT/BOOTX64.EFI; } >"$work/mtools.log" 2>&1 ||
    { cat "$work/mtools.log" >&2; die "$IMAGE_NAME: writing EFI/BOOT/BOOTX64.EFI to the ESP failed"; }
in_chroot update-grub >>"$work/grub.log" 2>&1 ||
    { cat "$work/grub.log" >&2; die "$IMAGE_NAME: update-grub failed"; }

# ---------------------------------------------------------------- checks

grubcfg=$mnt/boot/grub/grub.cfg
grep -q "root=UUID=$root_uuid" "$grubcfg" || die "$IMAGE_NAME: grub.cfg does not boot root=UUID=$root_uuid"
grep -q 'console=tty0 console=ttyS0,115200n8' "$grubcfg" || die "$IMAGE_NAME: grub.cfg lacks the serial console"
grep -q '^serial --speed=115200' "$grubcfg" || die "$IMAGE_NAME: grub.cfg lacks the serial terminal"
if grep -E '^\s*linux\s' "$grubcfg" | grep -qw quiet; then die "$IMAGE_NAME: grub.cfg still says quiet"; fi
"$mt/mdir" -i "${loop}p2" ::/EFI/BOOT 2>/dev/null | grep -qi 'BOOTX64 *EFI' || die "$IMAGE_NAME: no EFI/BOOT/BOOTX64.EFI on the ESP"
[[ -f $mnt/boot/grub/i386-pc/core.img ]] || die "$IMAGE_NAME: no i386-pc core.img"
initrd=$mnt/boot/initrd.img-$kernel_version
[[ -f $initrd ]] || die "$IMAGE_NAME: no initramfs for $kernel_version"
initrd_list=$(in_chroot lsinitramfs "/boot/initrd.img-$kernel_version")
# Each either built into the kernel (Debian 13 builds virtio_pci in) or a
# module in the initramfs.
for m in virtio_pci virtio_blk virtio_net; do
    grep -q "^CONFIG_${m^^}=y" "$mnt/boot/config-$kernel_version" && continue
    grep -q "/$m\.ko" <<<"$initrd_list" || die "$IMAGE_NAME: $m missing from the initramfs"
done
for p in "${packages[@]}"; do
    in_chroot dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        die "$IMAGE_NAME: package $p is not installed"
done
image_checks

# ---------------------------------------------------------------- scrub

log "$IMAGE_NAME: scrubbing (apt caches, keys, machine-id, logs)"
umount "$mnt/var/cache/apt/archives"
apt_in_chroot clean >/dev/null
rm -rf "$mnt"/var/lib/apt/lists/*
mkdir -p "$mnt/var/lib/apt/lists/partial"
rm -f "$mnt/usr/sbin/policy-rc.d"
rm -f "$mnt"/etc/ssh/ssh_host_*
# Empty (not absent): systemd fills it in on first boot.
: >"$mnt/etc/machine-id"
rm -f "$mnt/var/lib/dbus/machine-id" "$mnt/var/lib/systemd/random-seed" "$mnt/var/lib/systemd/credential.secret"
: >"$mnt/etc/resolv.conf"
rm -rf "$mnt"/var/cache/debconf/*-old "$mnt"/var/lib/dpkg/*-old "$mnt"/var/tmp/* "$mnt"/root/.bash_history
rm -rf "$mnt"/var/lib/cloud/* 2>/dev/null || true
find "$mnt/var/log" -type f -exec truncate -s 0 {} +
# No passwords: every account's hash must be locked ('*' or '!').
if awk -F: '$2 !~ /^[*!]/ { print $1; bad = 1 } END { exit !bad }' "$mnt/etc/shadow" >&2; then
    die "$IMAGE_NAME: accounts above have a password"
fi

# ---------------------------------------------------------------- compact

unmount_all_but_root() {
    local t
    kill_chroot_procs
    while read -r t; do
        umount "$t"
    done < <(findmnt -rn -o TARGET | awk -v m="$mnt" 'index($0, m "/") == 1' | sort -r)
}
# Commit the journal first: blocks freed by the scrub are trimmable only then.
sync
fstrim -v "$mnt" || log "$IMAGE_NAME: warning: fstrim of the root failed"
unmount_all_but_root
umount "$mnt"
# Discard whatever fstrim missed, and replace the journal (64 MiB of stale
# transactions) by a fresh, zeroed one that --dig-holes turns into holes.
e2fsck -f -y -E discard "${loop}p3" >"$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log" >&2; die "$IMAGE_NAME: e2fsck found problems"; }
tune2fs -O ^has_journal "${loop}p3" >/dev/null
tune2fs -O has_journal "${loop}p3" >/dev/null
e2fsck -f -n "${loop}p3" >>"$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log" >&2; die "$IMAGE_NAME: e2fsck found problems"; }
fsck.vfat -n "${loop}p2" >"$work/fsck-vfat.log" 2>&1 || { cat "$work/fsck-vfat.log" >&2; die "$IMAGE_NAME: fsck.vfat found problems"; }
sync
losetup -d "$loop"
loop=
# Whatever is still zero on disk (inode tables, journal) becomes holes.
fallocate --dig-holes "$disk"
sgdisk -v "$disk" >/dev/null || die "$IMAGE_NAME: GPT verification failed"

virtual=$(stat -c %s "$disk")
allocated=$(($(stat -c %b "$disk") * $(stat -c %B "$disk")))
root_size_mib=$(($(sgdisk -i 3 "$disk" | awk '/^Partition size:/ {print $3}') / 2048))
cat >"$out/info" <<EOF
virtual_size=$virtual
allocated_size=$allocated
kernel_version=$kernel_version
partition_table=gpt
partitions=1:bios_boot:EF02:${BIOS_BOOT_MIB}MiB,2:esp:EF00:vfat:${ESP_MIB}MiB,3:root:8300:ext4:${root_size_mib}MiB
root_partition=3
root_uuid=$root_uuid
root_partuuid=$root_partuuid
esp_uuid=$esp_uuid
boot_modes=legacy-bios,uefi
suite=$SUITE
EOF
log "$IMAGE_NAME: disk.raw virtual $((virtual / 1048576)) MiB, allocated $((allocated / 1048576)) MiB, kernel $kernel_version"
