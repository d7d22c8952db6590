# Runner failure self-test: the host hangs. The scenario stops its own
# watchdog (busybox timeout in the emulated host forks a watchdog child of
# the scenario shell; coreutils timeout natively is its parent) and sleeps,
# so only the runner's outer timeout can end the run.
if [ "$FLINT_HOST" = native ]; then
    kill -STOP "$PPID"
else
    killall -STOP timeout
fi
sleep 100000
result unreachable pass
finish
