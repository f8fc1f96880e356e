# usher: build, run, test. See README.md.
#
#   make                 build/usher and build/demo-backend
#   make run             two demo backends on 8001/8002 and usher on 8000, its
#                        dashboard on http://127.0.0.1:9000/ (foreground)
#   make test            unit tests (cmocka) and integration tests (pytest)
#   make SANITIZE=address,undefined test     the same under ASan/UBSan (in build/san/)
#   make bench           ../shared/bench/peers.sh against HAProxy and nginx
#   make format          clang-format every source file
#   make h2spec          h2spec (HTTP/2 conformance) over TLS and prior knowledge

CC      ?= cc
PYTEST  ?= /usr/bin/python3 -m pytest
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
# what installs the Debian packages (a test points it at a stand-in)
DEPS_SH ?= scripts/deps.sh

SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD   := build
OPT     ?= -O2
# usher's files are also compiled for link-time optimisation (fat objects: the
# tests link the plain code) and the binary is linked with it, so the calls
# between the proxy's files (client side, exchange, backend side) are inlined
# as in one file: measured by bench/instr_per_req.py (docs/benchmarks.md)
LTO     ?= -flto=auto -ffat-lto-objects
else
BUILD   := build/san
OPT     ?= -O1
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  += -std=gnu11 $(OPT) -g $(WARN) -pthread -D_GNU_SOURCE -Isrc -I$(LLHTTP_INC) $(SANFLAGS) $(LTO)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS  += $(shell pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml) \
           $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto) \
           $(shell pkg-config --libs libnghttp2 2>/dev/null || echo -lnghttp2) \
           $(shell pkg-config --libs libcares 2>/dev/null || echo -lcares)

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# the dashboard page, generated from web/dashboard (rules at the end)
LIB_OBJ += $(BUILD)/gen/dashboard_page.o
LLHTTP_OBJ := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
DEPS_OK := build/.deps-ok

.PHONY: all run test unit integration valgrind bench clean format format-check deps layers
all: $(BUILD)/usher $(BUILD)/demo-backend

# Nothing make decides while it reads this file depends on the packages: the
# llhttp objects below name their sources only in the recipe, and the stamp is
# made again when llhttp's sources are gone (a package removed since), so
# deps.sh runs before the first compile of a fresh clone and after a removal.
$(DEPS_OK): scripts/deps.sh $(if $(wildcard $(LLHTTP_SRC)/llhttp.c),,deps-missing)
	$(DEPS_SH) build test
	@mkdir -p build && touch $@
deps: $(DEPS_OK)
.PHONY: deps-missing

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# llhttp is third-party generated C: compiled as is, without our warning set.
# Its sources come from a package that scripts/deps.sh may still have to
# install, so they are not prerequisites make would look for first.
$(LLHTTP_OBJ): $(BUILD)/llhttp/%.o: | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -g -w -I$(LLHTTP_INC) $(SANFLAGS) $(LTO) -c $(LLHTTP_SRC)/$*.c -o $@

$(BUILD)/usher: $(BUILD)/src/main.o $(LIB_OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) $(if $(LTO),-flto=auto $(OPT) $(WARN)) $^ $(LDLIBS) -o $@

DEMO_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/demo-backend/*.c))
$(BUILD)/demo-backend: $(DEMO_OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -MF $@.d -MT $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka -o $@

run: all
	scripts/run-demo.sh $(BUILD)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all
	USHER_BIN=$(abspath $(BUILD)/usher) DEMO_BIN=$(abspath $(BUILD)/demo-backend) \
	  $(PYTEST) -q tests/integration

test: unit integration

# Which src/ folder calls which (from the object files); fails on a cycle.
layers: all
	/usr/bin/python3 scripts/layers.py $(BUILD)

# The integration tests with usher under valgrind; one log per usher process.
valgrind: all
	rm -rf build/valgrind
	USHER_BIN=$(abspath scripts/valgrind-usher.sh) DEMO_BIN=$(abspath $(BUILD)/demo-backend) \
	  $(PYTEST) -q tests/integration
	@if grep -l "ERROR SUMMARY: [1-9]\|definitely lost: [1-9]\|Invalid\|uninitialised" build/valgrind/*.log; \
	  then echo "valgrind found problems (logs above)"; exit 1; else echo "valgrind: clean"; fi

bench: all
	scripts/deps.sh bench
	../shared/bench/peers.sh -b $(BUILD)/usher

format:
	clang-format -i $(wildcard src/*.c src/*/*.c src/*/*.h tools/*.c tools/demo-backend/*.c tools/demo-backend/*.h tests/unit/*.c tests/unit/*.h)

format-check:
	clang-format --dry-run -Werror $(wildcard src/*.c src/*/*.c src/*/*.h tools/*.c tools/demo-backend/*.c tools/demo-backend/*.h tests/unit/*.c tests/unit/*.h)

clean:
	rm -rf build

-include $(shell find build -name '*.d' -type f 2>/dev/null)

# ---- fuzzing: libFuzzer targets in tests/fuzz (clang) ---------------------------
#
#   make fuzz [FUZZ_SECONDS=60]   build the targets into build/fuzz/, replay
#                                 tests/fuzz/regress/<target>/ (every crash found
#                                 so far), then fuzz each target for FUZZ_SECONDS
#                                 from tests/fuzz/corpus/<target>/ with
#                                 tests/fuzz/<target>.dict if there is one, else
#                                 tests/fuzz/http.dict; fails on any crash
#   make fuzz-build               only build them
#
# New inputs go to build/fuzz/corpus/<target>/ and crashes to
# build/fuzz/<target>-crash-*; the seeds in tests/ are never written.
FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 60
FUZZ_DIR      := build/fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   := -std=gnu11 -O1 -g -pthread -D_GNU_SOURCE -Isrc -I$(LLHTTP_INC) $(FUZZ_SAN)
FUZZ_WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-function
FUZZ_TARGETS  := fuzz_request_head fuzz_chunked fuzz_response_head fuzz_session fuzz_sni fuzz_h2 fuzz_dnsmsg fuzz_rec13
FUZZ_BINS     := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)
FUZZ_LLHTTP   := $(FUZZ_DIR)/llhttp/llhttp.o $(FUZZ_DIR)/llhttp/api.o $(FUZZ_DIR)/llhttp/http.o
FUZZ_LIB      := $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o) $(FUZZ_DIR)/gen/dashboard_page.o

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

# usher's objects and llhttp as usher builds them, with coverage for libFuzzer
$(FUZZ_DIR)/src/%.o: src/%.c | $(DEPS_OK)
	@scripts/deps.sh fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LLHTTP): $(FUZZ_DIR)/llhttp/%.o: | $(DEPS_OK)
	@scripts/deps.sh fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -fsanitize=fuzzer-no-link -c $(LLHTTP_SRC)/$*.c -o $@

FUZZ_H1       := $(FUZZ_DIR)/src/http/h1.o $(FUZZ_DIR)/src/http/body.o $(FUZZ_DIR)/src/http/policy.o

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_H1) $(FUZZ_LLHTTP)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $< $(FUZZ_H1) $(FUZZ_LLHTTP) -o $@

$(FUZZ_DIR)/fuzz_sni: tests/fuzz/fuzz_sni.c $(FUZZ_DIR)/src/tls/sni.o
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $^ -o $@

$(FUZZ_DIR)/fuzz_dnsmsg: tests/fuzz/fuzz_dnsmsg.c $(FUZZ_DIR)/src/upstream/dnsmsg.o
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $^ -o $@

$(FUZZ_DIR)/fuzz_session: tests/fuzz/fuzz_session.c tests/fuzz/fuzz_common.h tests/fuzz/fuzz_worker.h $(FUZZ_LIB) $(FUZZ_LLHTTP)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $< $(FUZZ_LIB) $(FUZZ_LLHTTP) $(LDLIBS) -o $@

# HTTP/2 frames into a whole connection (nghttp2's HPACK inflater checks what comes back)
$(FUZZ_DIR)/fuzz_h2: tests/fuzz/fuzz_h2.c tests/fuzz/fuzz_common.h tests/fuzz/fuzz_worker.h $(FUZZ_LIB) $(FUZZ_LLHTTP)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $< $(FUZZ_LIB) $(FUZZ_LLHTTP) $(LDLIBS) -o $@

# the TLS 1.3 record layer (rec13.c, conn_tls13.c) on a socketpair, the client played by the target
$(FUZZ_DIR)/fuzz_rec13: tests/fuzz/fuzz_rec13.c $(FUZZ_LIB) $(FUZZ_LLHTTP)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $< $(FUZZ_LIB) $(FUZZ_LLHTTP) $(LDLIBS) -o $@

fuzz: $(FUZZ_BINS)
	@status=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  if ls tests/fuzz/regress/$$t/* >/dev/null 2>&1; then \
	    echo "== $$t: replaying tests/fuzz/regress/$$t"; \
	    for f in tests/fuzz/regress/$$t/*; do \
	      $(FUZZ_DIR)/$$t $$f >$(FUZZ_DIR)/$$t-regress.log 2>&1 || \
	        { echo "FAIL: $$t crashes on $$f:"; grep -m3 -E "invariant|ERROR|runtime error" $(FUZZ_DIR)/$$t-regress.log; status=1; }; \
	    done; \
	  fi; \
	  echo "== $$t: fuzzing for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -dict=$$(if [ -f tests/fuzz/$$t.dict ]; then echo tests/fuzz/$$t.dict; else echo tests/fuzz/http.dict; fi) -artifact_prefix=$(FUZZ_DIR)/$$t- -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_DIR)/$$t.log 2>&1 \
	    && tail -n 12 $(FUZZ_DIR)/$$t.log | grep -E "^#[0-9]+.*(DONE|pulse)|stat::" | tail -n 6 \
	    || { echo "FAIL: $$t crashed (log: $(FUZZ_DIR)/$$t.log):"; \
	         grep -m5 -E "invariant|ERROR|runtime error|Test unit written" $(FUZZ_DIR)/$$t.log; status=1; }; \
	done; exit $$status

# ---- balancer pick cost: ns per pick for every algorithm (docs/benchmarks.md) ----
.PHONY: bench-pick
bench-pick: $(BUILD)/bench/pick_bench
	$(BUILD)/bench/pick_bench

$(BUILD)/bench/pick_bench: bench/pick_bench.c $(LIB_OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# ---- install, packages -----------------------------------------------------------
#
#   make install [PREFIX=/usr/local] [DESTDIR=]   the program, usher(8) and
#                      usher.yaml(5), the systemd unit and the sysusers.d entry
#                      of the usher user under PREFIX; the default usher.yaml
#                      (only if there is none) and the logrotate rule under
#                      SYSCONFDIR; everything under DESTDIR (a staging root)
#   make uninstall     the same files, except usher.yaml (your configuration)
#   make deb           build/usher_VERSION-N_ARCH.deb with dpkg-buildpackage
#                      from debian/, in a copy of the tree under build/deb/,
#                      then lintian on it
#
# SYSCONFDIR is /etc whatever PREFIX is: the unit runs usher -c
# /etc/usher/usher.yaml and logrotate reads /etc/logrotate.d only. DESTDIR
# goes in front of every path (DESTDIR=/tmp/stage puts the file in
# /tmp/stage/etc/usher/usher.yaml); the paths written into the unit are the
# final ones, without DESTDIR.
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= /etc
INSTALL_BIN ?= $(BUILD)/usher
VERSION     := $(shell sed -n 's/^\#define USHER_VERSION "\(.*\)"/\1/p' src/version.h)

.PHONY: install uninstall deb
install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/usher \
	  $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/usher
	install -m 644 man/usher.8 $(DESTDIR)$(MANDIR)/man8/usher.8
	install -m 644 man/usher.yaml.5 $(DESTDIR)$(MANDIR)/man5/usher.yaml.5
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  packaging/usher.service.in >$(DESTDIR)$(UNITDIR)/usher.service
	chmod 644 $(DESTDIR)$(UNITDIR)/usher.service
	install -m 644 packaging/usher.sysusers $(DESTDIR)$(SYSUSERSDIR)/usher.conf
	install -m 644 packaging/usher.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/usher
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/usher/usher.yaml ]; then \
	  echo "kept $(DESTDIR)$(SYSCONFDIR)/usher/usher.yaml (the default is packaging/usher.yaml)"; \
	else \
	  echo "install -m 644 packaging/usher.yaml $(DESTDIR)$(SYSCONFDIR)/usher/usher.yaml"; \
	  install -m 644 packaging/usher.yaml $(DESTDIR)$(SYSCONFDIR)/usher/usher.yaml; \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
	  echo "next: systemd-sysusers (makes the usher user), systemctl daemon-reload," \
	       "systemctl enable --now usher"; fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/usher $(DESTDIR)$(MANDIR)/man8/usher.8 \
	  $(DESTDIR)$(MANDIR)/man5/usher.yaml.5 $(DESTDIR)$(UNITDIR)/usher.service \
	  $(DESTDIR)$(SYSUSERSDIR)/usher.conf $(DESTDIR)$(SYSCONFDIR)/logrotate.d/usher
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/usher/usher.yaml (your configuration)"

# dpkg-buildpackage writes its results beside the source tree and cleans what it
# builds in it: a copy under build/deb/ keeps both away from this tree.
DEB_DIR := build/deb
deb:
	scripts/deps.sh build pkg
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/usher-$(VERSION)
	tar -cf - --exclude=./build --exclude=./.git --exclude=.pytest_cache --exclude=__pycache__ . \
	  | tar -xf - -C $(DEB_DIR)/usher-$(VERSION)
	cd $(DEB_DIR)/usher-$(VERSION) && dpkg-buildpackage -us -uc -b
	cp $(DEB_DIR)/*.deb build/
	lintian --fail-on error,warning --info $(DEB_DIR)/*.changes
	@ls build/*.deb

# ---- the dashboard: web/dashboard inlined with Chart.js into one page, as C -------
#
# scripts/embed.py puts style.css, Debian's Chart.js (libjs-chart.js) and app.js
# into index.html and writes the page as build/gen/dashboard_page.c (the symbols
# of src/admin/dashboard.h); usher serves it from memory at the admin's /.
CHARTJS  ?= /usr/share/javascript/chart.js/chart.min.js
DASH_C   := build/gen/dashboard_page.c
DASH_WEB := $(wildcard web/dashboard/*)

$(DASH_C): scripts/embed.py $(DASH_WEB) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	/usr/bin/python3 scripts/embed.py --chartjs $(CHARTJS) --html build/gen/dashboard.html web/dashboard $@

$(BUILD)/gen/dashboard_page.o: $(DASH_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/gen/dashboard_page.o: $(DASH_C)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -c $< -o $@

# ---- h2spec: HTTP/2 conformance over TLS and prior knowledge (tests/h2spec/run.sh) ----
#
#   make h2spec          builds build/h2spec once (from source, offline, with the
#                        shared tools' build.sh), then runs it against $(BUILD)/usher
#                        over TLS (ALPN h2) and over a plain listener; fails on
#                        any failed case
H2SPEC_BUILD ?= $(firstword $(wildcard ../shared/tools/h2spec/build.sh /work/shared/tools/h2spec/build.sh) \
                  ../shared/tools/h2spec/build.sh)
.PHONY: h2spec
h2spec: all build/h2spec
	H2SPEC=build/h2spec tests/h2spec/run.sh $(BUILD)

build/h2spec:
	scripts/deps.sh h2spec
	$(H2SPEC_BUILD) $@
