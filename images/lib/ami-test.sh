# The test variant of an AMI recipe (images/debian-NN-test): the AMI plus
# test instrumentation, for the end-to-end AMI scenarios (the AMI itself
# stays untouched). Sourced by the recipes, which set TEST_NAME, base (the
# AMI's disk.raw) and out.
# - flint-report.service prints the guest's view of the platform on the
#   serial console (FLINT-AMI key=value lines: DMI identity,
#   systemd-detect-virt, CPUs, memory, ds-identify's datasource list) once
#   the login prompt is up, then acts: with 1 vCPU it reboots on the first
#   boot and powers off on the second; with more it waits (the scenario
#   shuts it down through the control socket).
# - cloud-init's Ec2 datasource gives up on the metadata service after a
#   few seconds instead of minutes (there is no metadata service before the
#   networking milestone). Datasource *selection* is left to ds-identify.
: "${TEST_NAME:?}" "${base:?}" "${out:?}"
((EUID == 0)) || die "$TEST_NAME: must run as root"

cp --sparse=always "$base" "$out/disk.raw"
mnt=$(mktemp -d)
loop=$(losetup -f --show -P "$out/disk.raw")
cleanup() {
    umount "$mnt" 2>/dev/null || true
    losetup -d "$loop" 2>/dev/null || true
    rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT
sleep 0.2
[[ -b ${loop}p3 ]] || partx -a "$loop" 2>/dev/null || true
for _ in $(seq 50); do [[ -b ${loop}p3 ]] && break; sleep 0.1; done
[[ -b ${loop}p3 ]] || die "$TEST_NAME: partition 3 of $loop did not appear"
mount "${loop}p3" "$mnt"
install -m 0755 "$IMAGES_DIR/lib/ami-test/flint-report" "$mnt/usr/local/sbin/flint-report"
install -m 0644 "$IMAGES_DIR/lib/ami-test/flint-report.service" "$mnt/etc/systemd/system/flint-report.service"
ln -sf /etc/systemd/system/flint-report.service "$mnt/etc/systemd/system/multi-user.target.wants/flint-report.service"
install -m 0644 "$IMAGES_DIR/lib/ami-test/99_flint_test.cfg" "$mnt/etc/cloud/cloud.cfg.d/99_flint_test.cfg"
sync
umount "$mnt"
losetup -d "$loop"
fallocate --dig-holes "$out/disk.raw"
log "$TEST_NAME: $(du -h "$out/disk.raw" | cut -f1) on disk"
