# Rejoin picture of `make bench` (bench/run.py draws it).
#
#   gnuplot -e "n=5; f1='a.dat'; t1='title'; ...; W=60; B=12; title='...'; out='x.png'" bench/rejoin.gp
#
# One file per configuration, columns: t (s, 0 = the node says RUNNING),
# share (% of the answered requests due in that second that the cold node
# answered), p99 (ms, of the requests due in the 5 s up to the end of that
# second; from RUNNING on, those before it left out).  Top: the share;
# bottom: the client p99 (log scale).  One line per configuration; shaded:
# the node's restart (R seconds before RUNNING).

if (!exists("out")) out = "rejoin.png"
if (!exists("W")) W = 60
if (!exists("B")) B = 12
if (!exists("R")) R = 10
if (!exists("title")) title = "Rejoin of a cold node"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1400,900 font "DejaVu Sans,10" noenhanced
} else {
    set terminal png size 1400,900 noenhanced
}
set output out

array C[6] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#555555"]

set multiplot layout 2,1 title title
set xrange [-B:W]
set xlabel "seconds after the node says RUNNING"
set grid xtics ytics
set key top left font ",9"
set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2 lc rgb "#888888"
set object 1 rect from -R, graph 0 to 0, graph 1 behind fc rgb "#fff3d0" fs solid 0.6 noborder

set title "share of the requests answered by the restarted node (full share 33%; shaded: its restart)"
set ylabel "% per second"
set yrange [0:60]
plot for [k=1:n] value(sprintf("f%d", k)) using 1:2 with lines lw 2 lc rgb C[(k-1)%6+1] title value(sprintf("t%d", k)), \
     33.3 with lines dt 3 lc rgb "#888888" title "full share"

set title "client p99 latency over the last 5 s, each second (from when the request was due; from RUNNING on, requests before it left out)"
set ylabel "ms (log scale)"
set logscale y
set yrange [1:*]
set key top right font ",9"
plot for [k=1:n] value(sprintf("f%d", k)) using 1:3 with lines lw 2 lc rgb C[(k-1)%6+1] title value(sprintf("t%d", k))
unset multiplot
