#!/usr/bin/env bash
# http_api.sh BIN_DIR - run.sh's hook for the end-to-end HTTP benchmarks (run.sh runs every
# tests/bench/http_*.sh); the benchmarks themselves are in http.sh.
exec bash "$(dirname "$0")/http.sh" "${1:-bin}"
