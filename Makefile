# Makefile: builds stockgate, its tests, fuzz targets and benchmarks (one non-recursive GNU Makefile).
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CC       ?= cc
PKGS      = gmime-3.0 libcurl sqlite3 libcjson libxml-2.0 libmicrohttpd
SANITIZE ?=
WERROR   ?=

WARN     = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
           -Wwrite-strings -Wvla -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
SG_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(if $(WERROR),-Werror) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -Isrc
SG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lm
ifneq ($(SANITIZE),)
  SG_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  SG_LDFLAGS += -fsanitize=$(SANITIZE)
  BUILD = build-san
endif

SRC      = $(wildcard src/*.c)
LIBSRC   = $(filter-out src/stockgate.c,$(SRC))
LIBOBJ   = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIBSRC))
UNITSRC  = $(wildcard tests/unit/test-*.c)
UNITBIN  = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNITSRC))
FUZZSRC  = $(wildcard tests/fuzz/fuzz-*.c)
FUZZBIN  = $(patsubst tests/fuzz/fuzz-%.c,$(BUILD)/tests/test-fuzz-%,$(FUZZSRC))
VERSION  = $(shell cat VERSION 2>/dev/null || echo 0.1.0)

all: $(BUILD)/stockgate

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(SG_CFLAGS) $(CPPFLAGS) $(CFLAGS) -DSG_VERSION='"$(VERSION)"' -c -o $@ $<

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(BUILD)/libsg.a: $(LIBOBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/stockgate: $(BUILD)/obj/stockgate.o $(BUILD)/libsg.a
	$(CC) $(CFLAGS) $(SG_LDFLAGS) $(LDFLAGS) -o $@ $^ $(SG_LIBS)

# A unit test links the objects named in tests/unit/test-NAME.deps (one module name a word), so
# that a module can be tested while others are still being written.
.SECONDEXPANSION:
$(BUILD)/tests/test-%: tests/unit/test-%.c tests/unit/tap.h \
    $$(addprefix $(BUILD)/obj/,$$(addsuffix .o,$$(shell cat tests/unit/test-$$*.deps 2>/dev/null))) | $(BUILD)/tests
	$(CC) $(SG_CFLAGS) $(CFLAGS) $(SG_LDFLAGS) -o $@ $(filter %.c %.o,$^) $(SG_LIBS)

# Each fuzz target is also built without libFuzzer, as a test that replays its saved inputs
# (tests/fuzz/replay.c), so `make check` (and its sanitizer build) runs every finding again.
$(BUILD)/tests/test-fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c \
    $$(addprefix $(BUILD)/obj/,$$(addsuffix .o,$$(shell cat tests/fuzz/fuzz-$$*.deps 2>/dev/null))) | $(BUILD)/tests
	$(CC) $(SG_CFLAGS) $(CFLAGS) $(SG_LDFLAGS) -DSG_FUZZ_NAME='"$*"' -o $@ $(filter %.c %.o,$^) $(SG_LIBS)

units: $(UNITBIN) $(FUZZBIN)

deps:
	@build-aux/deps.sh install

deps-check:
	@build-aux/deps.sh check || build-aux/deps.sh install

# The whole suite: unit tests, then end-to-end scenarios against real servers on loopback.
check: deps-check
	@$(MAKE) --no-print-directory all units
	@BUILD=$(BUILD) tests/run.sh

demo: deps-check
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) build-aux/demo.sh

bench: deps-check
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/run.sh

fuzz: deps-check
	@BUILD=$(BUILD) tests/fuzz/run.sh

lint-man:
	mandoc -Tlint -W warning man/stockgate.1 man/stockgate.conf.5

# The units name the binary by its installed path: /usr/local/bin/stockgate in etc/ becomes
# $(PREFIX)/bin/stockgate, so `make install PREFIX=/usr` (the package) gets units that start it.
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
EXAMPLEDIR ?= $(PREFIX)/share/doc/stockgate/examples
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(SYSCONFDIR)/stockgate $(DESTDIR)$(UNITDIR) $(DESTDIR)$(EXAMPLEDIR)
	install -m 755 $(BUILD)/stockgate $(DESTDIR)$(PREFIX)/bin/stockgate
	install -m 644 man/stockgate.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/stockgate.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 etc/stockgate.conf.example $(DESTDIR)$(EXAMPLEDIR)/stockgate.conf
	for u in etc/*.service etc/*.timer; do [ -f "$$u" ] || continue; \
	    sed 's|/usr/local/bin/stockgate|$(PREFIX)/bin/stockgate|g' "$$u" >"$(DESTDIR)$(UNITDIR)/$${u#etc/}.tmp" && \
	    chmod 644 "$(DESTDIR)$(UNITDIR)/$${u#etc/}.tmp" && \
	    mv "$(DESTDIR)$(UNITDIR)/$${u#etc/}.tmp" "$(DESTDIR)$(UNITDIR)/$${u#etc/}" || exit 1; done

# The Debian package (debian/): dpkg-buildpackage writes next to the source tree (..); what it
# writes there is moved to build/. Like check, it installs what it needs first.
deb: deps-check
	dpkg-buildpackage -us -uc -b
	mkdir -p build && mv ../stockgate_$(VERSION)_amd64.deb ../stockgate_$(VERSION)_amd64.buildinfo \
	    ../stockgate_$(VERSION)_amd64.changes build/
	for d in ../stockgate-dbgsym_$(VERSION)_amd64.*deb; do [ -f "$$d" ] && mv "$$d" build/; done; true

# Builds the package and checks it: contents, install, user, modes, units, lintian (root).
check-deb: deb
	@BUILD=$(BUILD) tests/package.sh build/stockgate_$(VERSION)_amd64.deb

clean:
	rm -rf build build-san build-fuzz

.PHONY: all units deps deps-check check demo bench fuzz lint-man install deb check-deb clean
