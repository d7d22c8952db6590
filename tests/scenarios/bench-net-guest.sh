# In the test guest (busybox): network benchmark client. Prints
# FLINT-GUEST result lines with numbers. flint.imds=1 adds the metadata
# service checks (Flint only).
n=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.n=//p')
n=${n:-200}
mb=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.mb=//p')
mb=${mb:-256}
# The host's sink and source ports (each VMM's run has its own).
tx=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.tx=//p')
rx=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.rx=//p')
tx=${tx:-5001}
rx=${rx:-5002}
ip link set eth0 up
ip addr add 172.31.0.10/20 dev eth0
ip route add default via 172.31.0.1
now_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
# Wait for the host side to answer.
for i in $(seq 50); do ping -c 1 -W 1 172.31.0.1 >/dev/null 2>&1 && break; sleep 0.2; done

if grep -q flint.imds=1 /proc/cmdline; then
    md=http://169.254.169.254/latest/meta-data/instance-id
    # What the loop below costs without any network: starting a process
    # in this guest (slow under an emulated host's nested virtualisation).
    t0=$(now_cs)
    for i in $(seq "$n"); do /bin/busybox true && :; done
    t1=$(now_cs)
    result imds-spawn pass "requests=$n cs=$((t1 - t0))"
    # One new TCP connection per request.
    t0=$(now_cs)
    ok=0
    for i in $(seq "$n"); do wget -q -O /dev/null "$md" && ok=$((ok + 1)); done
    t1=$(now_cs)
    result imds-new-conn pass "requests=$ok cs=$((t1 - t0))"
    # Keep-alive: all requests pipelined on one connection.
    t0=$(now_cs)
    got=$(for i in $(seq $((n * 10))); do printf 'GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n'; done |
        nc -w 5 169.254.169.254 80 | grep -o 'HTTP/1.1 200' | wc -l)
    t1=$(now_cs)
    result imds-keepalive pass "requests=$got cs=$((t1 - t0))"
fi

# busybox nc reads and writes 1 KiB at a time, half-closes when its stdin
# ends and exits when the network side ends. Guest -> host: our stdin is
# the data; after it we half-close, the host's sink sees EOF and closes,
# and only then does our nc exit: the time covers delivery.
t0=$(now_cs)
dd if=/dev/zero bs=65536 count=$((mb * 16)) 2>/dev/null | nc -w 10 172.31.0.1 "$tx" >/dev/null &&
    result tcp-tx pass "mib=$mb cs=$(($(now_cs) - t0))" || result tcp-tx fail "nc failed"
# Host -> guest: read until the host's source half-closes. Our stdin must
# not end first (our half-close would make the host's nc quit sending): a
# FIFO opened read-write never has data and never ends.
rm -f /tmp/hold
mkfifo /tmp/hold
t0=$(now_cs)
bytes=$(nc -w 10 172.31.0.1 "$rx" <>/tmp/hold | wc -c)
t1=$(now_cs)
result tcp-rx pass "bytes=$bytes cs=$((t1 - t0))"
