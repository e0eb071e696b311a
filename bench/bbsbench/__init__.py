"""make bench: mod_bbstatus against stock health checks, on loopback only.

Runs a real apache2 (tests/integration/httpd.py) in front of the simulated
Atlassian nodes of the test suite (tests/nodes/simnode.py) and writes the
figures to BENCHMARKS.md as tables, with the machine, the date and the exact
commands, plus a PNG timeline of the rolling restart (drawn by gnuplot with
bench/plot.gp).

Scenarios (``--scenario NAME``, repeatable; default: all):

  rolling    rolling graceful restart of three nodes under ~300 requests/s,
             Bitbucket and Jira flavors, every configuration
  backup     all nodes in MAINTENANCE, the backup client polls
             /mvc/maintenance through the proxy
  detection  time from a node's flip to STOPPING until the balancer stops
             choosing it, and from RUNNING until it is chosen again
  overhead   wrk through the proxy: module loaded + BBSTATUS checks against
             module not loaded + stock GET checks, alternating runs
  scale      1,000 members at hcinterval=1: achieved interval, checking CPU
  memory     resident size of the checking child before/after 100,000 checks

Configurations compared (all at the same hcinterval/hcpasses/hcfails):

  bbstatus        hcmethod=BBSTATUS (module defaults: standby, re-probe)
  bbstatus-plain  hcmethod=BBSTATUS, BBStatusStandby none,
                  BBStatusReprobeInterval 0
  get-status      stock hcmethod=GET hcuri=/status
  get-expr        stock GET /status + ProxyHCExpr on hc('body')
  get-projects    stock hcmethod=GET hcuri=/projects (the backup-client KB)
  tcp             stock hcmethod=TCP

The paced load generator (load.PacedLoad) is part of this package: plain wrk
cannot hold a fixed request rate nor say which node answered each request.
wrk is used for the throughput scenario only.

Usage:
  /usr/bin/python3 bench/run.py --out BENCHMARKS.md       (what make bench runs)
  /usr/bin/python3 bench/run.py --quick --out /tmp/B.md   (a few minutes)
  /usr/bin/python3 bench/run.py --scenario rolling --configs bbstatus,tcp

Modules: common (parameters, configurations, helpers), load (paced load
generator, state timelines), procs (nodes, httpd, configuration text),
scenarios, report (BENCHMARKS.md and the picture), cli (options, main).

Python 3 standard library only.  Every process started here is stopped in a
finally block; network traffic goes to 127.0.0.1 only.
"""
