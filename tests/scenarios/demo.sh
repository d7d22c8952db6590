# The demo: an instance of the default AMI (debian-12, as built) under
# Flint, configured the EC2 way: SeaBIOS and the image's own GRUB boot it,
# the VMM's DHCP gives it its private address, cloud-init finds the EC2
# platform and reads the metadata service (IMDSv2) for its hostname, SSH
# key and user data; then we log in over SSH and shut it down through the
# per-VM control socket.
ami=${FLINT_DISK_AMI:?run with --disk ami=PATH}
sock=$FLINT_WORK/demo.sock
IP=ip
[ -x /tools/usr/bin/ip ] && IP=/tools/usr/bin/ip
echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd 2>/dev/null || true
key=$FLINT_WORK/demo_key
ssh-keygen -q -t ed25519 -N '' -C demo -f "$key"

echo "== flint kvm-check"
"$FLINT_BIN" kvm-check && result kvm-check pass || result kvm-check fail

echo "== the instance's subnet: TAP flint0, gateway 172.31.0.1/20"
$IP tuntap add dev flint0 mode tap && $IP addr add 172.31.0.1/20 dev flint0 && $IP link set flint0 up

cat >"$FLINT_WORK/user-data" <<'UD'
#!/bin/sh
md=http://169.254.169.254/latest
t=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $md/api/token)
echo "DEMO user-data ran on $(hostname): instance $(curl -s -H "X-aws-ec2-metadata-token: $t" $md/meta-data/instance-id), $(curl -s -H "X-aws-ec2-metadata-token: $t" $md/meta-data/instance-type), cloud $(cloud-id)" >/dev/console
UD
cat >"$FLINT_WORK/metadata.json" <<MD
{
  "instance_id": "i-0de30c0ffee000001",
  "instance_type": "t3.small",
  "local_ipv4": "172.31.0.10",
  "mac": "02:00:ac:1f:00:0a",
  "subnet_ipv4_cidr_block": "172.31.0.0/20",
  "vpc_ipv4_cidr_block": "172.31.0.0/16",
  "public_keys": [{"name": "demo", "openssh_key": "$(cat "$key.pub")"}],
  "user_data_base64": "$(base64 <"$FLINT_WORK/user-data" | tr -d '\n')",
  "metadata_options": {"http_tokens": "required"}
}
MD

echo "== flint vmm --image debian-12 --net tap=flint0,... --metadata ... (2 vCPUs, 1 GiB)"
start_guest demo "$FLINT_BIN" vmm --image "$ami" --vcpus 2 --memory 1024 --console stdio \
    --net tap=flint0,mac=02:00:ac:1f:00:0a,ip=172.31.0.10/20 --metadata "$FLINT_WORK/metadata.json" \
    --api-socket "$sock" --shutdown-timeout 300
wait_console demo 'login:' 900 && result login-prompt pass "ms=$WAITED_MS" || result login-prompt fail
wait_console demo 'DEMO user-data ran' 300 && result user-data pass || result user-data fail

echo "== ssh debian@172.31.0.10"
# sshd starts after cloud-init made the host keys: try for up to ~2 min.
ssh_ok=0
for i in $(seq 12); do
    if ssh -i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 \
        -o BatchMode=yes debian@172.31.0.10 \
        'echo "$(hostname): $(uname -sr), $(nproc) vCPUs, $(cloud-init status)"; cat /sys/class/dmi/id/sys_vendor'; then
        ssh_ok=1
        break
    fi
    sleep 10
done
[ $ssh_ok = 1 ] && result ssh pass || result ssh fail

echo "== the control socket"
curl -s --max-time 10 --unix-socket "$sock" http://vm/vm; echo
curl -s --max-time 10 --unix-socket "$sock" -X PUT http://vm/vm/shutdown; echo
wait_exit demo 330 && [ "$GUEST_RC" = 0 ] && result graceful-shutdown pass || result graceful-shutdown fail "rc=$GUEST_RC"
finish
