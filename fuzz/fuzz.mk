# Fuzzing the protocol core (core/protocol): a makefile fragment the top
# Makefile includes; also usable alone: make -f fuzz/fuzz.mk fuzz.
#
#   make fuzz          builds each target with clang's libFuzzer + ASan + UBSan
#                      and runs each for FUZZ_SECONDS (fuzz/run.sh)
#   make fuzz-replay   builds each target with $(CC), ASan and UBSan and a
#                      standalone driver, and runs it on its seed corpus
#                      (part of `make test`: quick, no libFuzzer needed)
#
# Every variable here starts with FUZZ_ so that none collides with the
# including Makefile's. fuzz/README.md says what each target checks.

# Rules here must not become the including Makefile's default goal.
FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_SECONDS ?= 180
FUZZ_CLANG ?= clang-14
FUZZ_OUT := build/fuzz
FUZZ_PROTO_SRC := $(wildcard core/protocol/*.c)
FUZZ_PROTO_HDR := $(wildcard core/protocol/*.h) fuzz/fuzz_util.h
FUZZ_LIBS := -lcrypto -lz
FUZZ_WARN := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Icore/protocol -Ifuzz

# inflate needs permessage-deflate's pmd.c; without it that target is skipped.
FUZZ_TARGETS := http frame utf8 $(if $(wildcard core/protocol/pmd.c),inflate)

# -max_len per target: a request head up to the server's 8 KiB max_head; a
# few frames around a message of the harness's 4 KiB limit; a text message;
# a compressed message.
FUZZ_MAXLEN_http := 8192
FUZZ_MAXLEN_frame := 8192
FUZZ_MAXLEN_utf8 := 4096
FUZZ_MAXLEN_inflate := 16384

FUZZ_LIBFUZZER_FLAGS := -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_REPLAY_FLAGS := -g -O1 -fno-omit-frame-pointer -Werror \
	-fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: fuzz fuzz-build fuzz-replay fuzz-replay-build fuzz-corpus

# ---- libFuzzer (clang) ----

$(FUZZ_OUT)/bin/fuzz_%: fuzz/fuzz_%.c $(FUZZ_PROTO_SRC) $(FUZZ_PROTO_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CLANG) $(FUZZ_WARN) $(FUZZ_LIBFUZZER_FLAGS) $< $(FUZZ_PROTO_SRC) $(FUZZ_LIBS) -o $@

fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(FUZZ_OUT)/bin/fuzz_$(t))

# One target at a time (they would share the machine's cores otherwise).
fuzz: fuzz-build
	@$(if $(wildcard core/protocol/pmd.c),,echo "fuzz inflate: skipped (core/protocol/pmd.c missing)";) \
	fuzz/run.sh $(FUZZ_OUT) $(FUZZ_SECONDS) \
		$(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAXLEN_$(t)))

# ---- replay of the seed corpora ($(CC), no libFuzzer) ----

$(FUZZ_OUT)/replay/fuzz_%: fuzz/fuzz_%.c fuzz/replay_main.c $(FUZZ_PROTO_SRC) $(FUZZ_PROTO_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_WARN) $(FUZZ_REPLAY_FLAGS) $< fuzz/replay_main.c $(FUZZ_PROTO_SRC) $(FUZZ_LIBS) -o $@

fuzz-replay-build: $(foreach t,$(FUZZ_TARGETS),$(FUZZ_OUT)/replay/fuzz_$(t))

fuzz-replay: fuzz-replay-build
	@$(if $(wildcard core/protocol/pmd.c),,echo "fuzz-replay inflate: skipped (core/protocol/pmd.c missing)";) \
	fail=0; for t in $(FUZZ_TARGETS); do \
		ASAN_OPTIONS=detect_leaks=1 $(FUZZ_OUT)/replay/fuzz_$$t $$t fuzz/corpus/$$t || fail=1; \
	done; exit $$fail

# Regenerates the seed corpora (committed) from fuzz/make_corpus.py.
fuzz-corpus:
	python3 fuzz/make_corpus.py fuzz/corpus

.DEFAULT_GOAL := $(FUZZ_SAVED_GOAL)
