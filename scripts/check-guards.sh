#!/usr/bin/env bash
# Guards that keep the layout honest; run by `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# The decision core builds without httpd: no httpd header may creep in.
if grep -nE '#include *[<"](httpd|http_[a-z_]+|ap_[a-z_]+|mod_[a-z_]+|util_[a-z_]+|scoreboard|mpm_common)\.h' \
     src/bbs_*.c include/*.h; then
  echo "check-guards: the core (src/bbs_*.c, include/) includes an httpd header" >&2
  fail=1
fi

# Every directive is documented with its default in conf.d and the README.
directives=$(grep -oE 'AP_INIT_[A-Z0-9_]+\("BBStatus[A-Za-z]+"' src/mod_bbstatus_config.c \
             | grep -oE 'BBStatus[A-Za-z]+' | sort -u)
for d in $directives; do
  for f in conf.d/bbstatus.conf README.md; do
    if ! grep -q "$d" "$f" 2>/dev/null; then
      echo "check-guards: $d is not documented in $f" >&2
      fail=1
    fi
  done
done

# Every test source file is part of the unit runner.
for f in tests/unit/test_*.c; do
  tc=$(grep -oE '^TCase \*[a-z_]+_test_case' "$f" | sed 's/TCase \*//')
  if [ -n "$tc" ] && ! grep -q "$tc()" tests/unit/main.c; then
    echo "check-guards: $tc in $f is not added in tests/unit/main.c" >&2
    fail=1
  fi
done

# One version: BBS_VERSION in include/bbs_keys.h; the top of CHANGES, the
# upstream part of debian/changelog's top entry and the RPM spec's Version
# and newest changelog entry say the same.
version=$(sed -n 's/^#define BBS_VERSION "\(.*\)"$/\1/p' include/bbs_keys.h)
changes=$(sed -n '1s/^Changes with mod_bbstatus \([^ ]*\).*/\1/p' CHANGES)
debian=$(sed -n '1s/^libapache2-mod-bbstatus (\([^)-]*\)\(-[^)]*\)\{0,1\}).*/\1/p' \
         debian/changelog 2>/dev/null)
if [ -z "$version" ]; then
  echo "check-guards: no BBS_VERSION in include/bbs_keys.h" >&2
  fail=1
else
  if [ "$changes" != "$version" ]; then
    echo "check-guards: CHANGES starts with version '$changes', BBS_VERSION is '$version'" >&2
    fail=1
  fi
  if [ "$debian" != "$version" ]; then
    echo "check-guards: debian/changelog is at '$debian', BBS_VERSION is '$version'" >&2
    fail=1
  fi
  # the RPM's Version: and its newest %changelog entry
  spec=$(sed -n 's/^Version: *\([^ ]*\) *$/\1/p' rpm/mod_bbstatus.spec 2>/dev/null)
  spec_log=$(sed -n '/^%changelog/{n;s/.* - \([^ -]*\)-[^ -]*$/\1/p;q}' \
             rpm/mod_bbstatus.spec 2>/dev/null)
  if [ "$spec" != "$version" ] || [ "$spec_log" != "$version" ]; then
    echo "check-guards: rpm/mod_bbstatus.spec is at '$spec' (changelog" \
         "'$spec_log'), BBS_VERSION is '$version'" >&2
    fail=1
  fi
fi

# The glue units in layers, lowest first: a unit (src/mod_bbstatus_U.c and
# its header) includes only the headers of units below it, besides its own
# and mod_bbstatus_private.h / _compat.h, which every unit may include.
# C99 with -Werror refuses a call to an undeclared function, so a unit can
# only call units below it: no call cycles. mod_bbstatus.c, the module
# record and hooks, sits on top of them all. A new unit takes its place
# here.
layers="method config confcheck lease shm park probe wake flags record ramp checker
        watchdog sticky warmup retry manager view html status handler"
rank() {
  local i=0 u
  for u in $layers; do
    i=$((i + 1))
    [ "$u" = "$1" ] && { echo $i; return; }
  done
  echo 0
}
for f in src/mod_bbstatus_*.c src/mod_bbstatus_*.h; do
  u=$(basename "$f" | sed -E 's/^mod_bbstatus_([a-z]+)\.[ch]$/\1/')
  case $u in private|compat) continue ;; esac
  r=$(rank "$u")
  if [ "$r" -eq 0 ]; then
    echo "check-guards: $f is in no layer of scripts/check-guards.sh" >&2
    fail=1
    continue
  fi
  for v in $(grep -oE '^#include "mod_bbstatus_[a-z]+\.h"' "$f" \
             | sed -E 's/.*mod_bbstatus_([a-z]+)\.h"/\1/'); do
    case $v in private|compat|"$u") continue ;; esac
    if [ "$(rank "$v")" -ge "$r" ]; then
      echo "check-guards: $f includes mod_bbstatus_$v.h, a unit not below $u" >&2
      fail=1
    fi
  done
done

# The outputs render the view: only mod_bbstatus_view.c turns a member's
# record, ramp and counts into what a person or a program reads.
if grep -nE 'row->(rec|warm|has_record)\b|bbs_shm_|bbs_record_t|->s->(pcount|fcount)' \
     src/mod_bbstatus_handler.c src/mod_bbstatus_html.c src/mod_bbstatus_status.c; then
  echo "check-guards: an output reads a member's record, ramp or counts" \
       "instead of its view (mod_bbstatus_view.c)" >&2
  fail=1
fi

# No source file over 600 lines: past that a unit does more than one
# thing; its pure parts go to the core (src/bbs_*.c), the rest to a unit
# of its own.
for f in mod_bbstatus.c src/*.c src/*.h include/*.h; do
  n=$(wc -l < "$f")
  if [ "$n" -gt 600 ]; then
    echo "check-guards: $f has $n lines, more than 600" >&2
    fail=1
  fi
done

# Log IDs: written BBSLOGNO(0nnn), each used once in the sources and listed
# in README's log table, and the table lists no ID the sources do not use.
if grep -nE '"BBS0[0-9]{3}:' mod_bbstatus.c src/*.c; then
  echo "check-guards: a log ID written as a literal; use BBSLOGNO(0nnn)" >&2
  fail=1
fi
used=$(grep -ohE 'BBSLOGNO\(0[0-9]{3}\)' mod_bbstatus.c src/*.c \
       | grep -oE '0[0-9]{3}' | sort || true)
for id in $(echo "$used" | uniq -d); do
  echo "check-guards: BBS$id is used more than once in the sources" >&2
  fail=1
done
listed=$(grep -oE '^\| `BBS0[0-9]{3}` \|' README.md | grep -oE '0[0-9]{3}' | sort || true)
for id in $(comm -23 <(echo "$used" | uniq) <(echo "$listed" | uniq)); do
  echo "check-guards: BBS$id is not in README's log table" >&2
  fail=1
done
for id in $(comm -13 <(echo "$used" | uniq) <(echo "$listed" | uniq)); do
  echo "check-guards: BBS$id is in README's log table but not in the sources" >&2
  fail=1
done

[ $fail -eq 0 ] && echo "check-guards: ok"
exit $fail
