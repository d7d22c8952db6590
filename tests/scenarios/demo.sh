# The demo: an instance of the default AMI (debian-12, its test variant that
# reports what it sees) under Flint: SeaBIOS, the image's own GRUB, Linux,
# systemd, cloud-init finding the EC2 platform, a login prompt; then a
# graceful shutdown through the per-VM control socket.
ami=${FLINT_DISK_AMI:?run with --disk ami=PATH}
sock=$FLINT_WORK/demo.sock
echo "== flint kvm-check"
"$FLINT_BIN" kvm-check && result kvm-check pass || result kvm-check fail

echo "== flint vmm --image debian-12 (2 vCPUs, 1 GiB, t3.small)"
start_guest demo "$FLINT_BIN" vmm --image "$ami" --vcpus 2 --memory 1024 --console stdio \
    --instance-type t3.small --api-socket "$sock" --shutdown-timeout 300
wait_console demo 'login:' 900 && result login-prompt pass "ms=$WAITED_MS" || result login-prompt fail
wait_console demo 'FLINT-AMI action=' 300 && result guest-report pass || result guest-report fail
echo "== what the guest saw"
grep -a 'FLINT-AMI' "$FLINT_WORK/demo.console" | sed 's/^.*FLINT-AMI /   /'
echo "== graceful shutdown through the control socket"
curl -s --max-time 10 --unix-socket "$sock" http://vm/vm; echo
curl -s --max-time 10 --unix-socket "$sock" -X PUT http://vm/vm/shutdown; echo
wait_exit demo 330 && [ "$GUEST_RC" = 0 ] && result graceful-shutdown pass || result graceful-shutdown fail "rc=$GUEST_RC"
finish
