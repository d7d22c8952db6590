# In the test guest: fio on /dev/vda (the data disk) with the fio from the
# guest-tools disk; one result line per job. flint.runtime=SECONDS.
runtime=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^flint.runtime=//p')
mkdir -p /mnt/tools
dev=$(findfs LABEL=flint-gtools)
mount -o ro "$dev" /mnt/tools || { result fio-tools fail "cannot mount $dev"; exit 1; }
for job in "randread 4k 1" "randread 4k 32" "read 128k 8"; do
    set -- $job
    out=$(/mnt/tools/bin/fio --name=bench --filename=/dev/vda --rw="$1" --bs="$2" --iodepth="$3" \
        --ioengine=io_uring --direct=1 --runtime="${runtime:-10}" --time_based \
        --output-format=terse --terse-version=3 2>&1 | tail -n 1)
    iops=$(echo "$out" | cut -d';' -f8)
    bw=$(echo "$out" | cut -d';' -f7)
    # Field 40: completion latency percentile list is long; use mean clat (us).
    clat=$(echo "$out" | cut -d';' -f16)
    case $iops in
        ''|*[!0-9]*) result "fio-$1-$2-qd$3" fail "output=$(echo "$out" | cut -c1-200)" ;;
        *) result "fio-$1-$2-qd$3" pass "iops=$iops bw_kib=$bw clat_mean_us=$clat" ;;
    esac
done
