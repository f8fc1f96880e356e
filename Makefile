# usher: build, run, test. See README.md.
#
#   make                 build/usher and build/demo-backend
#   make run             two demo backends on 8001/8002 and usher on 8000 (foreground)
#   make test            unit tests (cmocka) and integration tests (pytest)
#   make SANITIZE=address,undefined test     the same under ASan/UBSan (in build/san/)
#   make bench           ../shared/bench/peers.sh against HAProxy and nginx
#   make format          clang-format every source file

CC      ?= cc
PYTEST  ?= /usr/bin/python3 -m pytest
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD   := build
OPT     ?= -O2
else
BUILD   := build/san
OPT     ?= -O1
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  += -std=gnu11 $(OPT) -g $(WARN) -pthread -D_GNU_SOURCE -Isrc -I$(LLHTTP_INC) $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS  += $(shell pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml)

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LLHTTP_OBJ := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
DEPS_OK := build/.deps-ok

.PHONY: all run test unit integration valgrind bench clean format format-check deps
all: $(BUILD)/usher $(BUILD)/demo-backend

$(DEPS_OK): scripts/deps.sh
	scripts/deps.sh build test
	@mkdir -p build && touch $@
deps: $(DEPS_OK)

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# llhttp is third-party generated C: compiled as is, without our warning set.
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -g -w -I$(LLHTTP_INC) $(SANFLAGS) -c $< -o $@

$(BUILD)/usher: $(BUILD)/src/main.o $(LIB_OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/demo-backend: $(BUILD)/tools/demo-backend.o $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -lcmocka -o $@

run: all
	scripts/run-demo.sh $(BUILD)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all
	USHER_BIN=$(abspath $(BUILD)/usher) DEMO_BIN=$(abspath $(BUILD)/demo-backend) \
	  $(PYTEST) -q tests/integration

test: unit integration

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
	clang-format -i $(wildcard src/*.c src/*/*.c src/*/*.h tools/*.c tests/unit/*.c tests/unit/*.h)

format-check:
	clang-format --dry-run -Werror $(wildcard src/*.c src/*/*.c src/*/*.h tools/*.c tests/unit/*.c tests/unit/*.h)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
