# Networking end to end in the emulated KVM host: the debian-12 AMI (as
# built, no test instrumentation) on a TAP the scenario made, with the
# VMM's DHCP and metadata service. cloud-init must find EC2 (SMBIOS),
# get its address by DHCP, read everything over IMDSv2, install the SSH
# key, set the hostname and run the user-data script, whose output (and
# its IMDSv1/v2 checks with curl) appears on the console. Then the
# metadata options change at runtime through the control socket
# (HttpTokens=required, tags), and the host logs in over SSH with the key.
ami=${FLINT_DISK_AMI:?run with --disk ami=PATH}
sock=$FLINT_WORK/net.sock
echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd 2>/dev/null || true
mkdir -p /root/.ssh 2>/dev/null || true
key=$FLINT_WORK/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C flint-net-test -f "$key" || result ssh-keygen fail

# The host side of the instance's subnet: the TAP is the gateway (.1).
# (iproute2's ip: busybox sh would run its own applet for a bare `ip`.)
IP=ip
[ -x /tools/usr/bin/ip ] && IP=/tools/usr/bin/ip
$IP tuntap add dev flint0 mode tap && $IP addr add 172.31.0.1/20 dev flint0 && $IP link set flint0 up &&
    result tap-created pass || result tap-created fail

cat >"$FLINT_WORK/user-data" <<'UD'
#!/bin/bash
# Runs once, from cloud-init's final stage; output goes to the console.
say() { echo "FLINT-NET $1=$2" >/dev/console; }
md=http://169.254.169.254/latest
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
say user $(id -un)
say hostname $(hostname)
say cloud_id $(cloud-id 2>/dev/null)
say address $(ip -4 -o addr show scope global | awk '{print $4}' | head -n1)
say ssh_key $(grep -c flint-net-test /home/admin/.ssh/authorized_keys /home/debian/.ssh/authorized_keys 2>/dev/null | awk -F: '{s+=$2} END {print s+0}')
token=$(curl -s --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $md/api/token)
say token_len ${#token}
say v2_instance_id $(curl -s --max-time 5 -H "X-aws-ec2-metadata-token: $token" $md/meta-data/instance-id)
say v1_status $(code $md/meta-data/instance-id)
say bad_token_status $(code -H 'X-aws-ec2-metadata-token: not-a-token' $md/meta-data/instance-id)
say no_ttl_status $(code -X PUT $md/api/token)
say big_ttl_status $(code -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21601' $md/api/token)
say xff_status $(code -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' -H 'X-Forwarded-For: 10.0.0.9' $md/api/token)
say post_status $(code -X POST $md/meta-data/)
say missing_status $(code $md/meta-data/no-such-thing)
say user_data_status $(code $md/user-data)
say tag_name $(curl -s --max-time 5 $md/meta-data/tags/instance/Name)
say ready yes
# Wait for the host to require tokens, then show IMDSv1 refused and v2 fine.
for i in $(seq 300); do
    [ "$(code $md/meta-data/instance-id)" = 401 ] && break
    sleep 1
done
say v1_after_required $(code $md/meta-data/instance-id)
token=$(curl -s --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $md/api/token)
say v2_after_required $(code -H "X-aws-ec2-metadata-token: $token" $md/meta-data/instance-id)
say tag_after_update $(curl -s --max-time 5 -H "X-aws-ec2-metadata-token: $token" $md/meta-data/tags/instance/Name)
say done yes
UD

cat >"$FLINT_WORK/metadata.json" <<MD
{
  "instance_id": "i-0feedc0ffee123456",
  "instance_type": "t3.micro",
  "region": "us-east-1",
  "availability_zone": "us-east-1a",
  "local_ipv4": "172.31.0.10",
  "mac": "02:00:ac:1f:00:0a",
  "subnet_ipv4_cidr_block": "172.31.0.0/20",
  "vpc_ipv4_cidr_block": "172.31.0.0/16",
  "public_keys": [{"name": "flint-net-test", "openssh_key": "$(cat "$key.pub")"}],
  "user_data_base64": "$(base64 <"$FLINT_WORK/user-data" | tr -d '\n')",
  "tags": {"Name": "flint-net-before"},
  "metadata_options": {"instance_metadata_tags": "enabled"}
}
MD

# One vCPU: 2-vCPU guests are where the emulated host's own kernel dies of
# its TCG nested-SVM fault (TESTING.md); the AMI scenario covers 2 vCPUs.
start_guest net "$FLINT_BIN" vmm --image "$ami" --vcpus 1 --memory 1024 --console stdio \
    --net tap=flint0,mac=02:00:ac:1f:00:0a,ip=172.31.0.10/20 \
    --metadata "$FLINT_WORK/metadata.json" --api-socket "$sock" --shutdown-timeout 300

value() { grep -a -o "FLINT-NET $1=[^ ]*" "$FLINT_WORK/net.console" | head -n1 | cut -d= -f2- | tr -d '\r'; }
check_value() { # NAME EXPECTED
    local got
    got=$(value "$1")
    [ "$got" = "$2" ] && result "net-$1" pass || result "net-$1" fail "want=$2 got=$got"
}

if wait_console net 'FLINT-NET ready=yes' 900; then
    result net-user-data-ran pass "ms=$WAITED_MS"
    check_value user root
    check_value hostname ip-172-31-0-10
    check_value cloud_id aws
    check_value address 172.31.0.10/20
    check_value ssh_key 1
    check_value token_len 56
    check_value v2_instance_id i-0feedc0ffee123456
    check_value v1_status 200
    check_value bad_token_status 401
    check_value no_ttl_status 400
    check_value big_ttl_status 400
    check_value xff_status 403
    check_value post_status 405
    check_value missing_status 404
    check_value user_data_status 200
    check_value tag_name flint-net-before

    # Runtime metadata changes through the control socket.
    reply=$(curl -s --max-time 10 --unix-socket "$sock" -X PUT http://vm/vm/metadata \
        -d '{"metadata_options": {"http_tokens": "required"}, "tags": {"Name": "flint-net-after"}}')
    case $reply in *'"required"'*flint-net-after*|*flint-net-after*'"required"'*) result net-api-update pass ;;
    *) result net-api-update fail "$reply" ;; esac
    if wait_console net 'FLINT-NET done=yes' 400; then
        check_value v1_after_required 401
        check_value v2_after_required 200
        check_value tag_after_update flint-net-after
    else
        result net-after-update fail
    fi

    # TCP from the host to the guest's DHCP address: SSH with the key.
    out=$(ssh -i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=30 -o BatchMode=yes debian@172.31.0.10 'echo SSH-OK $(hostname)' 2>&1)
    case $out in *"SSH-OK ip-172-31-0-10"*) result net-ssh-with-key pass ;;
    *) result net-ssh-with-key fail "$(echo "$out" | tail -n 3 | tr '\n' ' ')" ;; esac
    expect net-ping-gateway-from-host ping -c 1 -W 5 172.31.0.10

    reply=$(curl -s --max-time 10 --unix-socket "$sock" -X PUT http://vm/vm/shutdown)
    wait_exit net 330
    [ "$GUEST_RC" = 0 ] && result net-graceful-shutdown pass || result net-graceful-shutdown fail "rc=$GUEST_RC"
    # cloud-init's closing line (after the user-data script ended) names
    # the datasource: Ec2Local, i.e. found in the local stage over DHCP.
    expect net-ds-ec2 grep -aq 'Datasource DataSourceEc2' "$FLINT_WORK/net.console"
else
    result net-user-data-ran fail
    stop_guest net
fi
finish
