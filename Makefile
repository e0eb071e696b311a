# mod_bbstatus
#   make            build .libs/mod_bbstatus.so with apxs
#   make check      install missing Debian packages, build, run every test
#   make demo       the module in front of simulated Bitbucket nodes
#   make install    install into the system httpd (apxs -i, Debian conf)
#   make dist       build/mod_bbstatus-<version>.tar.gz of the committed tree
#   make deb        build/libapache2-mod-bbstatus_<version>-<rev>_<arch>.deb
#   make rpm        build/rpm/RPMS/<arch>/mod_bbstatus-<version>-1.<arch>.rpm
# See README for the rest.

.DEFAULT_GOAL := all
include apxs.mk

PYTHON ?= /usr/bin/python3
PYTEST ?= $(PYTHON) -m pytest
CC ?= cc

APR_CFLAGS := $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null)
APR_LIBS := $(shell apr-1-config --link-ld 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
CORE_CFLAGS := -std=c99 -Wall -Wextra -g -O2 -Iinclude $(APR_CFLAGS) $(JANSSON_CFLAGS)
ifeq ($(WERROR),1)
CORE_CFLAGS += -Werror
endif
CORE_SRC := $(wildcard src/bbs_*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := tests/unit/bbs_unit

.PHONY: all deps check check-unit check-integration check-guards bench \
        bench-decide demo demo-stop install uninstall clean fuzz \
        check-sanitize bench soak check-valgrind check-compat dist deb \
        check-packages check-rules rpm

all: $(MODULE_SO)

deps:
	@bash scripts/deps.sh check

$(UNIT_BIN).flags: FORCE
	$(call write-flags,$(CC) $(CORE_CFLAGS) $(CHECK_CFLAGS) $(APR_LIBS) \
	    $(JANSSON_LIBS) $(CHECK_LIBS))

$(UNIT_BIN): $(UNIT_SRC) $(CORE_SRC) $(wildcard include/*.h tests/unit/*.h) \
    $(UNIT_BIN).flags
	$(CC) $(CORE_CFLAGS) $(CHECK_CFLAGS) -o $@ $(UNIT_SRC) $(CORE_SRC) \
	    $(APR_LIBS) $(JANSSON_LIBS) $(CHECK_LIBS)

check-unit: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=60 ./$(UNIT_BIN) tests/unit/cases

check-guards:
	@bash scripts/check-guards.sh

# The alerting rules of contrib/prometheus alone: promtool check and test
# rules, and their metric names and labels against a live scrape (part of
# check-integration).
check-rules: $(MODULE_SO)
	$(PYTEST) -q -rs -p no:cacheprovider tests/integration/test_270_alert_rules.py

# The ten slowest tests are listed at the end: the suite is to stay well
# under 15 minutes on a 2-core machine.
check-integration: $(MODULE_SO)
	$(PYTEST) -q -rs -p no:cacheprovider --durations=10 tests/nodes tests/integration

# Unit tests first: they are fast and say the most when the core breaks.
check: deps
	$(MAKE) all check-guards check-unit
	$(MAKE) check-integration

bench/bench_decide: bench/bench_decide.c $(CORE_SRC) $(wildcard include/*.h)
	$(CC) $(CORE_CFLAGS) -O2 -o $@ bench/bench_decide.c $(CORE_SRC) \
	    $(APR_LIBS) $(JANSSON_LIBS)

bench-decide: bench/bench_decide
	./bench/bench_decide 2

clean: apxs-clean
	rm -f $(UNIT_BIN) $(UNIT_BIN).flags bench/bench_decide

# ---- other httpd releases ------------------------------------------------------
# Builds httpd 2.4.37, 2.4.52, 2.4.58 and 2.4.62 from ../shared/httpd-src
# (checksums verified, nothing downloaded) into build/httpd/ once, the
# module against each, and runs the integration suite with each; about 5
# minutes per httpd build the first time, then ~5 minutes per version.
# COMPAT_VERSIONS="2.4.52 2.4.62" for a subset.
check-compat:
	@bash scripts/deps.sh compat
	bash scripts/check-compat.sh

# ---- install ---------------------------------------------------------------
# The module goes where apxs says modules go; on a Debian layout the .load
# and .conf go to mods-available so `a2enmod bbstatus` works. DESTDIR
# stages everything for packaging.
DEBIAN_MODS := /etc/apache2/mods-available

install: $(MODULE_SO)
	mkdir -p $(DESTDIR)$(APXS_LIBEXECDIR)
	$(APXS) -i -S LIBEXECDIR=$(DESTDIR)$(APXS_LIBEXECDIR) -n bbstatus $(MODULE).la
	@if [ -d $(DEBIAN_MODS) ]; then \
	    mkdir -p $(DESTDIR)$(DEBIAN_MODS) && \
	    sed 's|/usr/lib/apache2/modules|$(APXS_LIBEXECDIR)|' conf.d/bbstatus.load \
	        > $(DESTDIR)$(DEBIAN_MODS)/bbstatus.load && \
	    install -m 644 conf.d/bbstatus.conf $(DESTDIR)$(DEBIAN_MODS)/bbstatus.conf && \
	    echo "Installed. Enable it with: a2enmod bbstatus status && systemctl restart apache2"; \
	else \
	    echo "Installed. Add to httpd.conf, after mod_proxy's LoadModule:"; \
	    echo "    LoadModule bbstatus_module $(APXS_LIBEXECDIR)/mod_bbstatus.so"; \
	    echo "and see conf.d/bbstatus.conf for the settings."; \
	fi

uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -e /etc/apache2/mods-enabled/bbstatus.load ] \
	    && command -v a2dismod >/dev/null; then a2dismod -q bbstatus; fi
	rm -f $(DESTDIR)$(APXS_LIBEXECDIR)/mod_bbstatus.so \
	      $(DESTDIR)$(DEBIAN_MODS)/bbstatus.load \
	      $(DESTDIR)$(DEBIAN_MODS)/bbstatus.conf

# ---- release artefacts ---------------------------------------------------------
# The version is defined once, by BBS_VERSION in include/bbs_keys.h (the
# module reports it); CHANGES and debian/changelog must agree with it
# (scripts/check-guards.sh).
VERSION := $(shell sed -n 's/^\#define BBS_VERSION "\(.*\)"/\1/p' include/bbs_keys.h)
DIST_NAME := $(MODULE)-$(VERSION)
DIST_TGZ := build/$(DIST_NAME).tar.gz
DEB_DIR := build/deb

# The committed tree of HEAD, minus CI plumbing, so that every target works
# from the tarball too. Reproducible: git archive writes entries in git's
# sorted tree order, owner and group 0/root, every mtime the commit's date;
# umask and line endings are fixed here so local git settings cannot
# change a byte; gzip -n stores no name or time.
dist:
	@git rev-parse --verify -q HEAD >/dev/null || \
	    { echo "make dist needs a git checkout" >&2; exit 1; }
	@git diff --quiet HEAD -- 2>/dev/null || \
	    echo "make dist: uncommitted changes are not in the tarball" >&2
	@mkdir -p build
	git -c tar.umask=0022 -c core.autocrlf=false archive --format=tar \
	    --prefix=$(DIST_NAME)/ HEAD -- . ':(exclude).ci' \
	    ':(exclude).gitignore' ':(exclude).gitattributes' \
	    | gzip -n -9 > $(DIST_TGZ).tmp
	mv $(DIST_TGZ).tmp $(DIST_TGZ)
	@echo "$(DIST_TGZ)"

# Debian's own tooling (debian/, dh with dh_apache2) on the dist tarball,
# unpacked under build/deb, which also gets the .changes and .buildinfo.
deb:
	@bash scripts/deps.sh deb
	@$(MAKE) --no-print-directory dist
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)
	cp $(DIST_TGZ) $(DEB_DIR)/libapache2-mod-bbstatus_$(VERSION).orig.tar.gz
	tar -xzf $(DIST_TGZ) -C $(DEB_DIR)
	cd $(DEB_DIR)/$(DIST_NAME) && dpkg-buildpackage -us -uc -b
	@ls $(DEB_DIR)/*.deb

# The RPM for RHEL 9 and its rebuilds, with rpmbuild and
# rpm/mod_bbstatus.spec on make dist's tarball, against httpd 2.4.62 built
# from ../shared/httpd-src (scripts/build-rpm.sh says how; about 5 minutes
# the first time, for that httpd): build/rpm/RPMS/<arch>/ and
# build/rpm/SRPMS/. Then rpmlint (rpm/mod_bbstatus.rpmlintrc says why each
# filter is there) and the package's files.
rpm:
	@bash scripts/deps.sh deb
	@bash scripts/deps.sh compat
	@$(MAKE) --no-print-directory dist
	bash scripts/build-rpm.sh $(DIST_TGZ)
	rpmlint -r rpm/mod_bbstatus.rpmlintrc build/rpm/RPMS/*/*.rpm \
	    build/rpm/SRPMS/*.src.rpm build/rpm/SPECS/mod_bbstatus.spec
	rpm -qlvp build/rpm/RPMS/*/$(DIST_NAME)-1.*.rpm

# Builds the packages from a clean clone, lints them; installs and removes
# the .deb on this machine (root only; never starts apache2) and the RPM in
# a directory of its own, where httpd 2.4.62 runs with it in a RHEL
# layout; and checks make dist; about 45 seconds once httpd 2.4.62 is
# built. make check runs only the make dist part.
check-packages:
	@bash scripts/deps.sh deb
	@bash scripts/deps.sh compat
	BBS_PACKAGE_TESTS=1 $(PYTEST) -q -rs -p no:cacheprovider \
	    tests/integration/test_650_packages.py \
	    tests/integration/test_660_rpm.py

# ---- demo --------------------------------------------------------------------
demo:
	@bash scripts/deps.sh demo
	@$(MAKE) --no-print-directory all >/dev/null
	$(PYTHON) scripts/demo.py $(if $(DEMO_PORT),--port $(DEMO_PORT))

demo-stop:
	$(PYTHON) scripts/demo.py --stop

# ---- fuzzing and sanitizers ----------------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_POLICY_SECONDS ?= 20
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

build/fuzz_decide: tests/fuzz/fuzz_decide.c $(CORE_SRC) $(wildcard include/*.h)
	@mkdir -p build
	clang -g -O1 -std=c99 -Iinclude $(APR_CFLAGS) $(JANSSON_CFLAGS) \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ tests/fuzz/fuzz_decide.c $(CORE_SRC) $(APR_LIBS) $(JANSSON_LIBS)

build/fuzz_policy: tests/fuzz/fuzz_policy.c $(CORE_SRC) $(wildcard include/*.h)
	@mkdir -p build
	clang -g -O1 -std=c99 -Iinclude $(APR_CFLAGS) $(JANSSON_CFLAGS) \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ tests/fuzz/fuzz_policy.c $(CORE_SRC) $(APR_LIBS) $(JANSSON_LIBS)

# Runs the decision fuzzer for FUZZ_SECONDS on a copy of the seed corpus
# (new inputs it finds stay in build/fuzz-corpus, the seeds in git
# unchanged), then the member rules' fuzzer for FUZZ_POLICY_SECONDS.
fuzz:
	@bash scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory build/fuzz_decide
	@mkdir -p build/fuzz-corpus
	cp -n tests/fuzz/corpus/* build/fuzz-corpus/ 2>/dev/null || true
	@# a finding fails the target (the pipe to tail used to hide it)
	./build/fuzz_decide -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    build/fuzz-corpus > build/fuzz-decide.log 2>&1; rc=$$?; \
	    tail -n 15 build/fuzz-decide.log; exit $$rc
	@$(MAKE) --no-print-directory build/fuzz_policy
	@mkdir -p build/fuzz-policy-corpus
	./build/fuzz_policy -max_total_time=$(FUZZ_POLICY_SECONDS) -max_len=4096 \
	    -timeout=10 -print_final_stats=1 build/fuzz-policy-corpus \
	    > build/fuzz-policy.log 2>&1; rc=$$?; \
	    tail -n 15 build/fuzz-policy.log; exit $$rc

build/bbs_unit_san: $(UNIT_SRC) $(CORE_SRC) $(wildcard include/*.h tests/unit/*.h)
	@mkdir -p build
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) $(CHECK_CFLAGS) -o $@ $(UNIT_SRC) \
	    $(CORE_SRC) $(APR_LIBS) $(JANSSON_LIBS) $(CHECK_LIBS)

# The unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
check-sanitize:
	@bash scripts/deps.sh check
	@$(MAKE) --no-print-directory build/bbs_unit_san
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    CK_DEFAULT_TIMEOUT=120 ./build/bbs_unit_san tests/unit/cases

# ---- benchmarks ----------------------------------------------------------------
# Proxy-level benchmarks against stock mod_proxy_hcheck (bench/README.md):
# about 20 minutes; BENCH_ARGS=--quick for a short run, --scenario NAME for one.
bench:
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	$(PYTHON) bench/run.py --out BENCHMARKS.md $(BENCH_ARGS)

# ---- robustness ----------------------------------------------------------------
SOAK_CHECKS ?= 100000
VALGRIND_SECONDS ?= 60

# 50 members every 100 ms until SOAK_CHECKS checks ran (about 3.5 minutes);
# the result goes to build/soak-result.json.
soak: $(MODULE_SO)
	$(PYTHON) tests/robustness/soak.py --checks $(SOAK_CHECKS)

# apache2 -X under valgrind memcheck against the hostile nodes (about two
# minutes); the report goes to build/valgrind/.
check-valgrind: $(MODULE_SO)
	@bash scripts/deps.sh valgrind
	$(PYTHON) tests/robustness/valgrind_run.py --seconds $(VALGRIND_SECONDS)
