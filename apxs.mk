# Building and installing the module with apxs.
# Included by the top-level Makefile; usable alone with `make -f apxs.mk`.

APXS ?= apxs
PKG_CONFIG ?= pkg-config

JANSSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)

APXS_LIBEXECDIR := $(shell $(APXS) -q LIBEXECDIR 2>/dev/null)

# mod_bbstatus uses mod_proxy's functions and data. Naming mod_proxy.so as
# a needed library lets the dynamic loader bring it in first, so the
# module loads whatever order LoadModule lines (or a2enmod's alphabetical
# mods-enabled/*.load) put it in; httpd's own LoadModule of mod_proxy then
# finds the same, already loaded, object.
PROXY_SO := $(APXS_LIBEXECDIR)/mod_proxy.so
# An RPM needs neither that entry nor the RUNPATH that finds it (packaging
# guidelines forbid a RUNPATH outside the system's library directories):
# RHEL's conf.modules.d loads 00-proxy.conf before 10-bbstatus.conf, so
# mod_proxy's symbols are there when httpd loads the module. LINK_PROXY=0.
LINK_PROXY ?= 1
ifeq ($(LINK_PROXY),1)
PROXY_LINK = -Wl,-Wl$(comma)-rpath$(comma)$(APXS_LIBEXECDIR) -Wl,-Wl$(comma)$(PROXY_SO)
endif

MODULE := mod_bbstatus
MODULE_SO := .libs/$(MODULE).so
MODULE_SRC := $(MODULE).c $(sort $(wildcard src/*.c))
MODULE_HDR := $(wildcard include/*.h src/*.h)

# Warnings are errors in CI (WERROR=1), so a new warning cannot land.
BBS_WARN := -Wc,-std=c99 -Wc,-Wall -Wc,-Wextra
ifeq ($(WERROR),1)
BBS_WARN += -Wc,-Werror
endif

# Flags on top of those apxs compiles and links with (a package build passes
# dpkg-buildflags' hardening flags here).
APXS_EXTRA_CFLAGS ?=
APXS_EXTRA_LDFLAGS ?=

# What the module is built with, kept beside it: a build with other flags
# (WERROR=1 after a plain build, another apxs, a package's hardening flags)
# compiles again instead of reusing an object made without them.
MODULE_FLAGS = $(APXS) $(BBS_WARN) $(APXS_EXTRA_CFLAGS) \
    $(APXS_EXTRA_LDFLAGS) $(PROXY_LINK) $(JANSSON_CFLAGS) $(JANSSON_LIBS)

# $(call write-flags,TEXT): the recipe of such a record; it rewrites the
# file, and so makes what depends on it, only when TEXT changed.
write-flags = @printf '%s\n' '$(1)' | cmp -s - $@ || printf '%s\n' '$(1)' > $@

$(MODULE).flags: FORCE
	$(call write-flags,$(MODULE_FLAGS))

.PHONY: FORCE
FORCE:

$(MODULE_SO): $(MODULE_SRC) $(MODULE_HDR) $(MODULE).map $(MODULE).flags
	$(APXS) -c -o $(MODULE).la -Iinclude -Isrc $(BBS_WARN) \
	    $(addprefix -Wc$(comma),$(APXS_EXTRA_CFLAGS)) \
	    $(addprefix -Wl$(comma),$(APXS_EXTRA_LDFLAGS)) \
	    -Wl,-Wl$(comma)--version-script=$(CURDIR)/$(MODULE).map \
	    $(addprefix -Wc$(comma),$(JANSSON_CFLAGS)) \
	    $(PROXY_LINK) \
	    $(MODULE_SRC) $(JANSSON_LIBS)

comma := ,

.PHONY: apxs-install apxs-clean
apxs-install: $(MODULE_SO)
	$(APXS) -i -S LIBEXECDIR=$(DESTDIR)$$($(APXS) -q LIBEXECDIR) -n bbstatus $(MODULE).la

apxs-clean:
	rm -rf .libs src/.libs *.la *.lo *.slo *.o src/*.la src/*.lo src/*.slo src/*.o \
	    $(MODULE).flags
