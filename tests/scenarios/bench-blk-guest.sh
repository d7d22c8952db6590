# In the test guest: fio on /dev/vda (the data disk) with the fio from the
# guest-tools disk; one result line per job, with IOPS, KiB/s, mean, p50
# and p99 completion latency (us). flint.runtime=SECONDS.
runtime=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.runtime=//p')
mkdir -p /mnt/tools
dev=$(findfs LABEL=flint-gtools)
mount -o ro "$dev" /mnt/tools || { result fio-tools fail "cannot mount $dev"; exit 1; }
# The jobs (also in the host scripts that count the results: 5).
for job in "randread 4k 1" "randread 4k 32" "randwrite 4k 1" "randwrite 4k 32" "read 128k 8"; do
    set -- $job
    out=$(/mnt/tools/bin/fio --name=bench --filename=/dev/vda --rw="$1" --bs="$2" --iodepth="$3" \
        --ioengine=io_uring --direct=1 --runtime="${runtime:-10}" --time_based \
        --output-format=terse --terse-version=3 2>&1 | tail -n 1)
    # Terse v3: the read section is fields 6-46, the write section the
    # next 41; in each, +2 bandwidth, +3 IOPS, +11 mean clat, +13.. the
    # clat percentiles as "P%=us".
    case $1 in *write*) base=47 ;; *) base=6 ;; esac
    field() { echo "$out" | cut -d';' -f$(($base + $1)); }
    pct() { echo "$out" | cut -d';' -f$(($base + 12))-$(($base + 31)) | tr ';' '\n' | sed -n "s/^$1%=//p" | head -n 1; }
    iops=$(field 2)
    case $iops in
        ''|*[!0-9]*) result "fio-$1-$2-qd$3" fail "output=$(echo "$out" | cut -c1-200)" ;;
        *) result "fio-$1-$2-qd$3" pass "iops=$iops bw_kib=$(field 1) clat_mean_us=$(field 10)" \
            "p50_us=$(pct 50.000000) p99_us=$(pct 99.000000)" ;;
    esac
done
