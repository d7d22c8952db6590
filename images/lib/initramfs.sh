# Helpers for busybox initramfs recipes. Sourced after common.sh.

# Prints the module files (relative to the module tree) needed for the given
# module names, dependencies first, each once.
module_closure() {
    local moddir=$1; shift
    awk -v want="$*" '
        function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
        function visit(m,   i, n, parts) {
            if (m in seen) return
            seen[m] = 1
            if (!(m in path)) { print "missing module: " m > "/dev/stderr"; failed = 1; return }
            n = split(deps[m], parts, " ")
            for (i = 1; i <= n; i++) visit(base(parts[i]))
            print path[m]
        }
        {
            p = $1; sub(/:$/, "", p)
            m = base(p); path[m] = p
            $1 = ""; deps[m] = $0
        }
        END {
            n = split(want, w, " ")
            for (i = 1; i <= n; i++) { x = w[i]; gsub(/-/, "_", x); visit(x) }
            exit failed
        }' "$moddir/modules.dep"
}

# Creates a busybox root in ROOT: directories, busybox with its applet links.
initramfs_base() {
    local root=$1
    mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,lib/modules,usr/bin,usr/sbin}
    cp /bin/busybox "$root/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
        [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
    done
}

# Copies MODULES (names) and their dependencies from the kernel module tree
# KDIR into ROOT/lib/modules and lists them, in load order, in
# ROOT/lib/modules/load-order.
initramfs_add_modules() {
    local root=$1 kdir=$2; shift 2
    local rel
    : >"$root/lib/modules/load-order"
    for rel in $(module_closure "$kdir" "$@"); do
        install -D -m 0644 "$kdir/$rel" "$root/lib/modules/$rel"
        echo "/lib/modules/$rel" >>"$root/lib/modules/load-order"
    done
}

# Packs ROOT into a gzip-compressed newc cpio at OUT.
initramfs_pack() {
    local root=$1 out=$2
    (cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --owner 0:0) | gzip -6 >"$out"
}
