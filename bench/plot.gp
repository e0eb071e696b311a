# Rolling-restart timeline of `make bench` (bench/run.py draws it).
#
#   gnuplot -e "f1='a.dat'; t1='title'; ... f4='d.dat'; t4='...'; out='x.png'" bench/plot.gp
#
# f1/f2: Bitbucket flavor (BBSTATUS, best stock), f3/f4: Jira flavor.
# Columns of each file: t(s, 0 = first restart) n1 n2 n3 failures stopping
# stopped starting
# (answers per second per node, failures per second, and 0/1 flags for the
# state of the node being restarted).  An empty f<k> leaves its panel empty.

if (!exists("out")) out = "rolling-restart.png"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1400,900 font "DejaVu Sans,10"
} else {
    set terminal png size 1400,900
}
set output out

set multiplot layout 2,2 title "Rolling restart under 300 requests/s: answers per node and failures per second"
set xlabel "seconds"
set ylabel "requests/s"
set y2range [0:1]
unset y2tics
set yrange [0:*]
set key top right horizontal font ",8"
set grid ytics
set style fill transparent solid 0.18 noborder
set boxwidth 1.0 absolute

do for [k=1:4] {
    f = value(sprintf("f%d", k))
    t = value(sprintf("t%d", k))
    set title t
    if (strlen(f) > 0) {
        plot f using ($1+0.5):($6 > 0 ? 1 : NaN) axes x1y2 with boxes lc rgb "#ff9900" notitle, \
             f using ($1+0.5):($7 > 0 ? 1 : NaN) axes x1y2 with boxes lc rgb "#777777" notitle, \
             f using ($1+0.5):($8 > 0 ? 1 : NaN) axes x1y2 with boxes lc rgb "#ffd000" notitle, \
             f using 1:2 with steps lw 1.5 lc rgb "#1f77b4" title "n1", \
             f using 1:3 with steps lw 1.5 lc rgb "#2ca02c" title "n2", \
             f using 1:4 with steps lw 1.5 lc rgb "#9467bd" title "n3", \
             f using 1:5 with steps lw 2.0 lc rgb "#d62728" title "failures"
    } else {
        unset border; unset tics; unset xlabel; unset ylabel
        plot NaN notitle
        set border; set tics; set xlabel "seconds"; set ylabel "requests/s"
        unset y2tics
    }
}
unset multiplot
