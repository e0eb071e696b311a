#!/usr/bin/env bash
# Builds one httpd release from ../shared/httpd-src (or HTTPD_SRC) into a
# cache under build/httpd/<version>, once. Never downloads anything: the
# tarball's checksum must match SHA256SUMS beside it.
# Usage: scripts/build-httpd.sh 2.4.52   -> prints the install prefix
set -euo pipefail
ver="$1"
top="$(cd "$(dirname "$0")/.." && pwd)"
src_dir="${HTTPD_SRC:-$top/../shared/httpd-src}"
cache="$top/build/httpd"
prefix="$cache/$ver"
if [ -x "$prefix/bin/apxs" ] && [ -f "$prefix/.complete" ]; then
  echo "$prefix"; exit 0
fi
tarball="$src_dir/httpd-$ver.tar.gz"
[ -f "$tarball" ] || { echo "build-httpd: no $tarball" >&2; exit 1; }
( cd "$src_dir" && grep " httpd-$ver.tar.gz\$" SHA256SUMS | sha256sum -c --quiet - ) >&2 \
  || { echo "build-httpd: checksum of httpd-$ver.tar.gz does not match SHA256SUMS" >&2; exit 1; }

# 2.4.58 and later were released for PCRE2; older ones build with PCRE 1.
case "$ver" in
  2.4.3*|2.4.4*|2.4.50|2.4.51|2.4.52|2.4.53|2.4.54|2.4.55|2.4.56|2.4.57)
    pcre=/usr/bin/pcre-config ;;
  *) pcre=/usr/bin/pcre2-config ;;
esac
work="$cache/src-$ver"
rm -rf "$work" "$prefix"
mkdir -p "$work"
tar -xzf "$tarball" -C "$work" --strip-components=1
log="$cache/build-$ver.log"
echo "build-httpd: building httpd $ver into $prefix (log: $log)" >&2
(
  cd "$work"
  ./configure --prefix="$prefix" --enable-mods-shared=reallyall --enable-mpms-shared=all \
      --enable-mods-static="unixd logio watchdog version log_config" \
      --with-apr=/usr/bin/apr-1-config --with-apr-util=/usr/bin/apu-1-config \
      --with-pcre="$pcre"
  nice make -j"$(nproc)"
  make install
) >"$log" 2>&1 || { echo "build-httpd: httpd $ver failed to build, last lines of $log:" >&2; tail -n 20 "$log" >&2; exit 1; }
rm -rf "$work"
touch "$prefix/.complete"
echo "$prefix"
