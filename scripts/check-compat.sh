#!/usr/bin/env bash
# make check-compat: the module built with, and tested against, every httpd
# release in COMPAT_VERSIONS (default: all of ../shared/httpd-src).
# Each httpd is built once into build/httpd/<version> (scripts/build-httpd.sh),
# the module is built from a copy of the sources with that httpd's apxs into
# build/compat/<version>, and the integration suite runs against it.
# Prints one summary line per version; exits non-zero if any failed.
set -uo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
versions="${COMPAT_VERSIONS:-2.4.37 2.4.52 2.4.58 2.4.62}"
python="${PYTHON:-/usr/bin/python3}"
pytest_args="${COMPAT_PYTEST_ARGS:-}"
summary=()
status=0
for v in $versions; do
  echo "=== httpd $v"
  if ! prefix="$(bash scripts/build-httpd.sh "$v")"; then
    summary+=("$v: httpd did not build (see build/httpd/build-$v.log)")
    status=1; continue
  fi
  work="$top/build/compat/$v"
  rm -rf "$work"; mkdir -p "$work"
  cp -a mod_bbstatus.c mod_bbstatus.map apxs.mk Makefile src include "$work/"
  if ! make -C "$work" --no-print-directory WERROR=1 APXS="$prefix/bin/apxs" \
       >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log"
    summary+=("$v: module did not build (see $work/build.log)")
    status=1; continue
  fi
  # the module must load: apache2 -t with it and its prerequisites
  report="$work/junit.xml"
  BBS_APACHE2="$prefix/bin/httpd" BBS_APACHE_MODULES="$prefix/modules" \
  BBS_MODULE="$work/.libs/mod_bbstatus.so" BBS_HTTPD_VERSION="$v" \
    "$python" -m pytest -q -p no:cacheprovider --junitxml="$report" \
      tests/integration $pytest_args
  rc=$?
  counts="$("$python" - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
    print(f"{t - f - e - k} passed, {f + e} failed, {k} skipped")
except Exception as ex:
    print(f"no test report ({ex})")
PY
)"
  summary+=("$v: builds, loads; tests: $counts")
  [ $rc -eq 0 ] || status=1
done
echo
echo "=== compatibility summary"
printf '%s\n' "${summary[@]}"
exit $status
