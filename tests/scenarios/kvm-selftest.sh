# Runner self-test 1: /dev/kvm in the emulated host runs a tiny guest.
# `flint kvm-check` opens /dev/kvm, runs real-mode code that writes "OK" to
# COM1 and halts.

expect kvm-device test -c /dev/kvm
if out=$("$FLINT_BIN" kvm-check 2>&1); then
    echo "$out"
    case $out in
        *"output=OK"*) result kvm-check pass "$(echo "$out" | cut -d' ' -f3-)" ;;
        *) result kvm-check fail "unexpected output: $out" ;;
    esac
else
    result kvm-check fail "rc=$? output=$out"
fi
finish
