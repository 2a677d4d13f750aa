# ngx_http_classify_module: build, test, run.
#
#   make            build the module (build/ngx_http_classify_module.so)
#   make test       install what is missing, build, run the whole suite
#   make run        build and run the gateway with the bundled mock backends
#   make check      the suite under valgrind, then against an ASan/UBSan build
#   make fuzz       libFuzzer targets for the pure parts, FUZZ_SECONDS each
#   make bench-speculate  classify_speculate's time to first token
#   make soak       the bounded soak: SOAK_SECONDS (300) at SOAK_CONC (200)
#                   connections, faults and Redis restarts (soak/run)
#   make deb        the Debian package libnginx-mod-http-classify
#   make deb-check  ... installed, and nginx -t with a configuration using it
#   make clean
#
# NGINX_SRC=/path/to/nginx-x.y.z builds against a source tree instead of
# Debian's nginx-dev (/usr/share/nginx/src).

SHELL      := /bin/bash
TOP        := $(CURDIR)
BUILD      := $(TOP)/build
NGINX_SRC  ?= /usr/share/nginx/src
NGINX_BIN  ?= /usr/sbin/nginx
MODULE     := $(BUILD)/ngx_http_classify_module.so
SOURCES    := config ngx_http_classify_module.c $(wildcard src/*.c src/*.h)
CFLAGS_EXTRA ?= -g -O2 -Wall -Wextra -Wno-unused-parameter -Werror

# Debian packages each target needs
DEB_BUILD  := gcc make nginx nginx-dev libhiredis-dev libcjson-dev
DEB_TEST   := $(DEB_BUILD) perl libtest-base-perl libtest-longstring-perl \
              libtext-diff-perl redis-server libnginx-mod-http-lua \
              libnginx-mod-http-echo libnginx-mod-http-perl curl

TEST_FILES ?= t

.PHONY: all build deps-build deps-test deps-check sdk test run check \
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

# install Debian packages only when something is missing
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
	        --no-install-recommends $$missing >/dev/null; \
	    $$SUDO systemctl stop nginx redis-server 2>/dev/null || true; \
	fi
endef

deps-build:
	$(call apt_ensure,$(DEB_BUILD))

deps-test:
	$(call apt_ensure,$(DEB_TEST))

# the official OpenAI SDK for t/070-openai-sdk.t, pinned by t/sdk's lock file
SDK_DIR := $(BUILD)/sdk

$(SDK_DIR)/node_modules/openai/package.json: t/sdk/package.json t/sdk/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory deps-build \
	    DEB_BUILD="nodejs npm"
	mkdir -p $(SDK_DIR)
	cp t/sdk/package.json t/sdk/package-lock.json $(SDK_DIR)/
	cd $(SDK_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

sdk: $(SDK_DIR)/node_modules/openai/package.json

test: deps-test build sdk
	CLASSIFY_SDK_DIR=$(SDK_DIR) TEST_NGINX_BINARY=$(NGINX_BIN) \
	TEST_NGINX_LOAD_MODULES="$(MODULE)" \
	    prove -I t/lib -r $(TEST_FILES)

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
	$(call apt_ensure,$(DEB_TEST) valgrind)

check-valgrind: deps-check build
	TEST_NGINX_USE_VALGRIND=1 TEST_NGINX_BINARY=$(NGINX_BIN) \
	TEST_NGINX_LOAD_MODULES="$(MODULE)" \
	    prove -I t/lib $(wildcard t/0*.t)

check-asan: deps-check
	$(MAKE) --no-print-directory build BUILD=$(ASAN_BUILD) \
	    CFLAGS_EXTRA="$(ASAN_CFLAGS)"
	rm -rf $(ASAN_BUILD)/reports && mkdir -p $(ASAN_BUILD)/reports
	ASAN_PRELOAD="$(ASAN_LIB)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(ASAN_BUILD)/reports/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(ASAN_BUILD)/reports/ubsan \
	TEST_NGINX_BINARY=$(TOP)/tools/nginx-preload \
	TEST_NGINX_LOAD_MODULES="$(ASAN_BUILD)/ngx_http_classify_module.so" \
	    prove -I t/lib $(wildcard t/0*.t)
	@if ls $(ASAN_BUILD)/reports/* >/dev/null 2>&1; then \
	    cat $(ASAN_BUILD)/reports/*; echo "ASan/UBSan reports above"; exit 1; \
	fi
	@echo "ASan/UBSan: no reports"

# make fuzz: libFuzzer (clang) on the pure parts: the request-body parser,
# the classifier-answer parser and priority resolution, the reply renderer.
# Each target starts from its seed corpus in fuzz/corpus/ and runs for
# FUZZ_SECONDS (default 60); new inputs go to build/fuzz/corpus/, a crash
# to build/fuzz/crash-* and fails the target.  FUZZ_TARGETS picks some.
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= input answer reply
FUZZ_PURE    := $(addprefix src/ngx_http_classify_,input.c json.c verdict.c \
                reply.c)
FUZZ_INCS    := $(addprefix -I $(BUILD)/nginx-src/src/,core event \
                event/modules os/unix http http/modules http/v2) \
                -I $(BUILD)/objs -I src -I fuzz
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Wall -Wno-unused-parameter

fuzz-build: build
	$(call apt_ensure,clang)
	@mkdir -p $(FUZZ_DIR)
	@for t in $(FUZZ_TARGETS); do \
	    echo "clang fuzz/fuzz_$$t.c -> $(FUZZ_DIR)/fuzz_$$t"; \
	    clang $(FUZZ_CFLAGS) $(FUZZ_INCS) -o $(FUZZ_DIR)/fuzz_$$t \
	        fuzz/fuzz_$$t.c fuzz/ngx_fuzz_shim.c $(FUZZ_PURE) -lcjson \
	        || exit 1; \
	done

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	    dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s from fuzz/corpus/$$t"; \
	    UBSAN_OPTIONS=print_stacktrace=1 \
	    $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/crash-$$t- $$dict \
	        $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t \
	        > $(FUZZ_DIR)/fuzz_$$t.log 2>&1 \
	    || { tail -60 $(FUZZ_DIR)/fuzz_$$t.log; \
	         echo "fuzz_$$t: FAILED, the input is in $(FUZZ_DIR)/crash-$$t-*"; \
	         exit 1; }; \
	    grep -E '^Done' $(FUZZ_DIR)/fuzz_$$t.log \
	        | sed "s/^/fuzz_$$t: /"; \
	done

# make deb: libnginx-mod-http-classify, built with Debian's own nginx
# module tooling (dh --with nginx, from nginx-dev); make deb-check installs
# it and runs nginx -t on a configuration that uses it
DEB_DIR := $(BUILD)/deb

deb:
	$(call apt_ensure,$(DEB_BUILD) debhelper dpkg-dev)
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

run: deps-test build
	tools/run-demo

clean:
	rm -rf $(BUILD) t/servroot*

# make bench: the benchmark (bench/run), against the mock backends on
# 127.0.0.1; writes bench/RESULTS.md and bench/latency.svg.
# make bench QUICK=1: c=1 and c=64 only, under 2 minutes (CI), report in
# build/bench/.  MOCK=lua uses the test suite's Lua mock instead of bench/mock-llm.c.
.PHONY: bench
DEB_BENCH  := $(DEB_TEST) libcurl4-openssl-dev gnuplot-nox
BENCH_BIN  := $(BUILD)/bench

bench: build
	$(call apt_ensure,$(DEB_BENCH))
	@mkdir -p $(BENCH_BIN)
	gcc -O2 -Wall -o $(BENCH_BIN)/classify-load bench/classify-load.c -lcurl -lm
	gcc -O2 -Wall -o $(BENCH_BIN)/mock-llm bench/mock-llm.c
	gcc -O2 -Wall -o $(BENCH_BIN)/probe bench/probe.c
	QUICK=$(QUICK) MOCK=$(MOCK) bench/run

# make bench-speculate: classify_speculate's time to first token against the
# plain proxy_pass, the gate without it and an OpenResty gate, and what
# blocked requests' generations cost (bench/speculate/run; ports 18480,
# 18481, 18490; QUICK=1 for c=1 and 64 only)
.PHONY: bench-speculate
bench-speculate: build
	$(call apt_ensure,$(DEB_BENCH) lua-cjson)
	@mkdir -p $(BENCH_BIN)
	gcc -O2 -Wall -o $(BENCH_BIN)/classify-load bench/classify-load.c -lcurl -lm
	gcc -O2 -Wall -o $(BENCH_BIN)/mock-llm bench/mock-llm.c
	QUICK=$(QUICK) BIN=$(BENCH_BIN) bench/speculate/run

# make soak: the bounded soak (soak/run; its top comment says what it mixes
# and what fails it), on 127.0.0.1 ports 19080, 19090 and 19379.  Report in
# build/soak/report.txt.  SOAK_ASAN=1 runs it against the ASan/UBSan build.
SOAK_SECONDS ?= 300
SOAK_CONC    ?= 200

soak: deps-test build
ifeq ($(SOAK_ASAN),1)
	$(MAKE) --no-print-directory build BUILD=$(ASAN_BUILD) \
	    CFLAGS_EXTRA="$(ASAN_CFLAGS)"
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CONC=$(SOAK_CONC) \
	MODULE=$(ASAN_BUILD)/ngx_http_classify_module.so \
	SOAK_NGINX=$(TOP)/tools/nginx-preload ASAN_PRELOAD="$(ASAN_LIB)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 soak/run
else
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CONC=$(SOAK_CONC) soak/run
endif
