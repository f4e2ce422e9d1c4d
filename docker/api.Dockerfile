# api.Dockerfile - the vigil-api image.  Build from the repository root:
#
#   docker build -f docker/api.Dockerfile -t vigil-api .
#
# Stage "build" compiles bin/vigil-api on Debian bookworm and gathers a minimal root file system:
# the binary, exactly the shared libraries ldd resolves for it (plus the dynamic loader), CA
# certificates, and passwd/group entries.  The final image is FROM scratch with that tree only: no
# shell, no package manager, no curl (the health check is `vigil-api --health-check`).
#
# BUILD_BASE is any Debian bookworm image.  Packages already present in it are not installed again,
# so with docker/mkbase.sh's vigil-build-base:bookworm the build needs no network.
#
# Runs as uid 10001, gid 10000.  gid 10000 is shared with vigil-hotpath (uid 10002): the worker's
# socket is mode 0660 in a 0750 directory owned by 10002:10000, so only these two can reach it.
ARG BUILD_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
# Lets docker/test.sh prune this project's superseded (untagged) images and no others.
LABEL org.vigil.image="1"
ARG BUILD_PKGS="gcc make pkg-config libc6-dev libmicrohttpd-dev libcjson-dev libpq-dev libcurl4-openssl-dev ca-certificates python3"
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
COPY api api
COPY migrations migrations
RUN make -j"$(nproc)" bin/vigil-api && bin/vigil-api --version
# The runtime tree.  ldd prints "name => /path (addr)" per library and "/lib64/ld-linux... (addr)"
# for the loader; cp --parents keeps their paths, so the loader's default search finds them.
RUN set -eu; r=/rootfs; \
    mkdir -p "$r/usr/local/bin" "$r/etc/ssl/certs" "$r/tmp" "$r/run/vigil"; \
    install -m 0755 -s bin/vigil-api "$r/usr/local/bin/vigil-api"; \
    for lib in $(ldd bin/vigil-api | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do \
      cp -L --parents "$lib" "$r/"; \
    done; \
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; \
    printf 'vigil:x:10001:10000:vigil-api:/nonexistent:/sbin/nologin\nvigil-hotpath:x:10002:10000:vigil-hotpath:/nonexistent:/sbin/nologin\n' > "$r/etc/passwd"; \
    printf 'vigil:x:10000:\n' > "$r/etc/group"; \
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$r/etc/nsswitch.conf"; \
    chmod 1777 "$r/tmp"; chown 10002:10000 "$r/run/vigil"; chmod 0750 "$r/run/vigil"; \
    chroot "$r" /usr/local/bin/vigil-api --version

FROM scratch
# Lets docker/test.sh prune this project's superseded (untagged) images and no others.
LABEL org.vigil.image="1"
COPY --from=build /rootfs/ /
USER 10001:10000
ENV VIGIL_HTTP_ADDR=0.0.0.0:8080 \
    VIGIL_HOTPATH_SOCKET=/run/vigil/hotpath.sock
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/vigil-api", "--health-check"]
ENTRYPOINT ["/usr/local/bin/vigil-api"]
CMD ["serve"]
