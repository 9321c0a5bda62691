# herd — build, test, demo. See README.md.
#   make          build build/herd, build/libherd.a, build/libherd.so, the man pages, bash completion
#   make test     install what is missing, build, run every test (summary line last)
#   make test-e2e the server load test and the browser test (installs Debian's chromium)
#   make demo     install what is missing, build, run the demo on a random-weight model
#   make asan     the same build with AddressSanitizer + UBSan in build/asan/
#   make fuzz     libFuzzer targets (clang) in build/fuzz/, each run briefly
#   make bench    benchmarks against llama.cpp (not part of make test)
#   make install  PREFIX=/usr/local DESTDIR= (BINDIR LIBDIR INCLUDEDIR MANDIR ... override), make uninstall
#   make deb      a Debian package in build/deb/ (dpkg-deb)
#   make abi-update  rewrite tests/data/abi/libherd.symbols after an API change (and bump VERSION)

CC      ?= cc
BUILD   ?= build
# parallel compile jobs of make test / test-e2e / demo / fuzz (their builds alone: the tests run one at a
# time): the CPUs this process may use (nproc honours the affinity mask), e.g. make test JOBS=1
JOBS    ?= $(shell nproc 2>/dev/null || echo 1)
OPT     ?= -O2
SAN     ?=
# -fvisibility=hidden: libherd.so exports exactly what include/herd.h declares (its visibility pragma)
CFLAGS_BASE = -std=c11 -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -fPIC -pthread -fvisibility=hidden -Iinclude -D_GNU_SOURCE $(SAN)
LDLIBS  = -lmicrohttpd -lcurl -ljansson $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3) -lm -lpthread

# The version lives in VERSION (semantic versioning; the soname carries MAJOR). A build from a git
# checkout also records `git describe` (herd --version, herd_version_git()); outside one — a tarball,
# or a copy inside another repository — it is empty.
VERSION       := $(shell cat VERSION)
VERSION_MAJOR := $(firstword $(subst ., ,$(VERSION)))
SONAME        := libherd.so.$(VERSION_MAJOR)
GIT_DESCRIBE  := $(shell [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$$(pwd -P)" ] && \
                   git describe --always --dirty --tags 2>/dev/null)

# install layout (GNU conventions; each can be overridden on the command line)
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
DATAROOTDIR  ?= $(PREFIX)/share
MANDIR       ?= $(DATAROOTDIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR  ?= $(DATAROOTDIR)/bash-completion/completions
INSTALL      ?= install

# per-ISA kernels are compiled with their own flags and picked at run time by CPUID
AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
AMX_FLAGS    = $(AVX512_FLAGS) -mamx-tile -mamx-int8 -mamx-bf16

LIB_SRC  := $(shell find src -name '*.c' -not -path 'src/dist/*' | sort)
CLI_SRC  := $(shell find tools/herd -name '*.c' | sort)
TEST_SRC := $(shell find tests/unit -name 'test_*.c' | sort)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/cli_help.o
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# the help texts: one file per command (tools/gen_help.sh says how to add one)
HELP_TXT := $(wildcard tools/herd/help/*.txt)
HELP_CMD := $(filter-out herd,$(HELP_TXT:tools/herd/help/%.txt=%))
MAN_PAGES := $(BUILD)/man/herd.1 $(HELP_CMD:%=$(BUILD)/man/herd-%.1) $(BUILD)/man/libherd.3

.PHONY: all test test-e2e demo asan fuzz bench setup clean format man install uninstall deb abi-update FORCE
all: $(BUILD)/herd $(BUILD)/libherd.a $(BUILD)/libherd.so $(TESTS) man $(BUILD)/herd.bash

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

# AMX kernels (AVX-512 + AMX-TILE/INT8/BF16; called only when the CPU has AMX and the OS grants the tiles:
# kernels_amx_active(), gemm_bf16_amx_ready())
$(BUILD)/obj/src/kernels/x86/%_amx.o: src/kernels/x86/%_amx.c
	@mkdir -p $(dir $@)
	@echo '  CC   $<'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AMX_FLAGS) -MMD -MP -c $< -o $@

# a model family's own AVX-512 file (picked at run time by kernels_active_isa())
$(BUILD)/obj/src/deberta/%_avx512.o: src/deberta/%_avx512.c
	@mkdir -p $(dir $@)
	@echo '  CC   $<'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libherd.a: $(LIB_OBJ)
	@rm -f $@
	@echo '  AR   $@'
	@ar rcs $@ $^

# libherd.so.X.Y.Z with soname libherd.so.X; libherd.so.X and libherd.so are links to it, as installed
$(BUILD)/libherd.so.$(VERSION): $(LIB_OBJ)
	@echo '  LD   $@'
	@$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) -Wl,-z,defs -o $@ $^ $(LDLIBS)

$(BUILD)/libherd.so: $(BUILD)/libherd.so.$(VERSION)
	@ln -sf libherd.so.$(VERSION) $(BUILD)/$(SONAME)
	@ln -sf libherd.so.$(VERSION) $@

# objects depend on the flags they were compiled with (a change of flags, such as -fvisibility, rebuilds)
$(BUILD)/cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX2_FLAGS) $(AMX_FLAGS)' >$@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
$(LIB_OBJ) $(CLI_OBJ): $(BUILD)/cflags

# version.h is rewritten only when the version or the git describe changed (so a commit rebuilds
# one object, and an unchanged tree nothing)
$(BUILD)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define HERD_VERSION_STRING "%s"\n#define HERD_GIT_DESCRIBE "%s"\n' '$(VERSION)' '$(GIT_DESCRIBE)' >$@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
$(BUILD)/obj/src/api/version.o: $(BUILD)/gen/version.h
$(BUILD)/obj/src/api/version.o: private CFLAGS_BASE += -I$(BUILD)/gen
FORCE:

$(BUILD)/gen/cli_help.c: $(HELP_TXT) tools/gen_help.sh tools/herd/main.c
	@mkdir -p $(dir $@)
	@echo '  GEN  $@'
	@tools/gen_help.sh c >$@.tmp && mv -f $@.tmp $@

$(BUILD)/obj/gen/cli_help.o: $(BUILD)/gen/cli_help.c tools/herd/cli.h
	@mkdir -p $(dir $@)
	@echo '  CC   $<'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) -Itools/herd -c $< -o $@

man: $(MAN_PAGES)
$(BUILD)/man/herd.1: $(HELP_TXT) tools/gen_help.sh tools/herd/main.c VERSION
	@mkdir -p $(dir $@)
	@echo '  GEN  $@'
	@tools/gen_help.sh man-main $(VERSION) >$@.tmp && mv -f $@.tmp $@
$(BUILD)/man/herd-%.1: tools/herd/help/%.txt tools/gen_help.sh VERSION
	@mkdir -p $(dir $@)
	@echo '  GEN  $@'
	@tools/gen_help.sh man $* $(VERSION) >$@.tmp && mv -f $@.tmp $@
$(BUILD)/man/libherd.3: docs/man/libherd.3.in include/herd.h tools/gen_help.sh VERSION
	@mkdir -p $(dir $@)
	@echo '  GEN  $@'
	@tools/gen_help.sh libherd $(VERSION) >$@.tmp && mv -f $@.tmp $@
$(BUILD)/herd.bash: $(HELP_TXT) tools/gen_help.sh tools/herd/main.c
	@mkdir -p $(dir $@)
	@echo '  GEN  $@'
	@tools/gen_help.sh completion >$@.tmp && mv -f $@.tmp $@

# herd.pc is written at install time: its paths are the install's
$(BUILD)/herd.pc: FORCE
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' herd.pc.in >$@

$(BUILD)/herd: $(CLI_OBJ) $(BUILD)/libherd.a
	@echo '  LD   $@'
	@$(CC) $(SAN) -o $@ $(CLI_OBJ) $(BUILD)/libherd.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(BUILD)/libherd.a
	@mkdir -p $(dir $@)
	@echo '  TEST $@'
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libherd.a $(LDLIBS)

# build/herd-mpi: herd with tensor parallelism over MPI (src/dist/, docs/SCALING.md), built when Open MPI's
# mpicc is installed (libopenmpi-dev); build/herd and libherd never link MPI
MPICC    ?= $(shell command -v mpicc 2>/dev/null)
DIST_OBJ := $(patsubst %.c,$(BUILD)/obj-mpi/%.o,$(shell find src/dist -name '*.c' | sort)) $(BUILD)/obj-mpi/tools/herd/main.o
ifneq ($(MPICC),)
all: $(BUILD)/herd-mpi
endif
$(BUILD)/obj-mpi/%.o: %.c $(BUILD)/cflags
	@mkdir -p $(dir $@)
	@echo '  MPICC $<'
	@$(MPICC) $(CFLAGS_BASE) $(CFLAGS) -DHERD_MPI -MMD -MP -c $< -o $@
$(BUILD)/herd-mpi: $(DIST_OBJ) $(filter-out $(BUILD)/obj/tools/herd/main.o,$(CLI_OBJ)) $(BUILD)/libherd.a
	@echo '  LD   $@'
	@$(MPICC) $(SAN) -o $@ $^ $(LDLIBS)
-include $(DIST_OBJ:.o=.d)

setup:
	@scripts/setup.sh

test: setup
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) asan
	@tests/run.sh

# the load test (32 streaming clients, 60 s, ASan build) and the chat page in headless Chromium
test-e2e: setup
	@scripts/setup.sh e2e
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) asan
	@tests/run.sh e2e

demo: setup
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/demo.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    build/asan/herd $(TESTS:$(BUILD)/%=build/asan/%)

FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
fuzz:
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/fuzzlib CC=clang OPT=-O1 \
	    SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer" build/fuzzlib/libherd.a
	@mkdir -p build/fuzz
	@printf '%s\n' $(FUZZ_SRC) | xargs -P $(JOBS) -I{} sh -c 'n=$$(basename {} .c); \
	    clang -std=c11 -g -O1 -Iinclude -Isrc -D_GNU_SOURCE -fsanitize=address,undefined,fuzzer \
	      -o build/fuzz/$$n {} build/fuzzlib/libherd.a $(LDLIBS) || exit 255'
	@fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	@bench/compare

# what make install writes, relative to DESTDIR (make uninstall removes exactly these)
INSTALLED = $(BINDIR)/herd $(INCLUDEDIR)/herd.h $(LIBDIR)/libherd.a $(LIBDIR)/libherd.so.$(VERSION) \
            $(LIBDIR)/$(SONAME) $(LIBDIR)/libherd.so $(PKGCONFIGDIR)/herd.pc $(BASHCOMPDIR)/herd \
            $(MANDIR)/man1/herd.1 $(HELP_CMD:%=$(MANDIR)/man1/herd-%.1) $(MANDIR)/man3/libherd.3

install: $(BUILD)/herd $(BUILD)/libherd.a $(BUILD)/libherd.so man $(BUILD)/herd.bash $(BUILD)/herd.pc
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	$(INSTALL) -m 755 $(BUILD)/herd $(DESTDIR)$(BINDIR)/herd
	$(INSTALL) -m 644 include/herd.h $(DESTDIR)$(INCLUDEDIR)/herd.h
	$(INSTALL) -m 644 $(BUILD)/libherd.a $(DESTDIR)$(LIBDIR)/libherd.a
	$(INSTALL) -m 755 $(BUILD)/libherd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libherd.so.$(VERSION)
	ln -sf libherd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libherd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libherd.so
	$(INSTALL) -m 644 $(BUILD)/herd.pc $(DESTDIR)$(PKGCONFIGDIR)/herd.pc
	$(INSTALL) -m 644 $(BUILD)/herd.bash $(DESTDIR)$(BASHCOMPDIR)/herd
	$(INSTALL) -m 644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(BUILD)/man/libherd.3 $(DESTDIR)$(MANDIR)/man3/libherd.3

# removes the files, not the directories (which may be shared: /usr/local/lib/pkgconfig, ...)
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# A Debian package of the whole install under /usr (the program, the library with its header,
# archive and herd.pc, man pages, completion). The runtime dependencies are the libraries libherd.so
# and herd link (checked in tests/conformance/deb.sh), libc6 at least the newest GLIBC_ symbol
# version they use. Built with dpkg-deb alone: no debian/ directory, no fakeroot.
DEB_ARCH  = $(shell dpkg --print-architecture)
DEB_MULTI = $(shell $(CC) -print-multiarch)
DEB_ROOT  = build/deb/root
DEB_FILE  = build/deb/herd_$(VERSION)_$(DEB_ARCH).deb
DEB_DEPS  = libjansson4, libcurl4, libmicrohttpd12, libsqlite3-0
deb:
	@[ "$(BUILD)" = build ] || { echo "make deb builds from build/, not BUILD=$(BUILD)"; exit 1; }
	@$(MAKE) --no-print-directory all
	rm -rf $(DEB_ROOT) && mkdir -p $(DEB_ROOT)/DEBIAN
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr LIBDIR=/usr/lib/$(DEB_MULTI) \
	    BASHCOMPDIR=/usr/share/bash-completion/completions >/dev/null
	gzip -9n $(DEB_ROOT)/usr/share/man/man1/*.1 $(DEB_ROOT)/usr/share/man/man3/*.3
	@glibc=$$(objdump -T build/herd build/libherd.so.$(VERSION) | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | \
	    sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1); \
	{ echo "Package: herd"; echo "Version: $(VERSION)"; echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: herd developers <herd@localhost>"; echo "Section: misc"; echo "Priority: optional"; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)"; \
	  echo "Depends: libc6 (>= $$glibc), $(DEB_DEPS)"; echo "Suggests: python3"; \
	  echo "Description: the Llama 3.1 system in C (herd $(VERSION)$(if $(GIT_DESCRIBE), git $(GIT_DESCRIBE)))"; \
	  echo " herd runs Llama 3.1 / 3.2 models on the CPU: tokenize, complete, chat with tool use, serve"; \
	  echo " an OpenAI- and Llama-Stack-compatible HTTP API, convert and quantize. Includes libherd"; \
	  echo " (shared and static, herd.h, herd.pc), man pages and bash completion."; \
	} >$(DEB_ROOT)/DEBIAN/control
	echo 'activate-noawait ldconfig' >$(DEB_ROOT)/DEBIAN/triggers
	cd $(DEB_ROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB_FILE)
	@echo "built $(DEB_FILE)"

# The exported symbols of libherd.so, which tests/conformance/abi.sh compares with this list
abi-update: $(BUILD)/libherd.so
	@mkdir -p tests/data/abi
	tools/abi_symbols.sh $(BUILD)/libherd.so >tests/data/abi/libherd.symbols
	@echo "wrote tests/data/abi/libherd.symbols ($$(wc -l <tests/data/abi/libherd.symbols) symbols);" \
	      "now bump VERSION: while 0.x MINOR for any API change, from 1.0 MINOR for additions and MAJOR (a new soname) for removals or changed signatures"

format:
	clang-format -i $$(find src include tools tests/unit fuzz -name '*.[ch]')

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
