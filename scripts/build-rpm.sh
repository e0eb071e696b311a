#!/usr/bin/env bash
# make rpm: the binary and source RPMs of a source tarball (default: make
# dist's, the committed tree) with rpmbuild and the tarball's own
# rpm/mod_bbstatus.spec, into build/rpm/RPMS/<arch>/ and build/rpm/SRPMS/.
#
# This is a Debian machine: there is no httpd-devel to define the
# %_httpd_* macros. The module is built with the apxs of httpd 2.4.62, the
# release RHEL 9 ships, built once from ../shared/httpd-src by
# scripts/build-httpd.sh; %_httpd_mmn is what RHEL's httpd.spec provides
# (the module magic number's major and the ISA, 20120211x8664), and
# rpmbuild runs with --nodeps (rpm's database here holds no package). The
# other macros take the spec's fallbacks, RHEL's paths.
# Usage: scripts/build-rpm.sh [tarball]   -> prints the binary RPM's path
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
version=$(sed -n 's/^#define BBS_VERSION "\(.*\)"$/\1/p' "$top/include/bbs_keys.h")
tgz="$(realpath "${1:-$top/build/mod_bbstatus-$version.tar.gz}")"
httpd_version=2.4.62
prefix="$(bash "$top/scripts/build-httpd.sh" "$httpd_version")"
major=$(sed -n 's/^#define MODULE_MAGIC_NUMBER_MAJOR \([0-9]*\).*/\1/p' \
        "$prefix/include/ap_mmn.h")
isa=$(rpm --eval '%{__isa_name}%{__isa_bits}')
topdir="$top/build/rpm"
rm -rf "$topdir"
mkdir -p "$topdir/SOURCES" "$topdir/SPECS"
cp "$tgz" "$topdir/SOURCES/"
tar -xzf "$tgz" -O "mod_bbstatus-$version/rpm/mod_bbstatus.spec" \
    > "$topdir/SPECS/mod_bbstatus.spec"
rpmbuild -ba --nodeps \
    --define "_topdir $topdir" \
    --define "_httpd_apxs $prefix/bin/apxs" \
    --define "_httpd_mmn $major$isa" \
    "$topdir/SPECS/mod_bbstatus.spec" >"$topdir/rpmbuild.log" 2>&1 \
  || { tail -n 40 "$topdir/rpmbuild.log" >&2;
       echo "build-rpm: rpmbuild failed (log: $topdir/rpmbuild.log)" >&2; exit 1; }
arch=$(rpm --eval '%{_arch}')
rpm_file="$topdir/RPMS/$arch/mod_bbstatus-$version-1.$arch.rpm"
srpm="$topdir/SRPMS/mod_bbstatus-$version-1.src.rpm"
for f in "$rpm_file" "$srpm"; do
  [ -f "$f" ] || { echo "build-rpm: rpmbuild made no $f" >&2; exit 1; }
done
echo "$srpm" >&2
echo "$rpm_file"
