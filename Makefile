# dt: the digital-twin batch analyzer.  See README.md.

VERSION = 0.1.0

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/dt
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libcurl jansson libcrypto

# BUILD is where objects and programs go; the sanitizer build lives in
# build/asan so both can exist side by side.
BUILD ?= build
SAN ?=
# The sanitizer build's compiler: clang, whose ASan and UBSan share one
# runtime, so both write their reports where log_path says (with GCC,
# libubsan is a runtime of its own that writes to stderr whatever
# UBSAN_OPTIONS says, and t/run would not see its reports).
SAN_CC ?= clang

CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-format-nonliteral
DT_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -DDT_VERSION=\"$(VERSION)\" \
	-DDT_DATADIR=\"$(DATADIR)\" -Ilib $(WARN) -MMD -MP \
	$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DT_LDLIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lm

ifeq ($(SAN),1)
CFLAGS = -O1 -g -fno-omit-frame-pointer
DT_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined
DT_LDFLAGS += -fsanitize=address,undefined
endif

PROGS = fetch/dt-fetch analyze/dt-analyze store/dt-store report/dt-report
# Scripts that belong beside the programs (installed, and on the tests'
# PATH through build/bin).
SCRIPTS = $(BUILD)/bin/dt-fanout $(BUILD)/bin/dt-entrypoint
BINS = $(addprefix $(BUILD)/bin/,$(notdir $(PROGS)))
# Data files beside the programs, found through dt_data_file(); the
# scripts source log.sh from there, and rank exit statuses by exit.def.
DATA = $(BUILD)/share/dt/prompt.txt $(BUILD)/share/dt/schema.json \
	$(BUILD)/share/dt/log.sh $(BUILD)/share/dt/exit.def

LIB_SRC = $(sort $(wildcard lib/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB = $(BUILD)/lib/libdt.a

UNIT_SRC = $(sort $(wildcard t/unit/*.c))
UNITS = $(UNIT_SRC:t/unit/%.c=$(BUILD)/t/%)

# Each program is every .c file in its folder.
define prog_rule
$(BUILD)/bin/$(notdir $(1)): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(dir $(1))*.c)) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(DT_LDFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(DT_LDLIBS) $$(LDLIBS)
endef

.PHONY: FORCE all units test check test-only asan demo bench deps deps-check install \
	uninstall clean fmt lint fuzz valgrind image push

all: $(BINS) $(SCRIPTS) $(DATA) $(UNITS)

$(BUILD)/share/dt/%: analyze/%
	@mkdir -p $(@D)
	cp $< $@

$(BUILD)/share/dt/log.sh: lib/log.sh
	@mkdir -p $(@D)
	cp $< $@

$(BUILD)/share/dt/exit.def: lib/exit.def
	@mkdir -p $(@D)
	cp $< $@

$(BUILD)/bin/dt-fanout: analyze/dt-fanout
	@mkdir -p $(@D)
	cp $< $@

$(BUILD)/bin/dt-entrypoint: entrypoint.sh
	@mkdir -p $(@D)
	cp $< $@

$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

$(BUILD)/%.o: %.c $(BUILD)/CFLAGS
	@mkdir -p $(@D)
	$(CC) $(DT_CFLAGS) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

# The compiler and its flags as last used in BUILD: every object is
# rebuilt when they change (another CC, SAN=1, CFLAGS=...).
COMPILE = $(CC) $(DT_CFLAGS) $(CFLAGS) $(CPPFLAGS)
$(BUILD)/CFLAGS: FORCE
	@mkdir -p $(@D)
	@c='$(subst ','\'',$(COMPILE))'; \
	[ "$$c" = "$$(cat $@ 2>/dev/null)" ] || printf '%s\n' "$$c" >$@
FORCE:

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/t/%: $(BUILD)/t/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(DT_LDFLAGS) $(LDFLAGS) -o $@ $^ $(DT_LDLIBS) $(LDLIBS)

units: $(UNITS)

# make test: install what is missing, build, run the suite, then build
# with ASan+UBSan and run it again, then fuzz every target briefly.  TESTS narrows it to some files
# (make test TESTS=t/001-lib-ndjson.bats); DEBUGGER wraps every dt
# program (make test DEBUGGER='valgrind -q --error-exitcode=99').
test check: deps-check
	$(MAKE) all
	t/run --build $(BUILD) $(TESTS)
	$(MAKE) asan
	t/run --build $(BUILD)/asan --sanitized $(TESTS)
	$(if $(TESTS),,tools/fuzz -s $(TEST_FUZZ_SECONDS) -j 2)

# Runs the suite once against BUILD without rebuilding the sanitizer build.
test-only: all
	t/run --build $(BUILD) $(TESTS)

asan:
	$(MAKE) BUILD=$(BUILD)/asan SAN=1 CC=$(SAN_CC) all

# libFuzzer targets in fuzz/, each for FUZZ_SECONDS (docs/proof.md).
FUZZ_SECONDS ?= 10
TEST_FUZZ_SECONDS ?= 5
fuzz: deps-check
	tools/fuzz -s $(FUZZ_SECONDS)

# The whole suite once with every program under valgrind memcheck.
valgrind: deps-check all
	tools/valgrind $(TESTS)

demo: deps-check all
	./demo/run

bench: deps-check all
	bench/run

deps:
	@tools/deps install
	@tools/k8s-validate/install
	@tools/supabase-js/install
	@bench/node/install

deps-check:
	@tools/deps check || tools/deps install
	@tools/k8s-validate/install --check 2>/dev/null || tools/k8s-validate/install
	@tools/supabase-js/install --check 2>/dev/null || tools/supabase-js/install
	@bench/node/install --check 2>/dev/null || bench/node/install

# The container image (podman; see docs/deploy.md).
image:
	VERSION=$(VERSION) tools/image build

push:
	VERSION=$(VERSION) tools/image push $(REGISTRY)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	install -m 755 $(BINS) $(SCRIPTS) $(DESTDIR)$(BINDIR)
	install -m 644 analyze/prompt.txt analyze/schema.json lib/log.sh lib/exit.def \
		$(DESTDIR)$(DATADIR)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGS)) dt-fanout dt-entrypoint)
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf $(BUILD)

fmt:
	clang-format -i lib/*.[ch] $(foreach p,$(PROGS),$(dir $(p))*.[ch]) t/unit/*.c

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr --std=c11 -Ilib --include=tools/cppcheck.h \
		lib $(dir $(PROGS))
	shellcheck -x entrypoint.sh analyze/dt-fanout lib/log.sh demo/run t/run t/stack/up t/stack/down tools/deps \
		bench/*.sh bench/common.bash bench/node/install
	clang-tidy --quiet --warnings-as-errors='*' \
		--checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-not-null-terminated-result' \
		--config='{CheckOptions: [{key: bugprone-sizeof-expression.WarnOnSizeOfPointerToAggregate, value: false}]}' \
		lib/*.c $(foreach p,$(PROGS),$(dir $(p))*.c) -- $(DT_CFLAGS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
