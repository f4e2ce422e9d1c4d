# hotpath.Dockerfile - the vigil-hotpath image.  Build from the repository root:
#
#   docker build -f docker/hotpath.Dockerfile -t vigil-hotpath .
#
# The worker links only libc, libm and pthread, so it is linked statically (-static) and shipped
# FROM scratch: the binary, passwd/group entries and the socket directory, nothing else.
#
# BUILD_BASE is any Debian bookworm image; packages already present in it are not installed again.
#
# Runs as uid 10002, gid 10000 (shared with vigil-api, uid 10001).  It binds
# $VIGIL_HOTPATH_SOCKET with mode 0660 inside /run/vigil (0750, 10002:10000): mount one volume
# there in both containers.  The worker needs no network (compose runs it with network_mode: none).
ARG BUILD_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
# Lets docker/test.sh prune this project's superseded (untagged) images and no others.
LABEL org.vigil.image="1"
ARG BUILD_PKGS="gcc make libc6-dev"
RUN set -eu; missing=""; \
    for p in $BUILD_PKGS; do \
      dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update -q && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing && \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY Makefile ./
COPY common common
COPY hotpath hotpath
RUN make -j"$(nproc)" bin/vigil-hotpath EXTRA_LDFLAGS=-static && \
    ldd bin/vigil-hotpath 2>&1 | grep -q 'not a dynamic executable' && \
    bin/vigil-hotpath --version
RUN set -eu; r=/rootfs; \
    mkdir -p "$r/usr/local/bin" "$r/etc" "$r/run/vigil"; \
    install -m 0755 -s bin/vigil-hotpath "$r/usr/local/bin/vigil-hotpath"; \
    printf 'vigil-hotpath:x:10002:10000:vigil-hotpath:/nonexistent:/sbin/nologin\n' > "$r/etc/passwd"; \
    printf 'vigil:x:10000:\n' > "$r/etc/group"; \
    chown 10002:10000 "$r/run/vigil"; chmod 0750 "$r/run/vigil"

FROM scratch
# Lets docker/test.sh prune this project's superseded (untagged) images and no others.
LABEL org.vigil.image="1"
COPY --from=build /rootfs/ /
USER 10002:10000
ENV VIGIL_HOTPATH_SOCKET=/run/vigil/hotpath.sock
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/vigil-hotpath", "--check"]
ENTRYPOINT ["/usr/local/bin/vigil-hotpath"]
