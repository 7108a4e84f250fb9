#!/usr/bin/env bash
# Draws p99 latency against throughput from a bench/run.sh CSV: one panel per workload, one
# line per system, each point labelled with its connection count. Writes the chart next to
# the CSV, as .png (gnuplot's pngcairo or png terminal) or, failing both, .svg.
#
#   bench/plot.sh bench/results/20250101T120000Z-host.csv
set -euo pipefail

if [[ $# -ne 1 || ! -f $1 ]]; then
    echo "usage: bench/plot.sh RESULTS.csv" >&2
    exit 2
fi
csv=$1

if gnuplot -e 'set terminal pngcairo' 2>/dev/null; then
    terminal='pngcairo size 1500,520 font "sans,10"'
    chart=${csv%.csv}.png
elif gnuplot -e 'set terminal png' 2>/dev/null; then
    terminal='png size 1500,520'
    chart=${csv%.csv}.png
else
    terminal='svg size 1500,520'
    chart=${csv%.csv}.svg
fi

data=$(mktemp)
trap 'rm -f "$data"' EXIT

# The CSV's columns: system,workload,target,connections,duration_s,requests,errors,
# throughput_rps,p50_ms,p99_ms,p999_ms. Data blocks (gnuplot's "index"), in this order:
# raftkv write, etcd write, raftkv read, etcd read, raftkv mixed, etcd mixed, then read-lease
# and read-stale likewise (those present).
workloads=()
for workload in write read mixed read-lease read-stale; do
    grep -q "^[a-z]*,$workload," "$csv" || continue
    workloads+=("$workload")
    for system in raftkv etcd; do
        awk -F, -v s="$system" -v w="$workload" \
            '$1 == s && $2 == w { print $8, $10, $4 }' "$csv" | sort -n -k3 >>"$data"
        printf '\n\n' >>"$data"
    done
done
((${#workloads[@]} > 0)) || {
    echo "bench/plot.sh: no rows in $csv" >&2
    exit 1
}
case $(awk -F, 'NR == 2 { print $3 }' "$csv") in
leader) target="every connection to the leader" ;;
*) target="connections spread over the 3 nodes" ;;
esac

{
    cat <<EOF
set terminal $terminal
set output "$chart"
set multiplot layout 1,${#workloads[@]} title "raftkv vs etcd, 3 nodes each ($(basename "$csv" .csv)), $target; points labelled with the connection count; lower right is better" font ",12"
set xlabel "throughput (requests/s)"
set ylabel "p99 latency (ms)"
set logscale y
set xrange [0:*]
set offsets 0, graph 0.1, 0, 0
set grid
set key top left
set style line 1 lc rgb "#1f77b4" lw 2 pt 7 ps 0.8
set style line 2 lc rgb "#d62728" lw 2 pt 5 ps 0.8
EOF
    index=0
    for workload in "${workloads[@]}"; do
        cat <<EOF
set title "$workload"
plot "$data" index $index using 1:2 with linespoints ls 1 title "raftkv", \\
     "" index $index using 1:2:3 with labels offset char 1.2,0.6 tc rgb "#1f77b4" notitle, \\
     "" index $((index + 1)) using 1:2 with linespoints ls 2 title "etcd", \\
     "" index $((index + 1)) using 1:2:3 with labels offset char 1.2,-0.6 tc rgb "#d62728" notitle
EOF
        index=$((index + 2))
    done
    echo "unset multiplot"
} | gnuplot

echo "$chart"
