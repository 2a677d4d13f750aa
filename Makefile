# ngx_http_classify_module: build, test, run.
#
#   make            build the module (build/ngx_http_classify_module.so)
#   make test       install what is missing, build, run the whole suite
#   make run        build and run the gateway with the bundled mock backends
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
              libnginx-mod-http-echo curl

TEST_FILES ?= t

.PHONY: all build deps-build deps-test test run clean

all: build

build: $(MODULE)

$(MODULE): $(SOURCES)
	@$(MAKE) --no-print-directory deps-build
	@mkdir -p $(BUILD)
	@if [ "$(NGINX_SRC)" = /usr/share/nginx/src ]; then \
	    cd $(NGINX_SRC) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(CFLAGS_EXTRA)" \
	        --add-dynamic-module=$(TOP) --builddir=$(BUILD)/objs \
	        > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }; \
	else \
	    cd $(NGINX_SRC) && ./configure --with-compat \
	        --with-cc-opt="$(CFLAGS_EXTRA)" \
	        --add-dynamic-module=$(TOP) --builddir=$(BUILD)/objs \
	        > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }; \
	fi
	$(MAKE) -f $(BUILD)/objs/Makefile -C $(NGINX_SRC) modules
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

test: deps-test build
	TEST_NGINX_BINARY=$(NGINX_BIN) \
	TEST_NGINX_LOAD_MODULES="$(MODULE)" \
	    prove -I t/lib -r $(TEST_FILES)

run: deps-test build
	tools/run-demo

clean:
	rm -rf $(BUILD) t/servroot*
