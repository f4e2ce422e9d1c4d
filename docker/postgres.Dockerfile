# postgres.Dockerfile - PostgreSQL 15 from Debian's own package, for docker/compose.yaml on
# machines that cannot pull the official image.  Build context: docker/.
#
#   docker build -f docker/postgres.Dockerfile -t vigil-postgres docker
#
# With registry access, the official postgres:15 image is a drop-in replacement: it reads the same
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB variables and keeps its data in the same
# /var/lib/postgresql/data (see docker/README.md).
#
# PG_BASE is any Debian bookworm image; postgresql-15 is installed unless already present (as in
# docker/mkbase.sh's vigil-postgres-base:bookworm).  The package's own cluster is never created:
# the entrypoint runs initdb on the first start, as the postgres user, into the data volume.
ARG PG_BASE=debian:bookworm-slim

FROM ${PG_BASE}
# Lets docker/test.sh prune this project's superseded (untagged) images and no others.
LABEL org.vigil.image="1"
RUN set -eu; \
    if ! dpkg-query -W -f='${db:Status-Abbrev}' postgresql-15 2>/dev/null | grep -q '^ii'; then \
      apt-get update -q; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-common; \
      sed -ri 's/#?(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; \
    chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql; \
    chmod 0700 /var/lib/postgresql/data; \
    # 1777: a tmpfs mounted here (read_only containers) copies this mode, but not the owner.
    chmod 1777 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
USER postgres
EXPOSE 5432
# SIGINT is PostgreSQL's "fast" shutdown: open transactions are rolled back, data is consistent.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=15 \
    CMD pg_isready -q -h 127.0.0.1 -p 5432 -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-postgres}"
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
