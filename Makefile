# herd — build, test, demo. See README.md.
#   make          build build/herd, build/libherd.a, build/libherd.so
#   make test     install what is missing, build, run every test (summary line last)
#   make test-e2e the server load test and the browser test (installs Debian's chromium)
#   make demo     install what is missing, build, run the demo on a random-weight model
#   make asan     the same build with AddressSanitizer + UBSan in build/asan/
#   make fuzz     libFuzzer targets (clang) in build/fuzz/, each run briefly
#   make bench    benchmarks against llama.cpp (not part of make test)

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS_BASE = -std=c11 -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -fPIC -pthread -Iinclude -D_GNU_SOURCE $(SAN)
LDLIBS  = -lmicrohttpd -lcurl -ljansson -lm -lpthread

# per-ISA kernels are compiled with their own flags and picked at run time by CPUID
AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16

LIB_SRC  := $(shell find src -name '*.c' | sort)
CLI_SRC  := $(shell find tools/herd -name '*.c' | sort)
TEST_SRC := $(shell find tests/unit -name 'test_*.c' | sort)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test test-e2e demo asan fuzz bench setup clean format
all: $(BUILD)/herd $(BUILD)/libherd.a $(BUILD)/libherd.so $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC   $<'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/src/kernels/x86/%_avx2.o: src/kernels/x86/%_avx2.c
	@mkdir -p $(dir $@)
	@echo '  CC   $<'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/src/kernels/x86/%_avx512.o: src/kernels/x86/%_avx512.c
	@mkdir -p $(dir $@)
	@echo '  CC   $<'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libherd.a: $(LIB_OBJ)
	@rm -f $@
	@echo '  AR   $@'
	@ar rcs $@ $^

$(BUILD)/libherd.so: $(LIB_OBJ)
	@echo '  LD   $@'
	@$(CC) -shared $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/herd: $(CLI_OBJ) $(BUILD)/libherd.a
	@echo '  LD   $@'
	@$(CC) $(SAN) -o $@ $(CLI_OBJ) $(BUILD)/libherd.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(BUILD)/libherd.a
	@mkdir -p $(dir $@)
	@echo '  TEST $@'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libherd.a $(LDLIBS)

setup:
	@scripts/setup.sh

test: setup
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory asan
	@tests/run.sh

# the load test (32 streaming clients, 60 s, ASan build) and the chat page in headless Chromium
test-e2e: setup
	@scripts/setup.sh e2e
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory asan
	@tests/run.sh e2e

demo: setup
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    build/asan/herd $(TESTS:$(BUILD)/%=build/asan/%)

FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzzlib CC=clang OPT=-O1 \
	    SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer" build/fuzzlib/libherd.a
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	    clang -std=c11 -g -O1 -Iinclude -Isrc -D_GNU_SOURCE -fsanitize=address,undefined,fuzzer \
	      -o build/fuzz/$$n $$f build/fuzzlib/libherd.a $(LDLIBS) || exit 1; done
	@fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	@bench/compare

format:
	clang-format -i $$(find src include tools tests/unit fuzz -name '*.[ch]')

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
