# jaeger.Dockerfile - Jaeger v1.76 all-in-one (cmd/jaeger, in-memory storage) for compose's
# optional "tracing" profile, from the binary `make deps` builds from the Go module proxy
# (build/jaeger/jaeger): nothing is pulled from a registry.  Build context: build/jaeger.
#
#   make jaeger && docker build -f docker/jaeger.Dockerfile -t vigil-jaeger build/jaeger
#
# BASE is a Debian bookworm image (the binary may link glibc for its DNS resolver):
# docker/mkbase.sh's vigil-debian:bookworm offline, or debian:bookworm-slim.  The embedded
# all-in-one configuration listens on JAEGER_LISTEN_HOST (0.0.0.0 here): OTLP gRPC 4317, OTLP
# HTTP 4318, the UI and query API on 16686.  Runs as uid 10003; traces live in memory only.
ARG BASE=vigil-debian:bookworm
FROM ${BASE}
# Lets docker/test.sh prune this project's superseded (untagged) images and no others.
LABEL org.vigil.image="1"
COPY jaeger /usr/local/bin/jaeger
USER 10003:10000
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4317 4318 16686
ENTRYPOINT ["/usr/local/bin/jaeger"]
