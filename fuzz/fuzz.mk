# fuzz/fuzz.mk: builds the libFuzzer targets (run by tools/fuzz).
#
#   make -f fuzz/fuzz.mk [FUZZ_BUILD=build/fuzz]
#
# Every fuzz/NAME.c is one target, build/fuzz/NAME, linked with the
# stage files its "fuzz-sources:" comment line names and with lib/*.c
# as an archive: a target that #includes a lib file to reach its static
# functions defines that file's symbols itself, and then the archive's
# copy is not linked in.  Everything is built with clang, ASan, UBSan
# and libFuzzer's coverage.

FUZZ_BUILD ?= build/fuzz
FUZZ_CC ?= clang
PKG_CONFIG ?= pkg-config
PKGS = libcurl jansson libcrypto
VERSION := $(shell sed -n 's/^VERSION *= *//p' Makefile)

SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE \
	-DDT_VERSION=\"$(VERSION)\" -DDT_DATADIR=\"/usr/local/share/dt\" \
	-Ilib -Ifuzz -g -O1 -fno-omit-frame-pointer $(SAN) -fsanitize=fuzzer-no-link \
	-Wall -Wextra -Werror -Wno-unused-command-line-argument -MMD -MP \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
FUZZ_LDLIBS = $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm

TARGETS = $(sort $(basename $(notdir $(wildcard fuzz/*.c))))
LIB_OBJ = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(sort $(wildcard lib/*.c)))
LIB = $(FUZZ_BUILD)/libdt-fuzz.a

# sources NAME: the stage files fuzz/NAME.c asks for.
sources = $(shell sed -n 's/^.*fuzz-sources:\(.*\)$$/\1/p' fuzz/$(1).c)

.PHONY: all
all: $(addprefix $(FUZZ_BUILD)/,$(TARGETS))

define target_rule
$(FUZZ_BUILD)/$(1): $(FUZZ_BUILD)/fuzz/$(1).o \
    $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(call sources,$(1))) $(LIB)
	$$(FUZZ_CC) -fsanitize=fuzzer $(SAN) -o $$@ $$^ $(FUZZ_LDLIBS)
endef
$(foreach t,$(TARGETS),$(eval $(call target_rule,$(t))))

$(LIB): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# A stage file with a main() gets it renamed, so that libFuzzer's main
# is the one that runs.
$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(if $(filter fuzz/%,$<),,-Dmain=dt_stage_main) -c -o $@ $<

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
