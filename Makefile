# vigil build.  `make` builds bin/vigil-api and bin/vigil-hotpath; `make run` and `make test` are the
# two commands of README.md.  Quiet by default, `make V=1` prints full command lines.
#
# Layout of outputs:  build/<flavour>/{common,api,hotpath,tests}/*.o  and  bin/ (normal) or
# bin/asan/ (ASan+UBSan).  Header dependencies come from -MMD -MP.

SHELL := /bin/bash
CC ?= cc

FLAVOUR ?= release
ifeq ($(FLAVOUR),asan)
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  OUT := build/asan
  BIN := bin/asan
else
  SANFLAGS :=
  OUT := build/release
  BIN := bin
endif

CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wno-format-truncation
OPT      ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -MMD -MP -Icommon -pthread $(EXTRA_CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) -pthread $(EXTRA_LDFLAGS)

PKG_API   := libmicrohttpd libcjson libpq libcurl
API_CFLAGS = $(shell pkg-config --cflags $(PKG_API) 2>/dev/null)
API_LIBS   = $(shell pkg-config --libs $(PKG_API) 2>/dev/null) -lm
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
CURL_LIBS    = $(shell pkg-config --libs libcurl 2>/dev/null)

ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
endif

COMMON_SRC  := $(wildcard common/*.c)
API_SRC     := $(filter-out api/main.c,$(wildcard api/*.c))
HOTPATH_SRC := $(filter-out hotpath/main.c,$(wildcard hotpath/*.c))

COMMON_OBJ  := $(COMMON_SRC:%.c=$(OUT)/%.o)
# The parts of common/ that allocate freely (model file compilers, the blob builder, the growable
# buffer) or that only the API needs (hex, numtext) are API side only: the worker links the rest (wire,
# clock, logline, utf8, model_validate, refeval, sha256).  The rule compiler and list sets
# (rules.c, listset.c) serve the API and backtests only.
COMMON_API_ONLY := common/model_build.c common/xgbmodel.c common/mdoc.c common/mdoc_json.c \
                   common/mdoc_ubjson.c common/modelfile.c common/dynbuf.c common/hex.c \
                   common/lgbmmodel.c common/rules.c common/listset.c common/numtext.c
COMMON_RT_OBJ := $(filter-out $(COMMON_API_ONLY:%.c=$(OUT)/%.o),$(COMMON_OBJ))
API_OBJ     := $(API_SRC:%.c=$(OUT)/%.o) $(OUT)/gen/migrations.o $(OUT)/gen/openapi_doc.o
MIGRATIONS  := $(sort $(wildcard migrations/*.sql))
# The OpenAPI document's sources: api/openapi/base.json + one fragment per area (api/openapi/README.md).
OPENAPI_FRAGMENTS := $(sort $(filter-out api/openapi/base.json,$(wildcard api/openapi/*.json)))
OPENAPI_DOC := build/openapi.json
HOTPATH_OBJ := $(HOTPATH_SRC:%.c=$(OUT)/%.o)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BIN)/tests/%)
E2E_SRC     := $(wildcard tests/e2e/e2e_*.c)
E2E_BIN     := $(E2E_SRC:tests/e2e/%.c=$(BIN)/tests/%)
E2E_LIB_SRC := $(filter-out $(E2E_SRC),$(wildcard tests/e2e/*.c))
E2E_LIB_OBJ := $(E2E_LIB_SRC:%.c=$(OUT)/%.o)
# Helpers shared by every test binary (fixture reading).
TESTLIB_OBJ := $(patsubst %.c,$(OUT)/%.o,$(wildcard tests/lib/*.c))
TOOL_SRC    := $(wildcard tests/tools/*.c)

# Debian packages needed to build, run and test.  `make deps` installs the missing ones as root,
# otherwise prints the exact command and stops.  Test-only: clang-format (make lint, a stage of
# make test), iso-codes (test_validate compares every country code with its list) and prometheus
# (its promtool checks /metrics in e2e_metrics; the package is the only Debian one shipping it),
# python3-jsonschema (tests/tools/openapi_check.py validates the OpenAPI document and every e2e
# response against it), python3-sklearn (tests/tools/btcheck.py recomputes a backtest report).
# Bench-only: wrk and golang-github-gin-gonic-gin-dev (tests/bench/http_health.sh: /health
# against Gin's hello handler, built in GOPATH mode from /usr/share/gocode).
PKGS := gcc make pkg-config libmicrohttpd-dev libcjson-dev libpq-dev check libcurl4-openssl-dev \
        postgresql postgresql-contrib curl python3-yaml debootstrap python3 binutils clang-format \
        iso-codes prometheus python3-xgboost python3-jsonschema python3-sklearn wrk \
        golang-github-gin-gonic-gin-dev

.PHONY: all asan run test test-unit test-e2e test-asan bench profile profile-batch deps clean format lint \
        tools docker-test migrate need-clang-format apigraph

all: $(BIN)/vigil-api $(BIN)/vigil-hotpath

asan:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=asan all tests-build

# Jaeger v1.76 (its all-in-one binary, cmd/jaeger) for the tracing tests (tests/e2e/e2e_trace.c),
# `make bench` and the compose tracing profile: built once from the Go module proxy in a scratch
# module and cached at $(JAEGER_BIN) (about 4 minutes; `make clean` removes it with build/).
JAEGER_VERSION := v1.76.0
JAEGER_BIN     := build/jaeger/jaeger
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

.PHONY: jaeger
jaeger: $(JAEGER_BIN)

$(JAEGER_BIN):
	@mkdir -p build/jaeger/src
	$(call say,GO,$@)
	$(Q)cd build/jaeger/src && { [ -f go.mod ] || $(GO) mod init x >/dev/null 2>&1; } && \
	  $(GO) get -tool github.com/jaegertracing/jaeger/cmd/jaeger@$(JAEGER_VERSION) && \
	  $(GO) build -o ../jaeger.tmp github.com/jaegertracing/jaeger/cmd/jaeger && mv ../jaeger.tmp ../jaeger

# vegeta v12.13.0, the independent open-loop load tool `make bench` measures the HTTP figures with
# beside bin/tests/loadgen: `go install` from the Go module proxy into build/vegeta (~15 s).
VEGETA_VERSION := v12.13.0
VEGETA_BIN     := build/vegeta/vegeta

.PHONY: vegeta
vegeta: $(VEGETA_BIN)

$(VEGETA_BIN):
	@mkdir -p build/vegeta
	$(call say,GO,$@)
	$(Q)GOBIN=$(CURDIR)/build/vegeta $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

# `make run` needs only the packages; `make test` and `make bench` need Jaeger too.
deps: deps-pkgs $(JAEGER_BIN)

.PHONY: deps-pkgs
deps-pkgs:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages; run:  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(BIN)/vigil-api: $(OUT)/api/main.o $(API_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(API_LIBS)

# The worker links libc/libm/pthread only: never libpq, libmicrohttpd or cJSON.
$(BIN)/vigil-hotpath: $(OUT)/hotpath/main.o $(HOTPATH_OBJ) $(COMMON_RT_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm -pthread

$(OUT)/common/%.o: common/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(OUT)/hotpath/%.o: hotpath/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -Ihotpath -c -o $@ $<

$(OUT)/api/%.o: api/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(API_CFLAGS) -Iapi -c -o $@ $<

# Migrations are embedded in vigil-api (see api/migrate.h), regenerated when any file changes.
$(OUT)/gen/migrations.c: $(MIGRATIONS) api/scripts/embed.sh
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)bash api/scripts/embed.sh $@ $(MIGRATIONS)

# The OpenAPI document: fragments merged (build.py fails on a duplicate operation or a conflicting
# component), then embedded in vigil-api (api/openapi.h) and served at GET /api/v1/openapi.json.
$(OPENAPI_DOC): api/openapi/base.json $(OPENAPI_FRAGMENTS) api/openapi/build.py
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)/usr/bin/python3 api/openapi/build.py merge $@ api/openapi/base.json $(OPENAPI_FRAGMENTS)

$(OUT)/gen/openapi_doc.c: $(OPENAPI_DOC) api/openapi/build.py
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)/usr/bin/python3 api/openapi/build.py embed $@ $(OPENAPI_DOC)

$(OUT)/gen/%.o: $(OUT)/gen/%.c
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(API_CFLAGS) -Iapi -c -o $@ $<

$(OUT)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(API_CFLAGS) $(CHECK_CFLAGS) -Iapi -Ihotpath -Itests/e2e -Itests/lib -c -o $@ $<

# The lower floors of the API: what the HTTP layer, the pools and the logger need, and nothing that
# knows a resource.  test_http links only these (+ common), which proves they build and run without
# users.o, models.o, transactions.o, auth.o...; tests/tools/apigraph.py proves the graph has no cycle.
API_FLOORS  := config json router metrics pool tracectx spanring otlp trace resolve db hpclient http
API_FLOOR_OBJ := $(API_FLOORS:%=$(OUT)/api/%.o)

$(BIN)/tests/test_http: $(OUT)/tests/unit/test_http.o $(API_FLOOR_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(API_LIBS) $(CHECK_LIBS)

# Unit tests link every module of both sides (never the mains).
$(BIN)/tests/test_%: $(OUT)/tests/unit/test_%.o $(TESTLIB_OBJ) $(API_OBJ) $(HOTPATH_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(API_LIBS) $(CHECK_LIBS)

$(BIN)/tests/e2e_%: $(OUT)/tests/e2e/e2e_%.o $(E2E_LIB_OBJ) $(TESTLIB_OBJ) $(API_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(API_LIBS) $(CHECK_LIBS) $(CURL_LIBS)

# Test tools: small programs (preload libraries, load generators) built from tests/tools/.
$(BIN)/tests/%.so: tests/tools/%.so.c
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CSTD) -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl -pthread

# The test library's LightGBM fixture reader uses cJSON, hence API_LIBS.
$(BIN)/tests/bench_explain: $(OUT)/tests/tools/bench_explain.o $(TESTLIB_OBJ) $(HOTPATH_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(API_LIBS) -pthread

$(BIN)/tests/%: $(OUT)/tests/tools/%.o $(API_OBJ) $(HOTPATH_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(API_LIBS) $(CURL_LIBS)

TOOL_SO := $(patsubst tests/tools/%.so.c,$(BIN)/tests/%.so,$(wildcard tests/tools/*.so.c))
TOOL_BIN := $(filter-out %.so.c,$(TOOL_SRC))
TOOL_BIN := $(TOOL_BIN:tests/tools/%.c=$(BIN)/tests/%)

.PHONY: tests-build
tests-build: $(UNIT_BIN) $(E2E_BIN) $(TOOL_SO) $(TOOL_BIN)

# ---- the two README commands --------------------------------------------------------------------

run: deps-pkgs all
	@bash api/scripts/devrun.sh

test: deps
	$(Q)$(MAKE) --no-print-directory all tests-build
	$(Q)bash tests/run.sh $(BIN) all

# The module graph of api/ (includes + calls between objects) has no cycle; run.sh runs it too.
apigraph: all
	$(Q)/usr/bin/python3 tests/tools/apigraph.py $(OUT)/api api

test-unit: all tests-build
	$(Q)bash tests/run.sh $(BIN) unit

test-e2e: all tests-build
	$(Q)bash tests/run.sh $(BIN) e2e

test-asan: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=asan all tests-build
	$(Q)ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 VIGIL_ASAN=1 \
	    bash tests/run.sh bin/asan all

docker-test: all
	$(Q)bash tests/run.sh $(BIN) docker

migrate: all
	$(Q)$(BIN)/vigil-api migrate

bench: deps all tests-build $(VEGETA_BIN)
	$(Q)bash tests/bench/run.sh $(BIN)

profile: deps-pkgs all tests-build
	$(Q)bash tests/bench/profile.sh $(BIN)

# issue 11 item 4: the 5000-row HTTP batch path, worker mode, vigil-api and vigil-hotpath together
profile-batch: deps-pkgs all tests-build
	$(Q)VIGIL_PROFILE_WORKLOAD=batch bash tests/bench/profile.sh $(BIN)

CLANG_FORMAT ?= clang-format
need-clang-format:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "clang-format not found: apt-get install -y clang-format"; exit 1; }

format: need-clang-format
	$(Q)$(CLANG_FORMAT) -i $$(git ls-files '*.c' '*.h')

# Also a stage of `make test` (tests/run.sh lint), counted in its closing line.
lint: need-clang-format
	$(Q)$(CLANG_FORMAT) --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

# Objects reached only through pattern-rule chains (tests/lib/*.o) are intermediates to make;
# keep them, so a second build does not relink every test.
.SECONDARY:

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- fuzzing (tests/fuzz/README.md) -------------------------------------------------------------
# `make fuzz` builds the libFuzzer harnesses with clang (ASan+UBSan), generates seed corpora from
# tests/fixtures and runs each target for FUZZ_SECONDS under SCHED_IDLE + `nice -n 19` (chrt -i: nice
# alone let fuzzers slow other processes' I/O wake-ups tenfold), one at a time.  Not part of `make test`.  Findings land in build/fuzz/crashes/<target>/.  One target:
#   make fuzz FUZZ_TARGETS=json FUZZ_SECONDS=300
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= json rows xgb ubj model cursor wire score lgbm http rules
FUZZ_OUT     := build/fuzz
FUZZ_BIN     := bin/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(CSTD) -O1 -g $(WARN) -Wno-unknown-warning-option $(FUZZ_SAN) \
                -fsanitize=fuzzer-no-link -MMD -MP -Icommon -Iapi -Ihotpath -pthread \
                $(shell pkg-config --cflags libcjson 2>/dev/null)
FUZZ_LIBS     = $(shell pkg-config --libs libcjson 2>/dev/null) -lm -pthread

# What each harness links: only the modules it drives (the hotpath one never sees cJSON/libpq).
FUZZ_SRC_json    := api/json.c common/numtext.c common/utf8.c common/hex.c
FUZZ_SRC_rows    := api/rows.c api/json.c common/numtext.c common/utf8.c common/hex.c common/dynbuf.c
FUZZ_SRC_xgb     := common/xgbmodel.c common/model_build.c common/model.c common/errbuf.c common/refeval.c \
                    common/mdoc.c common/mdoc_json.c common/mdoc_ubjson.c common/modelfile.c \
                    common/dynbuf.c
FUZZ_SRC_ubj     := $(FUZZ_SRC_xgb)
FUZZ_SRC_lgbm    := common/lgbmmodel.c common/model_build.c common/dynbuf.c common/model.c common/errbuf.c \
                    common/refeval.c \
                    hotpath/hp_lgbm.c hotpath/hp_pool.c hotpath/hp_stats.c
FUZZ_SRC_model   := common/model.c common/errbuf.c common/refeval.c
FUZZ_SRC_cursor  := api/cursor.c api/config.c api/validate.c
FUZZ_SRC_wire    := common/wire.c common/clock.c
FUZZ_SRC_score   := $(HOTPATH_SRC) $(filter-out $(COMMON_API_ONLY),$(COMMON_SRC))
FUZZ_SRC_http    := api/http.c api/router.c api/json.c common/numtext.c api/metrics.c api/config.c \
                    common/clock.c common/logline.c common/dynbuf.c common/utf8.c common/hex.c \
                    common/wire.c api/trace.c api/tracectx.c api/spanring.c api/otlp.c
FUZZ_SRC_rules   := common/rules.c common/listset.c common/errbuf.c common/dynbuf.c common/utf8.c
FUZZ_SRC_seedgen := api/cursor.c api/config.c api/validate.c $(COMMON_SRC)
# Libraries a harness needs beyond FUZZ_LIBS.
FUZZ_LIBS_http   = $(shell pkg-config --libs libmicrohttpd libcurl 2>/dev/null)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BIN)/fuzz_%) $(FUZZ_BIN)/seedgen

$(FUZZ_OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

define FUZZ_LINK_RULE
$(FUZZ_BIN)/fuzz_$(1): $(FUZZ_OUT)/tests/fuzz/fuzz_$(1).o $(FUZZ_SRC_$(1):%.c=$(FUZZ_OUT)/%.o)
	@mkdir -p $$(dir $$@)
	$$(call say,LINK,$$@)
	$$(Q)$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $$(FUZZ_LIBS) $$(FUZZ_LIBS_$(1))
endef
$(foreach t,json rows xgb ubj model cursor wire score lgbm http rules,$(eval $(call FUZZ_LINK_RULE,$(t))))

$(FUZZ_BIN)/seedgen: $(FUZZ_OUT)/tests/fuzz/seedgen.o $(FUZZ_SRC_seedgen:%.c=$(FUZZ_OUT)/%.o)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(FUZZ_LIBS)

# Corpora: build/fuzz/corpus/<t> (grows), seeded from build/fuzz/seeds/<t> (generated) and
# tests/fuzz/seeds/<t> (committed: hand-written seeds and every regression reproducer).
fuzz: fuzz-build
	$(Q)rm -rf $(FUZZ_OUT)/seeds && ASAN_OPTIONS=detect_leaks=0 $(FUZZ_BIN)/seedgen tests/fixtures $(FUZZ_OUT)/seeds
	$(Q)mkdir -p $(FUZZ_OUT)/seeds/ubj && for f in $$(find tests/fixtures/refs -name model.ubj -size -300k); do \
	  cp "$$f" $(FUZZ_OUT)/seeds/ubj/$$(basename $$(dirname "$$f")).ubj; done
	$(Q)status=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_OUT)/corpus/$$t $(FUZZ_OUT)/crashes/$$t $(FUZZ_OUT)/seeds/$$t tests/fuzz/seeds/$$t; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  args=; [ -f tests/fuzz/$$t.args ] && args=$$(cat tests/fuzz/$$t.args); \
	  echo "  FUZZ   $$t ($(FUZZ_SECONDS) s)"; \
	  chrt -i 0 nice -n 19 $(FUZZ_BIN)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_OUT)/crashes/$$t/ $$dict $$args \
	    $(FUZZ_OUT)/corpus/$$t $(FUZZ_OUT)/seeds/$$t tests/fuzz/seeds/$$t \
	    > $(FUZZ_OUT)/$$t.log 2>&1 || { status=1; echo "  FAIL   $$t: see $(FUZZ_OUT)/$$t.log"; }; \
	  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' $(FUZZ_OUT)/$$t.log | sed 's/^/         /'; \
	done; exit $$status
