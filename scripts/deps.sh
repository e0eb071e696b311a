#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing.
# Usage: scripts/deps.sh build|check|ci|bench|demo|fuzz|valgrind|compat|deb
set -euo pipefail

build=(apache2 apache2-dev libjansson-dev pkg-config make gcc)
# the page tests: an HTML5 parser and a real browser (Chromium, Selenium);
# gdb reads the core of a child that crashed (test_restarts_under_load);
# promtool (prometheus) and python3-yaml test the alerting rules; iproute2
# gives a test's network namespace a route that denies connect()
check=("${build[@]}" check python3-pytest curl openssl python3-html5lib
       chromium chromium-driver python3-selenium gdb prometheus python3-yaml
       iproute2)
case "${1:-check}" in
  build) want=("${build[@]}") ;;
  check|ci) want=("${check[@]}") ;;
  demo) want=("${build[@]}" python3 curl) ;;
  # the other proxies compared are run by bench/bbsbench/peers.py as its
  # own foreground processes; their system services are never used
  bench) want=("${check[@]}" wrk gnuplot-nox haproxy nginx-light) ;;
  fuzz) want=("${check[@]}" clang libclang-rt-14-dev) ;;
  valgrind) want=("${check[@]}" valgrind) ;;
  # make deb and make rpm, and the package tests (lint, install, remove)
  deb) want=("${check[@]}" git dpkg-dev debhelper fakeroot lintian patchelf
             rpm rpmlint) ;;
  # building httpd releases: PCRE 1 for those before 2.4.58, PCRE2 after,
  # OpenSSL for mod_ssl (https members), zlib/libxml2/brotli as Debian has
  compat) want=("${check[@]}" libapr1-dev libaprutil1-dev libpcre3-dev libpcre2-dev
                libssl-dev zlib1g-dev libxml2-dev libbrotli-dev) ;;
  *) echo "deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "Not root and no sudo: run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# haproxy, nginx and prometheus would start their system services on
# install: the benchmark runs its own processes and the tests want only
# promtool, so nothing is started (policy-rc.d answering 101, for this
# install only) and the services are disabled.
services=()
for p in "${missing[@]}"; do
  case "$p" in
    haproxy) services+=(haproxy) ;;
    nginx-light) services+=(nginx) ;;
    prometheus) services+=(prometheus) ;;
  esac
done
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ${#services[@]} -gt 0 ] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  own_policy=1
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
for s in "${services[@]}"; do
  "${sudo[@]}" update-rc.d "$s" disable >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable "$s" >/dev/null 2>&1 || true
  fi
done
[ -n "$own_policy" ] && "${sudo[@]}" rm -f "$policy" && trap - EXIT
exit 0
