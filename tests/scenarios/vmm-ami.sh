# An AMI (the test variant of debian-12 or debian-13, images/debian-NN-test)
# booted by Flint through SeaBIOS and the image's own GRUB, in the emulated
# KVM host.
# Two instances, one after the other (side by side, nested SVM under
# multi-threaded TCG once crashed the emulated host's kernel):
#  ami1: 1 vCPU. Boots to login, reports, reboots itself, boots to login
#        again, reports, powers itself off -> flint exits 0.
#  ami2: 2 vCPUs. Boots to login, reports, then is shut down gracefully
#        through the control socket (ACPI power button) -> flint exits 0.
# Then (unless FLINT_AMI_BAD_DISKS=0) disks that cannot boot: zeros, a
# truncated image, an empty file.
one=${FLINT_DISK_AMI1:?run with --disk ami1=PATH}
two=${FLINT_DISK_AMI2:?run with --disk ami2=PATH}
iid1=i-0a1b2c3d4e5f60718
iid2=i-0fedcba9876543210
sock=$FLINT_WORK/ami2.sock
api() { curl -s --max-time 10 --unix-socket "$1" -X "$2" "http://vm$3"; }

start_guest ami1 "$FLINT_BIN" vmm --image "$one" --vcpus 1 --memory 768 --console stdio \
    --instance-id "$iid1" --instance-type t3.micro

# Where the time goes, for ami1's first boot (ms since the process started).
stage() { # NAME PATTERN TIMEOUT
    if wait_console ami1 "$2" "$3"; then
        metric "flint-ami-$1" "$WAITED_MS" ms
        result "ami-$1" pass "ms=$WAITED_MS"
    else
        result "ami-$1" fail "pattern=$2 wait=$?"
    fi
}
# (Each window counts from the previous stage. Generous: GRUB reads the
# kernel and initrd through the firmware's disk calls, every sector a
# nested exit; on a busy machine that alone took over 180 s.)
stage firmware 'SeaBIOS' 120
stage grub 'Welcome to GRUB|Booting .Debian' 300
stage kernel 'Linux version' 600
stage userspace 'Welcome to .*Debian' 900
stage login 'login:' 900

# report NAME KEY: the value of the first "FLINT-AMI KEY=" line in NAME's
# console after its last "FLINT-AMI boot=" line.
report() {
    awk -v k="FLINT-AMI $2=" '
        index($0, "FLINT-AMI boot=") { delete seen }
        { i = index($0, k) }
        i && !(k in seen) { v = substr($0, i + length(k)); sub(/\r$/, "", v); seen[k] = 1; last = v }
        END { print last }' "$FLINT_WORK/$1.console"
}
# check_identity NAME ID TYPE VCPUS: one boot's report.
check_identity() {
    local n=$1 id=$2 type=$3 cpus=$4 uuid serial
    [ "$(report "$n" sys_vendor)" = Amazon_EC2 ] && result "$n-sys-vendor" pass || result "$n-sys-vendor" fail "got=$(report "$n" sys_vendor)"
    [ "$(report "$n" bios_vendor)" = Amazon_EC2 ] && result "$n-bios-vendor" pass || result "$n-bios-vendor" fail "got=$(report "$n" bios_vendor)"
    [ "$(report "$n" product_name)" = "$type" ] && result "$n-product-name" pass || result "$n-product-name" fail "got=$(report "$n" product_name)"
    [ "$(report "$n" board_asset_tag)" = "$id" ] && result "$n-asset-tag" pass || result "$n-asset-tag" fail "got=$(report "$n" board_asset_tag)"
    uuid=$(report "$n" product_uuid)
    serial=$(report "$n" product_serial)
    case $uuid in ec2*) [ "$uuid" = "$serial" ] && result "$n-uuid-ec2" pass "uuid=$uuid" || result "$n-uuid-ec2" fail "uuid=$uuid serial=$serial" ;;
    *) result "$n-uuid-ec2" fail "uuid=$uuid serial=$serial" ;; esac
    [ "$(report "$n" detect_virt)" = amazon ] && result "$n-detect-virt" pass || result "$n-detect-virt" fail "got=$(report "$n" detect_virt)"
    [ "$(report "$n" nproc)" = "$cpus" ] && result "$n-vcpus" pass || result "$n-vcpus" fail "got=$(report "$n" nproc)"
    kib=$(report "$n" mem_kib)
    [ "${kib:-0}" -gt $((600 * 1024)) ] && [ "$kib" -le $((768 * 1024)) ] && result "$n-memory" pass "kib=$kib" || result "$n-memory" fail "kib=$kib"
    case $(report "$n" datasource_list) in \[Ec2,None\]|\[Ec2\]) result "$n-ds-identify-ec2" pass ;;
    *) result "$n-ds-identify-ec2" fail "list=$(report "$n" datasource_list) $(report "$n" ds_identify)" ;; esac
    case $(report "$n" acpi_tables) in *DSDT*FACP*) result "$n-acpi-tables" pass ;; *) result "$n-acpi-tables" fail "$(report "$n" acpi_tables)" ;; esac
    # These VMs have no NIC: Debian 13's systemd-networkd-wait-online then
    # fails (no link comes up), as it would on any host without a network;
    # serve_e2e boots Debian 13 with its NIC, DHCP and metadata. Any other
    # failed unit fails the check.
    failed=$(report "$n" failed_units | sed 's/systemd-networkd-wait-online\.service,//')
    [ -z "$failed" ] && result "$n-no-failed-units" pass "$(report "$n" failed_units)" || result "$n-no-failed-units" fail "$failed"
}

# ---- ami1: reboot from inside, then poweroff from inside
if wait_console ami1 'FLINT-AMI action=reboot' 600; then
    check_identity ami1 "$iid1" t3.micro 1
    # 1500 s: Debian 13's second boot waits 2 min for networkd (no NIC here)
    # and took over 900 s on a loaded machine.
    if wait_console ami1 'FLINT-AMI action=poweroff' 1500; then
        result ami1-rebooted pass "ms=$WAITED_MS"
        check_identity ami1 "$iid1" t3.micro 1
        wait_exit ami1 300
        # (After the exit: the report may come before agetty's prompt.)
        [ "$(grep -c 'login:' "$FLINT_WORK/ami1.console")" -ge 2 ] && result ami1-login-after-reboot pass ||
            result ami1-login-after-reboot fail "prompts=$(grep -c 'login:' "$FLINT_WORK/ami1.console")"
        [ "$GUEST_RC" = 0 ] && result ami1-poweroff-exit-0 pass || result ami1-poweroff-exit-0 fail "rc=$GUEST_RC"
    else
        result ami1-rebooted fail
        stop_guest ami1
    fi
else
    result ami1-report fail
    stop_guest ami1
fi

# ---- ami2: graceful shutdown through the control socket (unless
# FLINT_AMI_SECOND=0: serve_e2e stops that AMI through the same ACPI power
# button with StopInstances)
if [ "${FLINT_AMI_SECOND:-1}" = 1 ]; then
start_guest ami2 "$FLINT_BIN" vmm --image "$two" --vcpus 2 --memory 768 --console stdio \
    --instance-id "$iid2" --instance-type m5.large --api-socket "$sock" --shutdown-timeout 300
# 1200 s: two vCPUs share one emulated CPU (images/emuhost/init).
if wait_console ami2 'FLINT-AMI action=wait' 1200; then
    check_identity ami2 "$iid2" m5.large 2
    reply=$(api "$sock" PUT /vm/shutdown)
    case $reply in *accepted*) result ami2-api-shutdown-accepted pass ;; *) result ami2-api-shutdown-accepted fail "$reply" ;; esac
    wait_exit ami2 330
    [ "$GUEST_RC" = 0 ] && result ami2-graceful-shutdown pass || result ami2-graceful-shutdown fail "rc=$GUEST_RC"
    expect ami2-clean-poweroff grep -qE 'reboot: Power down|Reached target .*Power-Off' "$FLINT_WORK/ami2.console"
else
    result ami2-report fail
    stop_guest ami2
fi

fi

# ---- disks that cannot boot: a clear message and a clean exit
[ "${FLINT_AMI_BAD_DISKS:-1}" = 0 ] && finish
blank=$FLINT_WORK/blank.img
dd if=/dev/zero of="$blank" bs=1M count=0 seek=64 2>/dev/null
start_guest blank "$FLINT_BIN" vmm --image "$blank" --console stdio --memory 256
wait_exit blank 120
[ "$GUEST_RC" = 5 ] && result blank-disk-exit-5 pass || result blank-disk-exit-5 fail "rc=$GUEST_RC"
expect blank-disk-no-bootable-device grep -q 'No bootable device' "$FLINT_WORK/blank.console"
expect blank-disk-reason grep -q 'no operating system started' "$FLINT_WORK/blank.console"

# The first MiB of the AMI: protective MBR, GPT and GRUB's boot sector,
# but not GRUB's core image (it lives in the BIOS boot partition at 1 MiB).
trunc=$FLINT_WORK/truncated.img
dd if="$one" of="$trunc" bs=1M count=1 2>/dev/null
start_guest trunc "$FLINT_BIN" vmm --image "$trunc" --console stdio --memory 256
wait_exit trunc 120
[ "$GUEST_RC" = 5 ] && result truncated-image-exit-5 pass || result truncated-image-exit-5 fail "rc=$GUEST_RC"
expect truncated-image-reports grep -qE 'Read Error|No bootable device' "$FLINT_WORK/trunc.console"

empty=$FLINT_WORK/empty.img
: >"$empty"
start_guest empty "$FLINT_BIN" vmm --image "$empty" --console stdio
wait_exit empty 30
[ "$GUEST_RC" = 1 ] && result empty-image-exit-1 pass || result empty-image-exit-1 fail "rc=$GUEST_RC"
expect empty-image-reason grep -q 'is empty' "$FLINT_WORK/empty.console"
finish
