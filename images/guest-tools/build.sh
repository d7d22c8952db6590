#!/usr/bin/env bash
# guest-tools: an ext4 disk (label flint-gtools) carrying Debian's fio
# and every shared library it loads, for benchmarks inside the busybox test
# guest (fio's libraries are ~80 MiB: too much for the initramfs). Run it as
#   mount -o ro LABEL=flint-gtools /mnt && /mnt/bin/fio ...
# (bin/fio is a wrapper that starts the real binary through the bundled
# dynamic loader).
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
out=$1
[[ -x /usr/bin/fio ]] || die "fio is not installed (scripts/install-deps installs it)"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/lib"
cp /usr/bin/fio "$root/bin/fio.real"
ldd /usr/bin/fio | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    cp -L "$lib" "$root/lib/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib/"
cat >"$root/bin/fio" <<'WRAP'
#!/bin/sh
here=$(dirname "$0")/..
exec "$here/lib/ld-linux-x86-64.so.2" --library-path "$here/lib" "$here/bin/fio.real" "$@"
WRAP
chmod 0755 "$root/bin/fio"
fio --version >"$root/VERSION"
size_mb=$(($(du -sm "$root" | cut -f1) + 16))
mkfs.ext4 -q -F -L flint-gtools -d "$root" "$out/tools.ext4" "${size_mb}M"
log "guest-tools: $(cat "$root/VERSION"), ${size_mb} MiB disk"
