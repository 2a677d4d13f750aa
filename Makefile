# ngx_http_classify_module: build, test, run.
#
#   make            build the module (build/ngx_http_classify_module.so)
#   make deps       install every Debian package any target needs (CI)
#   make test       install what is missing, build, run the whole suite
#   make test-upstream TEST_NGINX_UPSTREAM=/path/to/test-nginx/lib
#                   the suites under OpenResty's own Test::Nginx
#   make run        build and run the gateway with the bundled mock backend
#   make mock       the mock LLM backend (build/bin/mock-llm, t/mock/)
#   make check      the suite under valgrind, then against an ASan/UBSan build
#   make fuzz       libFuzzer targets for the pure parts, FUZZ_SECONDS each
#   make fuzz-long  ... 10 M inputs each; make fuzz-cost: the parser's cost
#   make soak       the bounded soak: SOAK_SECONDS (300) at SOAK_CONC (200)
#                   connections, faults and Redis restarts (soak/run);
#                   SOAK_CACHE=1 with the verdict cache and repeats
#   make bench      the benchmarks: bench-cache, bench-speculate and the
#                   gate's own (bench/run); QUICK=1 for a short run (CI)
#   make bench-cache      the verdict cache's benchmark
#   make bench-speculate  classify_speculate's time to first token
#   make bench-guard      what the streaming output guard costs
#   make deb        the Debian package libnginx-mod-http-classify
#   make deb-check  ... installed, and nginx -t with a configuration using it
#   make clean
#
# NGINX_SRC=/path/to/nginx-x.y.z builds against a source tree instead of
# Debian's nginx-dev (/usr/share/nginx/src).  TEST_FILES=... picks the test
# files of make test, make check and make test-upstream.

SHELL      := /bin/bash
TOP        := $(CURDIR)
BUILD      := $(TOP)/build
NGINX_SRC  ?= /usr/share/nginx/src
NGINX_BIN  ?= /usr/sbin/nginx
MODULE     := $(BUILD)/ngx_http_classify_module.so
SOURCES    := config ngx_http_classify_module.c $(wildcard src/*.c src/*.h)
CFLAGS_EXTRA ?= -g -O2 -Wall -Wextra -Wno-unused-parameter -Werror

# The Debian packages, once, by purpose; each target installs the lists it
# needs (apt_ensure), make deps all of them
DEB_BUILD    := gcc make nginx nginx-dev libhiredis-dev
# cJSON: only the test tools' (the fuzzers' oracle, the soak client), not
# the module's
DEB_TEST     := libcjson-dev perl libtest-base-perl libtest-longstring-perl \
                libtext-diff-perl redis-server libnginx-mod-http-echo \
                libnginx-mod-http-perl curl
# only where there is no npm yet: a nodejs that is not Debian's ships its
# own npm, and Debian's npm package conflicts with it
DEB_SDK      := nodejs npm
DEB_CHECK    := valgrind
DEB_FUZZ     := clang libcjson-dev
# valgrind for the module's instruction share (callgrind)
DEB_BENCH    := libcurl4-openssl-dev gnuplot-nox valgrind
# the benchmarks' peers (bench/peers/): the same gate in OpenResty's Lua
# module and in njs, loaded into the same Debian nginx
DEB_PEERS    := libnginx-mod-http-ndk libnginx-mod-http-lua lua-cjson \
                libnginx-mod-http-js
DEB_PACKAGE  := debhelper dpkg-dev
# what OpenResty's Test::Nginx needs beyond DEB_TEST (make test-upstream)
DEB_UPSTREAM := libwww-perl libhttp-message-perl liblist-moreutils-perl
DEB_ALL      := $(DEB_BUILD) $(DEB_TEST) $(DEB_CHECK) $(DEB_FUZZ) \
                $(DEB_BENCH) $(DEB_PEERS) $(DEB_PACKAGE) $(DEB_UPSTREAM)

TEST_FILES ?= t
# make check and make test-upstream: the module's suites, not the runner's
# own tests (t/runner/), unless TEST_FILES says otherwise
SUITE_FILES := $(if $(filter command line environment,$(origin TEST_FILES)),\
               $(TEST_FILES),$(wildcard t/0*.t))

# the C tools (the mock, the bench and soak clients, the probe): one
# pattern rule, -Werror, dependency files (-MMD) so a header change rebuilds
BIN        := $(BUILD)/bin
OBJ        := $(BUILD)/obj
TOOL_CFLAGS := -g -O2 -Wall -Wextra -Wno-unused-parameter -Werror -MMD -MP
MOCK       := $(BIN)/mock-llm
MOCK_OBJS  := $(patsubst %.c,$(OBJ)/%.o,$(wildcard t/mock/*.c))

.PHONY: all build deps deps-sdk deps-sdk-apt deps-build deps-test \
        deps-check sdk mock test test-upstream upstream-given run check \
        check-valgrind check-asan fuzz fuzz-build soak deb deb-check clean

all: build

build: $(MODULE)

$(MODULE): $(SOURCES)
	@$(MAKE) --no-print-directory deps-build
	@mkdir -p $(BUILD)
	@# configure writes into the tree it runs in: use a copy of nginx-dev's,
	@# so that builds never touch /usr/share and never race each other
	@if [ "$(NGINX_SRC)" = /usr/share/nginx/src ]; then \
	    rm -rf $(BUILD)/nginx-src && cp -r $(NGINX_SRC) $(BUILD)/nginx-src && \
	    cd $(BUILD)/nginx-src && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(CFLAGS_EXTRA)" \
	        --add-dynamic-module=$(TOP) --builddir=$(BUILD)/objs \
	        > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }; \
	    $(MAKE) -f $(BUILD)/objs/Makefile -C $(BUILD)/nginx-src modules; \
	else \
	    cd $(NGINX_SRC) && ./configure --with-compat \
	        --with-cc-opt="$(CFLAGS_EXTRA)" \
	        --add-dynamic-module=$(TOP) --builddir=$(BUILD)/objs \
	        > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }; \
	    $(MAKE) -f $(BUILD)/objs/Makefile -C $(NGINX_SRC) modules; \
	fi
	@# a new inode: a running nginx keeps the module it mapped
	cp $(BUILD)/objs/ngx_http_classify_module.so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)

# install Debian packages only when something is missing.  Debian's nginx
# and redis-server packages (and nginx's module packages, through their
# postinst) start the system services on install (ports 80 and 6379); the
# suites, the bench and the soak start servers of their own, so the service
# that an install just started is stopped again, by its unit name, here and
# only here (nothing else is ever stopped but by the pid it was started
# with).
define apt_ensure
	@missing=""; for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	        || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null || exit 1; \
	    stop_unit() { $$SUDO systemctl stop $$1 2>/dev/null \
	        || $$SUDO invoke-rc.d $$1 stop 2>/dev/null || true; }; \
	    case "$$missing " in *" nginx "*|*" libnginx-mod-"*) \
	        stop_unit nginx ;; esac; \
	    case "$$missing " in *" redis-server "*) \
	        stop_unit redis-server ;; esac; \
	fi
endef

deps: deps-sdk
	$(call apt_ensure,$(DEB_ALL))

deps-sdk:
	@command -v npm >/dev/null || $(MAKE) --no-print-directory deps-sdk-apt

deps-sdk-apt:
	$(call apt_ensure,$(DEB_SDK))

deps-build:
	$(call apt_ensure,$(DEB_BUILD))

deps-test:
	$(call apt_ensure,$(DEB_BUILD) $(DEB_TEST))

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) -c -o $@ $<

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

$(MOCK): $(MOCK_OBJS)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ -lcjson -lm

$(BIN)/classify-load: $(OBJ)/bench/classify-load.o
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ -lcurl -lm

$(BIN)/probe: $(OBJ)/bench/probe.o
	@mkdir -p $(BIN)
	$(CC) -o $@ $^

$(BIN)/soak-client: $(OBJ)/soak/soak-client.o
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ -lcjson -lm

mock: deps-build
	@$(MAKE) --no-print-directory $(MOCK)

# the official OpenAI and Anthropic SDKs for t/070 and t/071, pinned by
# t/sdk's lock file
SDK_DIR := $(BUILD)/sdk

$(SDK_DIR)/node_modules/openai/package.json: t/sdk/package.json t/sdk/package-lock.json
	@$(MAKE) --no-print-directory deps-sdk
	mkdir -p $(SDK_DIR)
	cp t/sdk/package.json t/sdk/package-lock.json $(SDK_DIR)/
	cd $(SDK_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

sdk: $(SDK_DIR)/node_modules/openai/package.json

# the environment every run of the suites gets
TEST_ENV := CLASSIFY_SDK_DIR=$(SDK_DIR) TEST_NGINX_BINARY=$(NGINX_BIN) \
            TEST_NGINX_LOAD_MODULES="$(MODULE)" TEST_NGINX_MOCK_BINARY=$(MOCK)

test: deps-test build mock sdk
	$(TEST_ENV) prove -I t/lib -r $(TEST_FILES)

# the suites under OpenResty's own Test::Nginx, which is not packaged for
# Debian: TEST_NGINX_UPSTREAM is its lib/ (README, Testing); its Test::Nginx
# comes first in @INC, t/lib gives only Test::Classify::*
TEST_NGINX_UPSTREAM ?=

upstream-given:
	@[ -n "$(TEST_NGINX_UPSTREAM)" ] \
	    && [ -f "$(TEST_NGINX_UPSTREAM)/Test/Nginx/Socket.pm" ] \
	    || { echo "make test-upstream:" \
	              "TEST_NGINX_UPSTREAM=/path/to/test-nginx/lib (a checkout" \
	              "of openresty/test-nginx; README, Testing)"; exit 2; }

test-upstream: upstream-given deps-test build mock sdk
	$(call apt_ensure,$(DEB_UPSTREAM))
	$(TEST_ENV) prove -I $(TEST_NGINX_UPSTREAM) -I t/lib -r $(SUITE_FILES)

# make check: the suite under valgrind (memcheck, leak check), then against
# an ASan/UBSan build of the module preloaded into Debian's nginx
ASAN_BUILD := $(BUILD)/asan
ASAN_LIB   := $(shell gcc -print-file-name=libasan.so) \
              $(shell gcc -print-file-name=libubsan.so)

ASAN_CFLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -Wall -Wextra \
               -Wno-unused-parameter -Werror

check: check-valgrind check-asan

deps-check:
	$(call apt_ensure,$(DEB_BUILD) $(DEB_TEST) $(DEB_CHECK))

check-valgrind: deps-check build mock sdk
	TEST_NGINX_USE_VALGRIND=1 $(TEST_ENV) prove -I t/lib $(SUITE_FILES)

check-asan: deps-check mock sdk
	$(MAKE) --no-print-directory build BUILD=$(ASAN_BUILD) \
	    CFLAGS_EXTRA="$(ASAN_CFLAGS)"
	rm -rf $(ASAN_BUILD)/reports && mkdir -p $(ASAN_BUILD)/reports
	ASAN_PRELOAD="$(ASAN_LIB)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(ASAN_BUILD)/reports/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(ASAN_BUILD)/reports/ubsan \
	CLASSIFY_SDK_DIR=$(SDK_DIR) TEST_NGINX_MOCK_BINARY=$(MOCK) \
	TEST_NGINX_BINARY=$(TOP)/tools/nginx-preload \
	TEST_NGINX_LOAD_MODULES="$(ASAN_BUILD)/ngx_http_classify_module.so" \
	    prove -I t/lib $(SUITE_FILES)
	@if ls $(ASAN_BUILD)/reports/* >/dev/null 2>&1; then \
	    cat $(ASAN_BUILD)/reports/*; echo "ASan/UBSan reports above"; exit 1; \
	fi
	@echo "ASan/UBSan: no reports"

# make fuzz: libFuzzer (clang) on the pure parts: the request-body parser,
# the classifier-answer parser and priority resolution, the reply renderer.
# Each target first runs once on each large body of build/fuzz/seeds/ (for
# fuzz_input those of fuzz/cost_input.c), then fuzzes from its seed corpus
# in fuzz/corpus/ for FUZZ_SECONDS (default 60), or FUZZ_RUNS inputs when
# set, on inputs up to FUZZ_MAX_LEN (1 MiB); every input within
# FUZZ_TIMEOUT seconds and, inside the target, within a linear CPU-time
# budget (fuzz/ngx_fuzz.h).
# New inputs go to build/fuzz/corpus/, a crash to build/fuzz/crash-* and
# fails the target.  FUZZ_TARGETS picks some.
# make fuzz-long: 10 M inputs per target (FUZZ_LONG_RUNS).
# make fuzz-cost: CPU time and allocation of the body parser on the large
# bodies, built without sanitizers.
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_LONG_RUNS ?= 10000000
FUZZ_MAX_LEN ?= 1048576
FUZZ_TIMEOUT ?= 2
FUZZ_TARGETS ?= input answer reply stream
FUZZ_PURE    := $(addprefix src/ngx_http_classify_,input.c json.c jsonr.c \
                verdict.c reply.c stream.c)
FUZZ_INCS    := $(addprefix -I $(BUILD)/nginx-src/src/,core event \
                event/modules os/unix http http/modules http/v2) \
                -I $(BUILD)/objs -I src -I fuzz
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Wall -Wextra \
                -Wno-unused-parameter -Werror
FUZZ_LIMIT    = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS), \
                    -max_total_time=$(FUZZ_SECONDS))

.PHONY: fuzz-long fuzz-cost

# one libFuzzer binary per target, rebuilt when a source or a header any of
# its files includes changes (clang -MM, every file's rule in the .d)
$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/ngx_fuzz_shim.c $(FUZZ_PURE) $(MODULE)
	@mkdir -p $(FUZZ_DIR)
	clang $(FUZZ_INCS) -MM -MP -MT $@ $(filter %.c,$^) > $@.d
	clang $(FUZZ_CFLAGS) $(FUZZ_INCS) -o $@ $(filter %.c,$^) -lcjson

# the body parser's cost on the large bodies, without sanitizers
$(FUZZ_DIR)/cost_input: fuzz/cost_input.c fuzz/ngx_fuzz_shim.c $(FUZZ_PURE) \
        $(MODULE)
	@mkdir -p $(FUZZ_DIR)
	gcc $(FUZZ_INCS) -MM -MP -MT $@ $(filter %.c,$^) > $@.d
	gcc -O2 -g -Wall -Wextra -Wno-unused-parameter -Werror $(FUZZ_INCS) \
	    -o $@ $(filter %.c,$^)

-include $(wildcard $(FUZZ_DIR)/*.d)

fuzz-build: build
	$(call apt_ensure,$(DEB_FUZZ))
	@$(MAKE) --no-print-directory $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS)) \
	    $(FUZZ_DIR)/cost_input
	@rm -rf $(FUZZ_DIR)/seeds && mkdir -p $(FUZZ_DIR)/seeds/input
	$(FUZZ_DIR)/cost_input --seeds $(FUZZ_DIR)/seeds/input

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/seeds/$$t; \
	    if ls $(FUZZ_DIR)/seeds/$$t/* >/dev/null 2>&1; then \
	        echo "fuzz_$$t: the large bodies of build/fuzz/seeds/$$t, once each"; \
	        $(FUZZ_DIR)/fuzz_$$t -timeout=$(FUZZ_TIMEOUT) \
	            -rss_limit_mb=2048 $(FUZZ_DIR)/seeds/$$t/* \
	            > $(FUZZ_DIR)/seeds_$$t.log 2>&1 \
	        || { tail -40 $(FUZZ_DIR)/seeds_$$t.log; exit 1; }; \
	    fi; \
	    dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	    echo "fuzz_$$t: $(FUZZ_LIMIT) from fuzz/corpus/$$t"; \
	    UBSAN_OPTIONS=print_stacktrace=1 \
	    $(FUZZ_DIR)/fuzz_$$t $(FUZZ_LIMIT) \
	        -max_len=$(FUZZ_MAX_LEN) -timeout=$(FUZZ_TIMEOUT) \
	        -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/crash-$$t- $$dict \
	        $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t \
	        > $(FUZZ_DIR)/fuzz_$$t.log 2>&1 \
	    || { tail -60 $(FUZZ_DIR)/fuzz_$$t.log; \
	         echo "fuzz_$$t: FAILED, the input is in $(FUZZ_DIR)/crash-$$t-*"; \
	         exit 1; }; \
	    grep -E '^Done|stat::number_of_executed_units|stat::slowest_unit_time_sec' \
	        $(FUZZ_DIR)/fuzz_$$t.log | sed "s/^/fuzz_$$t: /"; \
	done

fuzz-long:
	$(MAKE) --no-print-directory fuzz FUZZ_RUNS=$(FUZZ_LONG_RUNS)

fuzz-cost: fuzz-build
	$(FUZZ_DIR)/cost_input all

# make deb: libnginx-mod-http-classify, built with Debian's own nginx
# module tooling (dh --with nginx, from nginx-dev); make deb-check installs
# it and runs nginx -t on a configuration that uses it
DEB_DIR := $(BUILD)/deb

deb:
	$(call apt_ensure,$(DEB_BUILD) $(DEB_PACKAGE))
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	tar -C $(TOP) -c --exclude=./build --exclude='./t/servroot*' \
	    --exclude=./.git . | tar -C $(DEB_DIR)/src -x
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc >$(DEB_DIR)/build.log 2>&1 \
	    || { tail -30 $(DEB_DIR)/build.log; exit 1; }
	@ls $(DEB_DIR)/*.deb

deb-check: deb
	tools/deb-check $(DEB_DIR)

# make run LLM_URL=... LLM_KEY=... LLM_MODEL=...: a real server, not the mock
export LLM_URL LLM_KEY LLM_MODEL

run: deps-test build mock
	MOCK_BIN=$(MOCK) tools/run-demo

clean:
	rm -rf $(BUILD) t/servroot*

# make bench: the three benchmarks, one after the other (bench/lib.sh is
# what their runners share, bench/peers/ the same gate in OpenResty Lua and
# in njs that each compares the module with): make bench-cache, make
# bench-speculate, then bench/run; against the mock backend on 127.0.0.1.
# Writes bench/RESULTS.md and bench/latency.svg, bench/CACHE-RESULTS.md,
# bench/SPECULATE-RESULTS.md.  QUICK=1: c=1 and c=64 only (the cache's
# c=16), small counts, a few minutes (CI), reports in build/bench/.
.PHONY: bench bench-tools bench-cache bench-speculate
BENCH_BINS := $(MOCK) $(BIN)/classify-load $(BIN)/probe
BENCH_RUN  := QUICK=$(QUICK) BIN=$(BIN)

bench-tools: deps-test build
	$(call apt_ensure,$(DEB_BENCH) $(DEB_PEERS))
	@$(MAKE) --no-print-directory $(BENCH_BINS)

bench: bench-cache
	@$(MAKE) --no-print-directory bench-speculate
	$(BENCH_RUN) bench/run

# make bench-cache: the verdict cache's benchmark (bench/cache/run): 34% of
# the questions repeat; the module without and with classify_cache, and the
# peers with a verdict cache of their own, as ratios in
# bench/CACHE-RESULTS.md (ports 18280-18282, 18290)
bench-cache: bench-tools
	$(BENCH_RUN) bench/cache/run

# make bench-speculate: classify_speculate's time to first token against the
# plain proxy_pass, the gate without it and the peers, and what blocked
# requests' generations cost (bench/speculate/run; ports 18480-18482, 18490)
bench-speculate: bench-tools
	$(BENCH_RUN) bench/speculate/run

# make bench-guard: what the streaming output guard (classify_output) costs:
# time to first token, the lag of the answer's events behind the backend,
# worker CPU per streamed request, guard off against hold, a smaller
# window and release (bench/guard/run; ports 18580 and 18590; QUICK=1 for
# c=1 and 64 only); bench/GUARD-RESULTS.md
.PHONY: bench-guard
bench-guard: bench-tools
	$(BENCH_RUN) bench/guard/run

# make soak: the bounded soak (soak/run; its top comment says what it mixes
# and what fails it), on 127.0.0.1 ports 19080, 19090 and 19379.  Report in
# build/soak/report.txt.  SOAK_ASAN=1 runs it against the ASan/UBSan build.
SOAK_SECONDS ?= 300
SOAK_CONC    ?= 200

soak: deps-test build
	@$(MAKE) --no-print-directory $(MOCK) $(BIN)/soak-client
ifeq ($(SOAK_ASAN),1)
	$(MAKE) --no-print-directory build BUILD=$(ASAN_BUILD) \
	    CFLAGS_EXTRA="$(ASAN_CFLAGS)"
	BIN=$(BIN) SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CONC=$(SOAK_CONC) \
	MODULE=$(ASAN_BUILD)/ngx_http_classify_module.so \
	SOAK_NGINX=$(TOP)/tools/nginx-preload ASAN_PRELOAD="$(ASAN_LIB)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 soak/run
else
	BIN=$(BIN) SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CONC=$(SOAK_CONC) soak/run
endif
