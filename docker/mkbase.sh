#!/usr/bin/env bash
# mkbase.sh - builds the local Debian bookworm base images that docker/*.Dockerfile build on, for
# machines that cannot pull from a registry.  With registry access you do not need it: the
# Dockerfiles default to debian:bookworm-slim and install their packages themselves.
#
#   vigil-debian:bookworm         debootstrap --variant=minbase bookworm, apt lists and docs removed
#   vigil-build-base:bookworm     + gcc make pkg-config libc6-dev libmicrohttpd-dev libcjson-dev libpq-dev python3
#                                   libcurl4-openssl-dev ca-certificates
#   vigil-postgres-base:bookworm  + postgresql-15
#
# Idempotent and cached: an image that already exists is left alone (MKBASE_FORCE=1 rebuilds), and
# the debootstrap tree is kept in $MKBASE_CACHE (default /var/cache/vigil-mkbase) so rebuilding a
# derived image does not download the base system again.  Packages are installed with apt-get in
# a chroot on the host, so this works even when build containers have no network.
# Needs root, debootstrap and a reachable Debian mirror ($DEBIAN_MIRROR).
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${MKBASE_CACHE:-/var/cache/vigil-mkbase}
FORCE=${MKBASE_FORCE:-0}

BASE_IMG=vigil-debian:$SUITE
BUILD_IMG=vigil-build-base:$SUITE
PG_IMG=vigil-postgres-base:$SUITE
BUILD_PKGS="gcc make pkg-config libc6-dev libmicrohttpd-dev libcjson-dev libpq-dev libcurl4-openssl-dev ca-certificates python3"
PG_PKGS="postgresql-15"

log() { printf 'mkbase: %s\n' "$*" >&2; }
have_image() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "needs root (debootstrap, chroot); run: sudo bash $0"
        exit 1
    fi
    if ! command -v debootstrap >/dev/null; then
        log "debootstrap missing; run: apt-get install -y debootstrap"
        exit 1
    fi
}

# Removes what an image does not need: downloaded .debs, apt lists, docs, man pages, locales.
slim_tree() {
    local t=$1
    rm -rf "$t"/var/cache/apt/archives/*.deb "$t"/var/cache/apt/*.bin "$t"/var/lib/apt/lists/* \
        "$t"/usr/share/doc/* "$t"/usr/share/man/* "$t"/usr/share/info/* "$t"/var/log/*.log \
        "$t"/var/cache/debconf/*-old "$t"/tmp/* "$t"/var/tmp/*
    find "$t"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + \
        2>/dev/null || true
}

# Packs tree $1 into image $2 (the metadata a debian:* image would have).
import_tree() {
    local t=$1 img=$2
    log "importing $img"
    tar --numeric-owner -C "$t" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' - "$img" >/dev/null
}

# The pristine minbase tree, downloaded once into the cache.
ensure_minbase_tree() {
    local t=$CACHE/minbase
    if [ -f "$t/.complete" ]; then
        return
    fi
    rm -rf "$t"
    mkdir -p "$CACHE"
    log "debootstrap --variant=minbase $SUITE from $MIRROR (once; cached in $t)"
    debootstrap --variant=minbase "$SUITE" "$t" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
        tail -20 "$CACHE/debootstrap.log" >&2
        exit 1
    }
    # The security and updates suites, as in the official image.
    cat >"$t/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
    # Like debian:*-slim: never install recommends, never keep docs of packages installed later.
    cat >"$t/etc/apt/apt.conf.d/90vigil" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
    cat >"$t/etc/dpkg/dpkg.cfg.d/90vigil-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
    touch "$t/.complete"
}

# Copies the minbase tree to a work tree, runs the shell commands $2 in it (chroot, apt-get needs
# the host's network only), imports it as $1.  The work tree is removed afterwards, so only the
# minbase tree stays cached.
derive() {
    local img=$1 script=$2 w
    w=$CACHE/work-${img//[:\/]/_}
    rm -rf "$w"
    cp -a "$CACHE/minbase" "$w"
    rm -f "$w/.complete"
    cp /etc/resolv.conf "$w/etc/resolv.conf"
    if [ -n "$script" ]; then
        log "installing into $img: $script"
        mount -t proc proc "$w/proc"
        # shellcheck disable=SC2086
        if ! chroot "$w" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            DEBIAN_FRONTEND=noninteractive bash -c \
            "set -e; apt-get update -q; apt-get -y -q upgrade; $script" \
            >"$CACHE/apt-$img.log" 2>&1; then
            umount "$w/proc"
            tail -20 "$CACHE/apt-$img.log" >&2
            exit 1
        fi
        umount "$w/proc"
    fi
    : >"$w/etc/resolv.conf" # docker bind-mounts its own
    slim_tree "$w"
    import_tree "$w" "$img"
    rm -rf "$w"
}

main() {
    local todo=()
    have_image "$BASE_IMG" || todo+=("$BASE_IMG")
    have_image "$BUILD_IMG" || todo+=("$BUILD_IMG")
    have_image "$PG_IMG" || todo+=("$PG_IMG")
    if [ ${#todo[@]} -eq 0 ]; then
        log "base images present: $BASE_IMG $BUILD_IMG $PG_IMG"
        return 0
    fi
    need_root
    ensure_minbase_tree
    for img in "${todo[@]}"; do
        case $img in
        "$BASE_IMG") derive "$img" "" ;;
        "$BUILD_IMG") derive "$img" "apt-get install -y -q $BUILD_PKGS" ;;
        # No cluster at install time (as the official image does): the entrypoint runs initdb.
        "$PG_IMG") derive "$img" "apt-get install -y -q postgresql-common;
            sed -ri 's/#?(create_main_cluster) .*$/\\1 = false/' /etc/postgresql-common/createcluster.conf;
            apt-get install -y -q $PG_PKGS" ;;
        esac
    done
    docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' |
        grep -E "^(vigil-debian|vigil-build-base|vigil-postgres-base):$SUITE " >&2 || true
}

main "$@"
