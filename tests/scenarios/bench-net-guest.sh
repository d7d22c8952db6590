# In the test guest (busybox): network benchmark client. Prints
# FLINT-GUEST result lines with numbers. flint.imds=1 adds the metadata
# service checks (Flint only).
n=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.n=//p')
n=${n:-200}
mb=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.mb=//p')
mb=${mb:-256}
ip link set eth0 up
ip addr add 172.31.0.10/20 dev eth0
ip route add default via 172.31.0.1
now_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
# Wait for the host side to answer.
for i in $(seq 50); do ping -c 1 -W 1 172.31.0.1 >/dev/null 2>&1 && break; sleep 0.2; done

if grep -q flint.imds=1 /proc/cmdline; then
    md=http://169.254.169.254/latest/meta-data/instance-id
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

# TCP guest -> host: $mb MiB into the host's sink on port 5001.
t0=$(now_cs)
dd if=/dev/zero bs=65536 count=$((mb * 16)) 2>/dev/null | nc -w 10 172.31.0.1 5001 &&
    result tcp-tx pass "mib=$mb cs=$(($(now_cs) - t0))" || result tcp-tx fail "nc failed"
# TCP host -> guest: the host's source on port 5002.
t0=$(now_cs)
bytes=$(nc -w 10 172.31.0.1 5002 | wc -c)
t1=$(now_cs)
result tcp-rx pass "bytes=$bytes cs=$((t1 - t0))"
