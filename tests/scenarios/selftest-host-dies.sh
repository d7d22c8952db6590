# Runner failure self-test: the emulated host dies before the scenario can
# report (a kernel panic; panic=-1 + -no-reboot ends QEMU), as in the rare
# early resets of guests in the emulated host.
echo 1 >/proc/sys/kernel/sysrq
echo c >/proc/sysrq-trigger
sleep 30
result unreachable pass
finish
