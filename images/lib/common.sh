# Shared helpers for images/build and the recipes. Sourced, not executed.
# Progress goes to stderr; stdout carries only the output paths.

FLINT_CACHE_DIR=${FLINT_CACHE_DIR:-/var/cache/flint}
IMAGES_DIR=${IMAGES_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DEB_CACHE=$FLINT_CACHE_DIR/debs

log() { printf '[images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

recipe_deps() {
    local f=$IMAGES_DIR/$1/deps
    [[ -f $f ]] && grep -v '^\s*#' "$f" | tr -s ' \n' '\n' | sed '/^$/d' || true
}

# Key = sha256 over the recipe's files (paths and contents), images/lib and
# the keys of its deps.
recipe_key() {
    local recipe=$1 dir=$IMAGES_DIR/$1
    [[ -x $dir/build.sh ]] || die "no recipe '$recipe' (expected $dir/build.sh)"
    {
        (cd "$IMAGES_DIR" && find "$recipe" lib -type f -print0 | sort -z | xargs -0 sha256sum)
        local dep
        for dep in $(recipe_deps "$recipe"); do
            echo "dep $dep $(recipe_key "$dep")"
        done
    } | sha256sum | cut -c1-16
}

recipe_out() { echo "$FLINT_CACHE_DIR/images/$1-$(recipe_key "$1")"; }

# Builds RECIPE (and its deps) unless cached; prints its output dir.
build_recipe() {
    local recipe=$1 out key dep depvar
    key=$(recipe_key "$recipe")
    out=$FLINT_CACHE_DIR/images/$recipe-$key
    mkdir -p "$FLINT_CACHE_DIR/images"
    local -a env=()
    for dep in $(recipe_deps "$recipe"); do
        depvar=FLINT_IMAGE_$(echo "$dep" | tr 'a-z-' 'A-Z_')
        env+=("$depvar=$(build_recipe "$dep")")
    done
    (
        # One builder per recipe at a time; a second caller waits, then reuses.
        exec 9>"$FLINT_CACHE_DIR/images/.$recipe.lock"
        flock 9
        if [[ -e $out/.complete ]]; then
            log "$recipe: cached ($out)"
        else
            local tmp=$out.partial
            rm -rf "$tmp"
            mkdir -p "$tmp"
            log "$recipe: building (key $key)"
            local start=$SECONDS
            if ! env "${env[@]}" FLINT_CACHE_DIR="$FLINT_CACHE_DIR" IMAGES_DIR="$IMAGES_DIR" \
                "$IMAGES_DIR/$recipe/build.sh" "$tmp" >&2; then
                die "$recipe: build failed (partial output left in $tmp)"
            fi
            date -u +%FT%TZ >"$tmp/.complete"
            rm -rf "$out"
            mv "$tmp" "$out"
            log "$recipe: built in $((SECONDS - start)) s, $(du -sh --apparent-size "$out" | cut -f1) apparent, $(du -sh "$out" | cut -f1) on disk"
            # Older builds of this recipe are dead weight.
            find "$FLINT_CACHE_DIR/images" -maxdepth 1 -name "$recipe-*" ! -name "$recipe-$key" \
                ! -name '*.lock' -exec rm -rf {} + 2>/dev/null || true
        fi
        ln -sfn "$(basename "$out")" "$FLINT_CACHE_DIR/images/$recipe"
    ) || exit 1
    echo "$out"
}

# Downloads a Debian package (the candidate of the host's apt sources) into
# the deb cache and prints the .deb path. Virtual/meta kernel packages are
# resolved to the real image package.
fetch_deb() {
    local pkg=$1 ver file
    mkdir -p "$DEB_CACHE"
    ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
    if [[ -z $ver || $ver == "(none)" ]]; then
        apt-get update -q >&2 || true
        ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
    fi
    [[ -n $ver && $ver != "(none)" ]] || die "package $pkg not found in apt sources"
    file=$(ls "$DEB_CACHE/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
    if [[ -z $file ]]; then
        log "downloading $pkg $ver"
        (cd "$DEB_CACHE" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2) || die "apt-get download $pkg failed"
        file=$(ls "$DEB_CACHE/${pkg}_${ver//:/%3a}_"*.deb | head -1)
    fi
    echo "$file"
}

# The real kernel image package behind linux-image-cloud-amd64.
cloud_kernel_package() {
    local meta
    meta=$(fetch_deb linux-image-cloud-amd64)
    dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -m1 '^linux-image-[0-9]'
}
