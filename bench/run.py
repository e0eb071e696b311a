#!/usr/bin/env python3
"""make bench: mod_bbstatus against stock health checks, on loopback only.

The benchmark itself is the package bench/bbsbench (its docstring says
what runs; bench/README.md how it measures).  This file only starts it:

  /usr/bin/python3 bench/run.py --out BENCHMARKS.md       (what make bench runs)
  /usr/bin/python3 bench/run.py --quick --out /tmp/B.md   (a few minutes)
  /usr/bin/python3 bench/run.py --scenario rolling --configs bbstatus,tcp
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bbsbench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
