#!/usr/bin/env bash
# Server CPU time per request of a three-node raftkv cluster on loopback, for comparing builds or
# settings A/B on a shared machine, where throughput is noisy but CPU per request much less so.
#
#   bench/cpu-per-request.sh [options] NAME=COMMAND [NAME=COMMAND...]
#
# Each COMMAND starts one raftkv-server (split at spaces; the script adds --id, --data-dir,
# --http, --raft and --peers), for example
#
#   bench/cpu-per-request.sh --runs 3 base=/tmp/raftkv-server-main \
#       new=build/release/reference-server/raftkv-server \
#       "one-thread=build/release/reference-server/raftkv-server --threads 1" \
#       "tcmalloc=env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /tmp/raftkv-server-main"
#
# For each of --runs rounds it measures every variant once, in the order given (A B A B ...), so
# that a busy spell of the machine hits all of them: a fresh cluster on free loopback ports (from
# 18500) in a fresh directory, raftkv-loadgen against all three nodes for --duration seconds,
# then the cluster is stopped. One line per measurement:
#
#   NAME write req/s=... p99_ms=... cpu_us/req=... ctxsw/req=... load=...
#
# cpu_us/req: user+system CPU time of the three server processes (/proc/PID/stat) during the
# load, over the requests answered; ctxsw/req: their threads' voluntary and involuntary context
# switches (/proc/PID/task/*/status) over the requests; load: the machine's 1-minute load
# average at the end. Everything it started is stopped, and its directory removed, on exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
loadgen=${RAFTKV_LOADGEN:-$repo/build/release/bench/loadgen/raftkv-loadgen}
workload=write
duration=10
connections=63
runs=3
prefill=0

usage() {
    cat >&2 <<EOF
usage: $0 [--workload write|read|mixed] [--duration S] [--connections N] [--runs N] [--prefill]
             NAME=COMMAND...
  --workload   raftkv-loadgen's workload (default: write; read and mixed prefill every key first)
  --duration   seconds of load per measurement (default: 10)
  --connections  connections, spread over the three nodes (default: 63)
  --runs       rounds; each measures every variant once (default: 3)
  --prefill    write every key once before a write measurement too, as bench/run.sh does
               before its points (reads and the mix always start from a prefilled store)
RAFTKV_LOADGEN=PATH uses that raftkv-loadgen (default: build/release/bench/loadgen/raftkv-loadgen).
EOF
    exit 2
}

variants=()
while (($# > 0)); do
    case $1 in
    --workload) workload=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --prefill) prefill=1; shift ;;
    -h | --help) usage ;;
    *=*) variants+=("$1"); shift ;;
    *) usage ;;
    esac
done
((${#variants[@]} > 0)) || usage
[[ $workload =~ ^(write|read|mixed)$ ]] || usage
[[ -x $loadgen ]] || { echo "no raftkv-loadgen at $loadgen (build the release preset's raftkv-loadgen)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-cpu.XXXXXX")
pids=()
stop_cluster() {
    local pid deadline
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
trap 'stop_cluster; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Sets port to the first port from $1 on that nobody listens on and this script did not hand out.
declare -A handed_out=()
free_port() {
    port=$1
    while [[ -n ${handed_out[$port]:-} ]] || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    handed_out[$port]=1
}

ticks=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the processes $@
    local total=0 pid stat fields
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat")
        read -r -a fields <<<"${stat##*) }" # fields from the 3rd (state) on
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
context_switches() { # voluntary + involuntary switches of every thread of the processes $@
    local pid
    for pid in "$@"; do
        cat "/proc/$pid"/task/*/status 2>/dev/null || true
    done | awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

measure() {
    local name=$1 command=$2 n http=() raft=() peers= endpoints= cmd
    read -r -a cmd <<<"$command"
    handed_out=()
    for n in 1 2 3; do
        free_port 18500
        http[n]=$port
        free_port 18500
        raft[n]=$port
        peers+="${peers:+,}$n=127.0.0.1:${raft[n]}"
        endpoints+="${endpoints:+,}127.0.0.1:${http[n]}"
    done
    rm -rf "$work/data"
    for n in 1 2 3; do
        mkdir -p "$work/data/$n"
        "${cmd[@]}" --id "$n" --data-dir "$work/data/$n" --http "127.0.0.1:${http[n]}" \
            --raft "127.0.0.1:${raft[n]}" --peers "$peers" >"$work/data/$n.log" 2>&1 </dev/null &
        pids+=($!)
    done
    local deadline=$((SECONDS + 30))
    until curl -fsS -m 1 "http://127.0.0.1:${http[1]}/health" >/dev/null 2>&1; do
        for n in 0 1 2; do
            if ! kill -0 "${pids[n]}" 2>/dev/null; then
                echo "$name: node $((n + 1)) exited:" >&2
                tail -n 5 "$work/data/$((n + 1)).log" >&2
                exit 1
            fi
        done
        if ((SECONDS > deadline)); then
            echo "$name: no leader after 30 s" >&2
            exit 1
        fi
        sleep 0.2
    done
    if [[ $workload != write ]] || ((prefill)); then
        "$loadgen" --target raftkv --endpoints "$endpoints" --workload prefill --connections 63 \
            --duration 120 >/dev/null
    fi
    local c0 s0 c1 s1 out requests
    c0=$(cpu_ticks "${pids[@]}")
    s0=$(context_switches "${pids[@]}")
    out=$("$loadgen" --target raftkv --endpoints "$endpoints" --workload "$workload" \
        --connections "$connections" --duration "$duration" 2>&1 | grep '^BENCH' || true)
    c1=$(cpu_ticks "${pids[@]}")
    s1=$(context_switches "${pids[@]}")
    stop_cluster
    requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$out")
    ((requests > 0)) || { echo "$name: no request answered: $out" >&2; exit 1; }
    awk -v name="$name" -v wl="$workload" -v out="$out" -v req="$requests" -v cpu=$((c1 - c0)) \
        -v hz="$ticks" -v sw=$((s1 - s0)) -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
        match(out, /throughput=[0-9.]+/); thr = substr(out, RSTART + 11, RLENGTH - 11)
        match(out, /p99_ms=[0-9.]+/); p99 = substr(out, RSTART + 7, RLENGTH - 7)
        printf "%s %s req/s=%.0f p99_ms=%s cpu_us/req=%.1f ctxsw/req=%.2f load=%s\n",
            name, wl, thr, p99, cpu * 1e6 / hz / req, sw / req, load
    }'
}

for ((round = 1; round <= runs; round++)); do
    for variant in "${variants[@]}"; do
        measure "${variant%%=*}" "${variant#*=}"
    done
done
