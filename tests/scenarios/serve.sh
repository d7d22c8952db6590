# flint serve end to end in the emulated KVM host: an AMI ($FLINT_AMI_NAME:
# debian-12, the default one, or debian-13; not the test variants, which
# reboot themselves on 1 vCPU) registered through the EC2 API, then one of
# two halves ($FLINT_SERVE_MODE), each in an emulated host of its own so
# that they run side by side:
#  clients: real clients (boto3, the aws CLI) on the machine outside drive
#           the daemon through a port forward; their instance covers boot,
#           DHCP + IMDS, user data, EC2's identity, volumes at every phase,
#           reboot, stop/start, terminate.
#  inhost:  an instance with a key pair and a user-data script, SSH, EC2's
#           identity seen by the guest, EBS volumes (hot-attach, write,
#           detach, snapshot, a volume from it with the data, force-detach),
#           two jailed VMMs side by side (uid, capabilities, no_new_privs,
#           seccomp, root, cgroup), SIGKILL of the daemon while the VM runs
#           (re-adoption), a graceful stop of the re-adopted VM, data on the
#           root volume surviving stop/start, terminate.
#
# Guests boot one after another, never two at once: the emulated host runs
# every guest on one CPU, and two nested guests sharing it take more than
# twice as long as one after the other. Each Debian boot costs minutes
# here, so the in-host half boots its instance twice (the second instance
# runs only long enough to show its jail).
#
# The emulated host has no Python (so no boto3): the EC2 Query API is
# driven with curl on the daemon's loopback TCP listener, the same
# requests boto3 sends (unsigned: the daemon runs without --credentials).
ami=${FLINT_DISK_AMI:?run with --disk ami=PATH}
data=$FLINT_WORK/data
port=8773
api=http://127.0.0.1:$port/
echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd 2>/dev/null || true
mkdir -p /root/.ssh "$data" 2>/dev/null || true
key=$FLINT_WORK/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C flint-serve-e2e -f "$key" || result ssh-keygen fail

# ec2 ACTION [NAME=VALUE...]: the reply (XML) on stdout, HTTP status in
# $FLINT_WORK/status.
ec2() {
    local action=$1 arg
    shift
    set -- -d "Action=$action" -d Version=2016-11-15 "$@"
    curl -s --max-time 60 -o "$FLINT_WORK/reply.xml" -w '%{http_code}' "$@" "$api" >"$FLINT_WORK/status"
    cat "$FLINT_WORK/reply.xml"
}
# p NAME=VALUE: one form parameter, URL-encoded.
p() { printf -- '--data-urlencode\n%s\n' "$1"; }
# first TAG: the first <TAG>value</TAG> of the XML on stdin.
first() { grep -o "<$1>[^<]*</$1>" | head -n1 | sed 's/<[^>]*>//g'; }
state_of() { ec2 DescribeInstances -d "InstanceId.1=$1" | grep -o '<instanceState><code>[0-9]*</code><name>[a-z-]*</name>' | sed 's/.*<name>//; s/<.*//'; }
# wait_state ID STATE TIMEOUT_S
wait_state() {
    local deadline=$(($(now_ms) + $3 * 1000)) s
    while :; do
        s=$(state_of "$1")
        [ "$s" = "$2" ] && return 0
        [ "$(now_ms)" -ge "$deadline" ] && { echo "wait_state $1: still $s, wanted $2"; return 1; }
        sleep 2
    done
}
ssh_guest() {
    # (LogLevel=ERROR: no "Permanently added" warning mixed into outputs
    # the checks below read.)
    ssh -i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=15 \
        -o BatchMode=yes -o LogLevel=ERROR "debian@$ip" "$@"
}
# ssh_retry CMD: sshd comes up after cloud-init made the host keys; a boot
# after StartInstances takes minutes in a busy emulated host.
ssh_retry() {
    local i
    for i in $(seq 90); do
        ssh_guest "$@" && return 0
        sleep 10
    done
    return 1
}
wait_api() {
    local i
    for i in $(seq 100); do
        curl -s --max-time 2 -o /dev/null "$api" && return 0
        sleep 0.2
    done
    return 1
}

# The emulated host has 3 GiB: the two 1 GiB instances side by side (the
# jail check) take more than its free memory at admission; they touch
# little of it before the second one stops.
start_guest serve "$FLINT_BIN" serve --data-dir "$data" --socket "$FLINT_WORK/flint.sock" \
    --listen 127.0.0.1:$port --insecure-no-auth --subnet 172.31.0.0/20 --bridge flintbr0 --max-instance-memory 1024 \
    --memory-overcommit 1.5
wait_api && result serve-listening pass || result serve-listening fail
# The root volume is a sparse copy of the AMI's data (~600 MB for
# debian-12 and debian-13) on the payload disk: say how much room there is.
metric payload-free-mib "$(df -Pm "$data" | awk 'NR == 2 { print $4 }')" MiB

# RegisterImage takes a regular file in the daemon's import dir
# ($data/import); in the emulated host the AMI is a block device, so it is
# copied (sparse) there first, in any case with qemu-img (busybox's cp
# cannot copy sparsely).
qemu-img convert -f raw -O raw "$ami" "$data/import/ami.raw" || result ami-copy fail
image=$(ec2 RegisterImage $(p "Name=${FLINT_AMI_NAME:-debian-12}") $(p "ImageLocation=$data/import/ami.raw") -d BootMode=legacy-bios | first imageId)
# The registered copy is what instances clone: the intermediate can go.
rm -f "$data/import/ami.raw"
if [ -z "$image" ]; then
    result register-image fail "$(cat "$FLINT_WORK/reply.xml")"
    # Everything after needs the image.
    kill "$(cat "$FLINT_WORK/serve.pid")" 2>/dev/null
    finish
fi
result register-image pass "image=$image"
ec2 ImportKeyPair -d KeyName=e2e $(p "PublicKeyMaterial=$(base64 <"$key.pub" | tr -d '\n')") >/dev/null
[ "$(cat "$FLINT_WORK/status")" = 200 ] && result import-key-pair pass || result import-key-pair fail "$(cat "$FLINT_WORK/reply.xml")"

# Real clients (boto3, the aws CLI from PyPI and Debian's) run on the
# machine outside, through the runner's port forward (--forward) and a relay
# here: the daemon itself listens on loopback only. They tell this script
# they are done by tagging the image flint-e2e-clients=<verdict>.
if [ "${FLINT_SERVE_MODE:?clients or inhost}" = clients ]; then
    [ -n "${FLINT_FORWARD_PORT:-}" ] || result clients-forward fail "run with --forward PORT:GUEST_PORT"
    nc -ll -p "$FLINT_FORWARD_PORT" -e nc 127.0.0.1 $port &
    relay=$!
    echo "FLINT-SERVE clients-ready image=$image"
    deadline=$(($(now_ms) + 3300000))
    verdict=""
    while [ -z "$verdict" ] && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 5
        verdict=$(ec2 DescribeTags -d Filter.1.Name=key -d Filter.1.Value.1=flint-e2e-clients | first value)
    done
    [ "$verdict" = pass ] && result clients-done pass || result clients-done fail "verdict=${verdict:-none}"
    kill "$relay" 2>/dev/null
    # What the clients left behind: every instance of theirs terminated.
    ec2 DescribeInstances >"$FLINT_WORK/clients.xml"
    n_live=$(grep -o '<name>[a-z-]*</name>' "$FLINT_WORK/clients.xml" | grep -vc '<name>terminated</name>')
    [ "$n_live" = 0 ] && result clients-left-nothing-running pass ||
        result clients-left-nothing-running fail "non-terminated=$n_live"
    kill "$(cat "$FLINT_WORK/serve.pid")" 2>/dev/null
    wait_exit serve 60
    finish
fi

# jail_check ID: the instance's jailed VMM (the process that is pid 1 of
# its own PID namespace; the relay the daemon tracks is its parent): every
# thread runs as one non-root uid with no capabilities, no_new_privs and a
# seccomp filter; its root holds only the VM's files; its cgroup has
# limits. Prints its uid, or why not.
jail_check() {
    local id=$1 d p vmm="" t why="" top
    for d in /proc/[0-9]*; do
        tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q "instances/$id/vm.json" || continue
        p=${d#/proc/}
        [ "$(awk '/^NSpid:/ { print NF == 3 && $3 == 1 }' "$d/status" 2>/dev/null)" = 1 ] && vmm=$p
    done
    [ -n "$vmm" ] || { echo "no jailed VMM process for $id"; return 1; }
    for t in /proc/"$vmm"/task/*; do
        why=$(awk -v t="${t##*/}" '
            /^Uid:|^Gid:/ { if ($2 == 0 || $2 != $3 || $2 != $4 || $2 != $5) print t ": " $0 }
            /^Cap(Inh|Prm|Eff|Bnd|Amb):/ { if ($2 != "0000000000000000") print t ": " $0 }
            /^NoNewPrivs:/ { if ($2 != 1) print t ": " $0 }
            /^Seccomp:/ { if ($2 != 2) print t ": " $0 }' "$t/status")
        [ -z "$why" ] || { echo "$why" | tr '\n' ' '; return 1; }
    done
    # Only the data dir's top and the firmware's (/usr/share/seabios).
    top=$(ls "/proc/$vmm/root" | tr '\n' ' ')
    case " $top" in *" etc "*|*" bin "*|*" dev "*|*" proc "*|*" root "*) echo "jail root has: $top"; return 1 ;; esac
    [ -e "/proc/$vmm/root/etc/shadow" ] && { echo "jail root has /etc/shadow"; return 1; }
    grep -q "flint.slice/$id" "/proc/$vmm/cgroup" || { echo "cgroup: $(cat "/proc/$vmm/cgroup")"; return 1; }
    for f in memory.max cpu.max pids.max; do
        case $(cat "/sys/fs/cgroup/flint.slice/$id/$f" 2>/dev/null) in max*|"") echo "$f unlimited"; return 1 ;; esac
    done
    awk '/^Uid:/ { print $2 }' "/proc/$vmm/status"
}

cat >"$FLINT_WORK/user-data" <<'UD'
#!/bin/sh
echo "FLINT-SERVE user-data ran on $(hostname)" >/dev/console
UD
ec2 RunInstances $(p "ImageId=$image") -d MinCount=1 -d MaxCount=1 -d InstanceType=t2.micro -d KeyName=e2e \
    $(p "UserData=$(base64 <"$FLINT_WORK/user-data" | tr -d '\n')") -d ClientToken=serve-e2e-1 \
    -d TagSpecification.1.ResourceType=instance -d TagSpecification.1.Tag.1.Key=Name \
    -d TagSpecification.1.Tag.1.Value=e2e >"$FLINT_WORK/run.xml"
id=$(first instanceId <"$FLINT_WORK/run.xml")
ip=$(first privateIpAddress <"$FLINT_WORK/run.xml")
# The subnet's first addresses go to the network, the gateway and DNS, as
# in a VPC; the clients above may have used some.
case $ip in 172.31.*) ipok=1 ;; *) ipok="" ;; esac
hostname=ip-$(echo "$ip" | tr . -)
[ -n "$id" ] && [ -n "$ipok" ] && result run-instances pass "id=$id ip=$ip" ||
    result run-instances fail "$(cat "$FLINT_WORK/run.xml")"
vol=$(first volumeId <"$FLINT_WORK/run.xml")
wait_state "$id" running 120 && result running pass || result running fail
# A second instance, started now to show two jails side by side, then
# stopped and terminated at once (its boot would cost minutes; a volume's
# data on another disk is shown by the snapshot below).
ec2 RunInstances $(p "ImageId=$image") -d MinCount=1 -d MaxCount=1 -d InstanceType=t2.micro -d KeyName=e2e \
    -d ClientToken=serve-e2e-2 >"$FLINT_WORK/run2.xml"
id2=$(first instanceId <"$FLINT_WORK/run2.xml")
ip2=$(first privateIpAddress <"$FLINT_WORK/run2.xml")
[ -n "$id2" ] && [ "$ip2" != "$ip" ] && result run-second-instance pass "id=$id2 ip=$ip2" ||
    result run-second-instance fail "$(cat "$FLINT_WORK/run2.xml")"
wait_state "$id2" running 120 || true
uid1=$(jail_check "$id") && result vmm-jailed pass "uid=$uid1" || result vmm-jailed fail "$uid1"
uid2=$(jail_check "$id2") && result second-vmm-jailed pass "uid=$uid2" || result second-vmm-jailed fail "$uid2"
case "$uid1 $uid2" in
[1-9]*" "[1-9]*) [ "$uid1" != "$uid2" ] && result jail-uids-differ pass "uids=$uid1,$uid2" ||
    result jail-uids-differ fail "uids=$uid1,$uid2" ;;
*) result jail-uids-differ fail "uids=$uid1,$uid2" ;; esac
ec2 StopInstances -d "InstanceId.1=$id2" -d Force=true >/dev/null
wait_state "$id2" stopped 120 && result second-instance-stopped-early pass || result second-instance-stopped-early fail
ec2 TerminateInstances -d "InstanceId.1=$id2" >/dev/null
wait_state "$id2" terminated 120 && result second-instance-terminated pass || result second-instance-terminated fail
console=$data/instances/$id/console.log
( tail -f -n +1 "$console" 2>/dev/null | awk '{ print "[vm] " $0; fflush() }' ) &
streamer=$!
# 20 min: a Debian boot takes minutes in the emulated host.
deadline=$(($(now_ms) + 1200000))
until grep -aq 'FLINT-SERVE user-data ran' "$console" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; do sleep 2; done
grep -aq "FLINT-SERVE user-data ran on $hostname" "$console" && result user-data-console pass || result user-data-console fail
ec2 GetConsoleOutput -d "InstanceId=$id" | first output | base64 -d 2>/dev/null | grep -aq 'FLINT-SERVE user-data ran' &&
    result get-console-output pass || result get-console-output fail

out=$(ssh_retry 'echo SSH-OK $(hostname); echo persist-me >/home/debian/flint-e2e; sync; cat /home/debian/flint-e2e' 2>&1)
case $out in *"SSH-OK $hostname"*persist-me*) result ssh-with-key pass ;;
*) result ssh-with-key fail "$(echo "$out" | tail -n 3 | tr '\n' ' ')" ;; esac
# What the guest sees of EC2 (SMBIOS, systemd, cloud-init's datasource),
# read on this boot instead of booting the AMI again elsewhere.
out=$(ssh_guest 'cat /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name; systemd-detect-virt; sudo cloud-init query platform' 2>&1 | tr '\n' ' ')
case $out in "Amazon EC2 t2.micro amazon ec2 "*) result guest-sees-ec2-identity pass ;;
*) result guest-sees-ec2-identity fail "got=$out" ;; esac

# EBS volumes on the running instance: hot-attach (no guest action), mkfs +
# mount + write, detach (the guest ejects), snapshot, a volume from the
# snapshot attached back with the same data. ($vol is the root volume.)
# vol_status VOL: the volume's state; att_status VOL: its attachment's.
vol_status() { ec2 DescribeVolumes -d "VolumeId.1=$1" | tr -d '\n' | sed 's/<attachmentSet>.*<\/attachmentSet>//' | first status; }
att_status() { ec2 DescribeVolumes -d "VolumeId.1=$1" | tr -d '\n' | sed -n 's/.*<attachmentSet>\(.*\)<\/attachmentSet>.*/\1/p' | first status; }
# wait_for WHAT WANT TIMEOUT_S CMD...: until CMD prints WANT.
wait_for() {
    local want=$2 deadline=$(($(now_ms) + $3 * 1000)) got
    shift 3
    while :; do
        got=$("$@")
        [ "$got" = "$want" ] && return 0
        [ "$(now_ms)" -ge "$deadline" ] && { echo "still ${got:-nothing}, wanted $want"; return 1; }
        sleep 2
    done
}
# in_guest_disk VOL SCRIPT: runs SCRIPT as root in the guest with $dev the
# volume's disk (by its serial: the id without its dash).
in_guest_disk() {
    ssh_guest "dev=/dev/disk/by-id/virtio-$(echo "$1" | tr -d -); for i in \$(seq 90); do [ -e \$dev ] && break; sleep 1; done; sudo sh -c \"dev=\$dev; $2\""
}
ebs1=$(ec2 CreateVolume -d AvailabilityZone=us-east-1a -d Size=1 -d VolumeType=gp3 | first volumeId)
wait_for volume available 60 vol_status "$ebs1" && result volume-created pass "vol=$ebs1" || result volume-created fail
ec2 AttachVolume -d "VolumeId=$ebs1" -d "InstanceId=$id" -d Device=/dev/sdf >/dev/null
wait_for attachment attached 120 att_status "$ebs1" && result volume-attached pass || result volume-attached fail
out=$(in_guest_disk "$ebs1" 'mkfs.ext4 -q $dev && mkdir -p /mnt/v && mount $dev /mnt/v && echo flint-ebs-data >/mnt/v/f && sync && umount /mnt/v && echo WROTE-OK' 2>&1)
case $out in *WROTE-OK*) result volume-hot-attached-written pass ;;
*) result volume-hot-attached-written fail "$(echo "$out" | tail -n 3 | tr '\n' ' ')" ;; esac
ec2 DetachVolume -d "VolumeId=$ebs1" >/dev/null
wait_for volume available 180 vol_status "$ebs1" && result volume-detached pass || result volume-detached fail
out=$(ssh_guest "ls /dev/disk/by-id/ | grep -c virtio-$(echo "$ebs1" | tr -d -)" 2>/dev/null)
[ "$out" = 0 ] && result volume-gone-in-guest pass || result volume-gone-in-guest fail "$out"
snap=$(ec2 CreateSnapshot -d "VolumeId=$ebs1" | first snapshotId)
snap_state() { ec2 DescribeSnapshots -d "SnapshotId.1=$1" | first status; }
wait_for snapshot completed 300 snap_state "$snap" && result snapshot-completed pass "snap=$snap" || result snapshot-completed fail
ebs2=$(ec2 CreateVolume -d AvailabilityZone=us-east-1a -d "SnapshotId=$snap" | first volumeId)
wait_for volume available 300 vol_status "$ebs2" && result volume-from-snapshot pass "vol=$ebs2" || result volume-from-snapshot fail
ec2 AttachVolume -d "VolumeId=$ebs2" -d "InstanceId=$id" -d Device=/dev/sdg >/dev/null
wait_for attachment attached 120 att_status "$ebs2" || true
out=$(in_guest_disk "$ebs2" 'mkdir -p /mnt/w && mount -o ro $dev /mnt/w && cat /mnt/w/f && umount /mnt/w' 2>&1)
case $out in *flint-ebs-data*) result snapshot-data-in-guest pass ;;
*) result snapshot-data-in-guest fail "$(echo "$out" | tail -n 3 | tr '\n' ' ')" ;; esac
ec2 DetachVolume -d "VolumeId=$ebs2" -d Force=true >/dev/null
wait_for volume available 120 vol_status "$ebs2" && result volume-force-detached pass || result volume-force-detached fail

ec2 DeleteVolume -d "VolumeId=$ebs1" >/dev/null
[ "$(cat "$FLINT_WORK/status")" = 200 ] && result volume-deleted pass || result volume-deleted fail "$(cat "$FLINT_WORK/reply.xml")"

# SIGKILL the daemon: the VM keeps running; a new daemon re-adopts it.
kill -9 "$(cat "$FLINT_WORK/serve.pid")"
sleep 2
out=$(ssh_guest 'echo STILL-UP' 2>&1)
case $out in *STILL-UP*) result vm-survives-daemon-sigkill pass ;;
*) result vm-survives-daemon-sigkill fail "$out" ;; esac
start_guest serve2 "$FLINT_BIN" serve --data-dir "$data" --socket "$FLINT_WORK/flint.sock" \
    --listen 127.0.0.1:$port --insecure-no-auth --subnet 172.31.0.0/20 --bridge flintbr0 --max-instance-memory 1024 \
    --memory-overcommit 1.5
wait_api && result serve-restarted pass || result serve-restarted fail
grep -q 're-adopted 1 running' "$FLINT_WORK/serve2.console" && result readopted pass ||
    result readopted fail "$(tr '\n' ' ' <"$FLINT_WORK/serve2.console" | cut -c1-300)"
[ "$(state_of "$id")" = running ] && result describe-after-restart pass || result describe-after-restart fail
out=$(jail_check "$id") && result vmm-jailed-after-readoption pass "uid=$out" ||
    result vmm-jailed-after-readoption fail "$out"

# The re-adopted VM stops gracefully (the ACPI power button), its root
# volume stays, and its data is there on the next boot.
ec2 StopInstances -d "InstanceId.1=$id" -d Force=false | grep -q '<name>stopping</name>' && result stop pass || result stop fail
wait_state "$id" stopped 600 && result stopped pass || result stopped fail
[ -f "$data/volumes/$vol.raw" ] && result volume-kept pass || result volume-kept fail
ec2 StartInstances -d "InstanceId.1=$id" >/dev/null
wait_state "$id" running 120 && result started pass || result started fail
out=$(ssh_retry 'cat /home/debian/flint-e2e' 2>&1)
case $out in *persist-me*) result data-survives-stop-start pass ;;
*) result data-survives-stop-start fail "$(echo "$out" | tail -n 3 | tr '\n' ' ')" ;; esac

# Terminate from running: the daemon stops the VM (the power button, hard
# after its terminate timeout) and deletes its root volume and TAP.
ec2 TerminateInstances -d "InstanceId.1=$id" | grep -q '<name>terminated</name>\|<name>shutting-down</name>' &&
    result terminate pass || result terminate fail
wait_state "$id" terminated 600 && result terminated pass || result terminated fail
[ ! -e "$data/volumes/$vol.raw" ] && result root-volume-deleted pass || result root-volume-deleted fail
ip link show "fl${id#i-????}" >/dev/null 2>&1 && result tap-removed fail || result tap-removed pass
kill "$streamer" 2>/dev/null
kill "$(cat "$FLINT_WORK/serve2.pid")" 2>/dev/null
wait_exit serve2 30
finish
