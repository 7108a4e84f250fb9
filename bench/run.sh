#!/usr/bin/env bash
# Benchmarks a three-node raftkv cluster against a three-node etcd cluster on this machine, with
# raftkv-loadgen or wrk, and writes a CSV, a table and a chart under bench/results/. See
# bench/README.md.
set -euo pipefail
shopt -s inherit_errexit

bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench/.." && pwd)

usage() {
    cat <<EOF
usage: bench/run.sh [options]

Starts a 3-node raftkv cluster and a 3-node etcd cluster on loopback, prefills 100,000 keys in
both, drives both with the same load generator (write, read, mixed workloads; 128-byte values;
random keys) at each connection count, and writes bench/results/<UTC time>-<host>.csv,
-ratio.csv, .txt and .png.

Options:
  --connections LIST   connection counts to measure (default: $connections)
  --duration SECONDS   length of each point (default: $duration)
  --workloads LIST     any of write,read,mixed,read-lease,read-stale (default: $workloads);
                       read-lease: raftkv's lease reads against etcd's linearizable range
                       (etcd has no lease reads); read-stale: raftkv's stale reads against
                       etcd's serializable range (each node answers from its own state)
  --target MODE        spread: connections spread over the three nodes (default)
                       leader: every connection to the current leader
  --load TOOL          native: bench/loadgen's raftkv-loadgen, built with the release preset
                       (default); wrk: wrk with the Lua scripts of bench/wrk/
  --soak SECONDS       instead of the comparison: write at 64 connections to raftkv only for
                       SECONDS, sampling each node's RSS every 10 s into <stamp>-soak.csv
  --raftkv-flags FLAGS more raftkv-server flags, split at spaces (default: "$raftkv_flags": the
                       three servers share this machine's CPUs, and one I/O thread each spends
                       less CPU per request than two that wake each other; "" for the defaults)
  --commit REV         measure raftkv as committed at REV (git archive into bench/.work/,
                       release preset built there), not the working tree
  --keep               keep the work directory (data, server logs, load output) afterwards
  -h, --help           print this help

Environment:
  RAFTKV_SERVER=PATH   use this raftkv-server binary instead of building the release preset
  RAFTKV_LOADGEN=PATH  use this raftkv-loadgen binary instead of building it (--load native)

Needs etcd (3.4), gnuplot, curl, jq and, for --load wrk, wrk; installs the missing ones with
apt-get (as root).
EOF
}

# ---------------------------------------------------------------------------------------------
# Options

connections=1,16,64,256
duration=10
workloads=write,read,mixed
target=spread
load=native
soak=0
commit=""
keep=0
raftkv_flags="--threads 1"
key_count=100000
value_bytes=128

die() {
    echo "bench/run.sh: $*" >&2
    exit 2
}

fail() {
    echo "bench/run.sh: $*" >&2
    exit 1
}

while (($# > 0)); do
    case $1 in
    --connections | --duration | --workloads | --target | --load | --soak | --commit | --raftkv-flags)
        (($# >= 2)) || die "$1 needs a value (see --help)"
        option=${1#--}
        declare "${option//-/_}=$2"
        shift 2
        ;;
    --connections=* | --duration=* | --workloads=* | --target=* | --load=* | --soak=* | --commit=* | --raftkv-flags=*)
        option=${1%%=*}
        option=${option#--}
        declare "${option//-/_}=${1#*=}"
        shift
        ;;
    --keep)
        keep=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ $connections =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--connections: a list like 1,16,64,256"
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration: a whole number of seconds"
workload_names='(write|read|mixed|read-lease|read-stale)'
[[ $workloads =~ ^$workload_names(,$workload_names)*$ ]] ||
    die "--workloads: any of write,read,mixed,read-lease,read-stale"
[[ $target == spread || $target == leader ]] || die "--target: spread or leader"
[[ $load == native || $load == wrk ]] || die "--load: native or wrk"
[[ $soak =~ ^[0-9]+$ ]] || die "--soak: a whole number of seconds"
IFS=, read -r -a connection_list <<<"$connections"
read -r -a raftkv_flag_list <<<"$raftkv_flags"
IFS=, read -r -a workload_list <<<"$workloads"

# ---------------------------------------------------------------------------------------------
# Tools

install_missing_tools() {
    local missing=() tool package
    local tools=(etcd:etcd-server gnuplot:gnuplot-nox curl:curl jq:jq)
    [[ $load != wrk ]] || tools+=(wrk:wrk)
    for tool in "${tools[@]}"; do
        package=${tool#*:}
        tool=${tool%%:*}
        command -v "$tool" >/dev/null || missing+=("$package")
    done
    ((${#missing[@]} > 0)) || return 0
    echo "installing ${missing[*]}"
    ((EUID == 0)) || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# Sets server to the raftkv-server to measure: $RAFTKV_SERVER, or the release preset built from
# the working tree, or with --commit from that commit's files alone (kept for the next run).
build_server() {
    local source=$repo sha
    if [[ -n "${RAFTKV_SERVER:-}" ]]; then
        [[ -x $RAFTKV_SERVER ]] || die "RAFTKV_SERVER=$RAFTKV_SERVER is not an executable"
        server=$(realpath "$RAFTKV_SERVER")
        return
    fi
    if [[ -n $commit ]]; then
        sha=$(git -C "$repo" rev-parse --short "$commit^{commit}" 2>/dev/null) || die "--commit: no commit '$commit'"
        commit=$sha
        source=$bench/.work/src-$commit
        if [[ ! -f $source/.extracted ]]; then
            rm -rf "$source"
            mkdir -p "$source"
            git -C "$repo" archive "$commit" | tar -x -C "$source"
            touch "$source/.extracted"
        fi
    fi
    (
        cd "$source"
        ./scripts/install-deps.sh
        cmake --preset release >/dev/null
        cmake --build --preset release --target raftkv-server
    )
    server=$source/build/release/reference-server/raftkv-server
}

# Sets loadgen to the raftkv-loadgen to load both systems with (--load native): $RAFTKV_LOADGEN,
# or the release preset's, always built from the working tree (also with --commit), so that
# every commit measured meets the same load generator.
build_loadgen() {
    loadgen=""
    [[ $load == native ]] || return 0
    if [[ -n "${RAFTKV_LOADGEN:-}" ]]; then
        [[ -x $RAFTKV_LOADGEN ]] || die "RAFTKV_LOADGEN=$RAFTKV_LOADGEN is not an executable"
        loadgen=$(realpath "$RAFTKV_LOADGEN")
        return
    fi
    (
        cd "$repo"
        [[ -n "${RAFTKV_SERVER:-}" ]] || ./scripts/install-deps.sh
        cmake --preset release >/dev/null
        cmake --build --preset release --target raftkv-loadgen
    )
    loadgen=$repo/build/release/bench/loadgen/raftkv-loadgen
}

# ---------------------------------------------------------------------------------------------
# Processes: everything started is recorded here and stopped by cleanup(), whatever happens.

pids=()          # every server started
declare -A log_of # a server's log file, by pid
work=""
load_pid=""

# Stops the given processes: SIGTERM, then SIGKILL to those still running after 10 s.
stop_processes() {
    local pid deadline=$((SECONDS + 10))
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        { wait "$pid" || true; } 2>/dev/null
    done
}

cleanup() {
    local status=$? log
    trap - EXIT INT TERM
    [[ -z $load_pid ]] || stop_processes "$load_pid"
    stop_processes "${pids[@]}"
    if [[ -n $work && -d $work ]]; then
        if ((status != 0 && status != 130)); then
            for log in "$work"/*.log; do
                [[ -f $log ]] || continue
                echo "--- the end of $log:" >&2
                tail -n 5 "$log" >&2
            done
        fi
        if ((keep)); then
            echo "kept $work"
        else
            rm -rf "$work"
        fi
    fi
    exit "$status"
}

trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# Sets port to a port on 127.0.0.1 that nothing listens on, at or above $1 and not handed out
# before. The ranges used stay below Linux's ephemeral ports (32768 and up), so that no client
# socket takes one meanwhile.
declare -A handed_out
port=0
free_port() {
    port=$1
    while [[ -n ${handed_out[$port]:-} ]] || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    handed_out[$port]=1
}

# Waits up to 30 s until every URL answers 2xx with a body that matches $1; fails if a server
# process exits meanwhile.
wait_ready() {
    local pattern=$1 url deadline=$((SECONDS + 30)) ready pid
    shift
    while ((SECONDS < deadline)); do
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || {
                echo "a server exited during start-up; see ${log_of[$pid]}" >&2
                return 1
            }
        done
        ready=0
        for url in "$@"; do
            if curl -fsS -m 1 "$url" 2>/dev/null | grep -q "$pattern"; then
                ready=$((ready + 1))
            fi
        done
        (($# == ready)) && return 0
        sleep 0.2
    done
    echo "no leader after 30 s: $*" >&2
    return 1
}

raftkv_http=() # HTTP port of raftkv node n
raftkv_pid=()  # process id of raftkv node n
etcd_client=() # client port of etcd member n

start_raftkv() {
    local n raft=() peers=""
    for n in 1 2 3; do
        free_port 18000
        raftkv_http[n]=$port
        free_port 18000
        raft[n]=$port
        peers+="${peers:+,}$n=127.0.0.1:${raft[n]}"
    done
    for n in 1 2 3; do
        mkdir -p "$work/raftkv/$n"
        "$server" --id "$n" --data-dir "$work/raftkv/$n" --http "127.0.0.1:${raftkv_http[n]}" \
            --raft "127.0.0.1:${raft[n]}" --peers "$peers" "${raftkv_flag_list[@]}" \
            >"$work/raftkv-$n.log" 2>&1 </dev/null &
        pids+=($!)
        raftkv_pid[n]=$!
        log_of[$!]=$work/raftkv-$n.log
    done
    wait_ready '"status"' "http://127.0.0.1:${raftkv_http[1]}/health" \
        "http://127.0.0.1:${raftkv_http[2]}/health" "http://127.0.0.1:${raftkv_http[3]}/health"
    echo "raftkv: HTTP on 127.0.0.1:${raftkv_http[1]},${raftkv_http[2]},${raftkv_http[3]}"
}

start_etcd() {
    local n peer=() cluster=""
    for n in 1 2 3; do
        free_port 12000
        etcd_client[n]=$port
        free_port 12000
        peer[n]=$port
        cluster+="${cluster:+,}etcd$n=http://127.0.0.1:${peer[n]}"
    done
    for n in 1 2 3; do
        etcd --name "etcd$n" --data-dir "$work/etcd/$n" --logger zap \
            --listen-client-urls "http://127.0.0.1:${etcd_client[n]}" \
            --advertise-client-urls "http://127.0.0.1:${etcd_client[n]}" \
            --listen-peer-urls "http://127.0.0.1:${peer[n]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${peer[n]}" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "raftkv-bench-$$" >"$work/etcd-$n.log" 2>&1 </dev/null &
        pids+=($!)
        log_of[$!]=$work/etcd-$n.log
    done
    wait_ready '"health":"true"' "http://127.0.0.1:${etcd_client[1]}/health" \
        "http://127.0.0.1:${etcd_client[2]}/health" "http://127.0.0.1:${etcd_client[3]}/health"
    echo "etcd $(etcd --version | awk '/etcd Version/ {print $3}'): client URLs on 127.0.0.1:${etcd_client[1]},${etcd_client[2]},${etcd_client[3]}"
}

# Prints the HTTP address of system $1's leader.
leader_of() {
    local n id leader
    if [[ $1 == raftkv ]]; then
        leader=$(curl -fsS -m 2 "http://127.0.0.1:${raftkv_http[1]}/status" | jq -r .leader)
        [[ $leader =~ ^[123]$ ]] || fail "raftkv has no leader"
        echo "127.0.0.1:${raftkv_http[leader]}"
        return
    fi
    for n in 1 2 3; do
        read -r id leader < <(curl -fsS -m 2 -X POST -d '{}' \
            "http://127.0.0.1:${etcd_client[n]}/v3/maintenance/status" |
            jq -r '"\(.header.member_id) \(.leader)"')
        if [[ $id == "$leader" ]]; then
            echo "127.0.0.1:${etcd_client[n]}"
            return
        fi
    done
    fail "etcd has no leader"
}

# Prints the nodes of system $1 that wrk's threads connect to, comma-separated, thread i to the
# i-th (cyclically): for mode $2 = spread the two followers, then the leader; for leader just
# the leader.
target_nodes() {
    local system=$1 mode=$2 leader node nodes=""
    leader=$(leader_of "$system")
    if [[ $mode == spread ]]; then
        if [[ $system == raftkv ]]; then
            for node in "${raftkv_http[@]}"; do
                [[ 127.0.0.1:$node == "$leader" ]] || nodes+="127.0.0.1:$node,"
            done
        else
            for node in "${etcd_client[@]}"; do
                [[ 127.0.0.1:$node == "$leader" ]] || nodes+="127.0.0.1:$node,"
            done
        fi
    fi
    echo "$nodes$leader"
}

# ---------------------------------------------------------------------------------------------
# Load

# Runs the load generator (--load) with workload $2 against system $1 for load_seconds, with
# load_connections connections spread over the comma-separated nodes $3: wrk thread i (of
# load_threads) and its connections to the i-th node, cyclically; raftkv-loadgen's connection i
# to the i-th node, cyclically, which puts the same number on each node. The tool replaces the
# shell that runs this, so run it with & and wait for $!: both exit 0 on Ctrl-C, and bash runs
# its INT trap at once only while in the wait builtin. Both print the same "BENCH ..." line.
run_load() {
    local system=$1 workload=$2 nodes=$3
    if [[ $load == native ]]; then
        exec "$loadgen" --target "$system" --endpoints "$nodes" --workload "$workload" \
            --connections "$load_connections" --duration "$load_seconds" --timeout 10 \
            --keys "$key_count" --value-bytes "$value_bytes"
    fi
    BENCH_SYSTEM=$system BENCH_NODES=$nodes BENCH_THREADS=$load_threads BENCH_KEYS=$key_count \
        BENCH_VALUE_BYTES=$value_bytes \
        exec wrk -t "$load_threads" -c "$load_connections" -d "${load_seconds}s" --timeout 10s \
        -s "$bench/wrk/$workload.lua" "http://${nodes%%,*}"
}

# Sets load_threads and load_connections for $1 connections: one wrk thread per node (three
# threads spread, two for the leader), and a thread's connections all go to its node. wrk gives
# every thread connections/threads of them, so 16 spread becomes 15, 5 on each node. The native
# load generator opens the same connections on the same nodes (with one thread: it needs less).
plan_load() {
    local per_node=3
    [[ $target == spread ]] || per_node=2
    load_threads=$(($1 < per_node ? $1 : per_node))
    load_connections=$(($1 / load_threads * load_threads))
}

# Writes every key once in system $1 over 192 connections, 64 per node. raftkv-loadgen exits
# once every write is answered; wrk (3 threads, each its own slice of the keys) is ended as soon
# as every thread has been answered for its whole slice. Checks that none of it failed.
prefill() {
    local system=$1 out=$work/prefill-$1.out started=$SECONDS result nodes complete
    local load_threads=3 load_connections=192 load_seconds=120
    nodes=$(target_nodes "$system" spread)
    : >"$out" # before the tool starts, so that the loop below can read it at once
    run_load "$system" prefill "$nodes" >"$out" 2>&1 &
    load_pid=$!
    while kill -0 "$load_pid" 2>/dev/null && (($(grep -c PREFILL_THREAD_DONE "$out") < load_threads)); do
        sleep 0.2
    done
    kill -INT "$load_pid" 2>/dev/null || true
    wait "$load_pid" || true
    load_pid=""
    result=$(grep '^BENCH ' "$out") || {
        cat "$out" >&2
        fail "prefill of $system: no result from $load"
    }
    if [[ $load == native ]]; then
        complete=0
        ! grep -q "^BENCH_PREFILL $key_count of $key_count " "$out" || complete=1
    else
        complete=$(($(grep -c PREFILL_THREAD_DONE "$out") >= load_threads))
    fi
    if ((!complete)) || [[ $result != *" errors=0 "* ]]; then
        cat "$out" >&2
        fail "prefill of $system did not write every key"
    fi
    echo "$system: prefilled $key_count keys in $((SECONDS - started)) s"
}

# The value of field $2 (name=value) in the BENCH line $1.
field() {
    local word
    for word in $1; do
        [[ $word != "$2="* ]] || {
            echo "${word#*=}"
            return
        }
    done
    fail "no $2 in '$1'"
}

csv_header=system,workload,target,connections,duration_s,requests,errors,throughput_rps,p50_ms,p99_ms,p999_ms,load

# Measures one point and appends it to $csv.
measure() {
    local system=$1 workload=$2 out result sample nodes
    local load_threads load_connections load_seconds=$duration
    plan_load "$3"
    nodes=$(target_nodes "$system" "$target")
    out=$work/$system-$workload-$load_connections.out
    run_load "$system" "$workload" "$nodes" >"$out" 2>&1 &
    load_pid=$!
    wait "$load_pid" || {
        cat "$out" >&2
        fail "$load failed"
    }
    load_pid=""
    result=$(grep '^BENCH ' "$out") || {
        cat "$out" >&2
        fail "no result from $load"
    }
    sample=$(grep '^BENCH_ERROR_SAMPLE ' "$out" || true)
    printf '%-6s %-5s %4d connections: %10.1f req/s  p99 %8.2f ms  errors %d  (load average %s) %s\n' \
        "$system" "$workload" "$load_connections" "$(field "$result" throughput)" \
        "$(field "$result" p99_ms)" "$(field "$result" errors)" "$(cut -d' ' -f1 /proc/loadavg)" \
        "${sample#BENCH_ERROR_SAMPLE }"
    echo "$system,$workload,$target,$load_connections,$(field "$result" duration_s),$(field "$result" requests),$(field "$result" errors),$(field "$result" throughput),$(field "$result" p50_ms),$(field "$result" p99_ms),$(field "$result" p999_ms),$load" >>"$csv"
}

# ---------------------------------------------------------------------------------------------
# Reports

# Writes $ratio_csv from $csv: raftkv's throughput and p99 over etcd's, per point.
write_ratios() {
    awk -F, -v OFS=, '
        NR == 1 { print "workload,connections,raftkv_rps,etcd_rps,throughput_ratio,raftkv_p99_ms,etcd_p99_ms,p99_ratio,raftkv_errors,etcd_errors"; next }
        { key = $2 "," $4; rps[$1, key] = $8; p99[$1, key] = $10; errors[$1, key] = $7
          if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
        END {
            for (i = 1; i <= n; i++) {
                k = order[i]
                if (!(("raftkv", k) in rps) || !(("etcd", k) in rps)) continue
                print k, rps["raftkv", k], rps["etcd", k],
                    (rps["etcd", k] > 0 ? sprintf("%.2f", rps["raftkv", k] / rps["etcd", k]) : "inf"),
                    p99["raftkv", k], p99["etcd", k],
                    (p99["etcd", k] > 0 ? sprintf("%.2f", p99["raftkv", k] / p99["etcd", k]) : "inf"),
                    errors["raftkv", k], errors["etcd", k]
            }
        }' "$csv" >"$ratio_csv"
}

# Prints the comparison as a table, one line per workload and connection count.
print_table() {
    awk -F, '
        NR == 1 { next }
        { printf "%-10s %5d   %9.0f %9.0f %6s   %9.2f %9.2f %6s   %7d %7d\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }
        ' "$ratio_csv" | {
        printf '%-10s %5s   %9s %9s %6s   %9s %9s %6s   %7s %7s\n' "" "" raftkv etcd "" raftkv etcd "" raftkv etcd
        printf '%-10s %5s   %9s %9s %6s   %9s %9s %6s   %7s %7s\n' workload conns "req/s" "req/s" ratio \
            "p99 ms" "p99 ms" ratio errors errors
        cat
    }
}

# The one-connection write target's floor, one fdatasync plus one loopback round trip, measured
# by raftkv-loadgen --baseline next to the data directories while both clusters are idle. Sets
# $baseline to its BASELINE line, or to nothing with --load wrk (no raftkv-loadgen is built).
measure_baseline() {
    baseline=""
    [[ $load == native ]] || return 0
    baseline=$("$loadgen" --baseline "$work" 1000 | grep '^BASELINE ') || fail "raftkv-loadgen --baseline failed"
    echo "floor of a write: fdatasync p50 $(field "$baseline" fsync_p50_ms) ms (alone, on this disk)," \
        "loopback round trip p50 $(field "$baseline" rtt_p50_ms) ms"
}

# Compares raftkv's one-connection writes with that floor: the target is at most twice it.
print_single_connection_writes() {
    local p50 floor where="the leader"
    [[ -n $baseline ]] || return 0
    p50=$(awk -F, '$1 == "raftkv" && $2 == "write" && $4 == 1 { print $9 }' "$csv")
    [[ -n $p50 ]] || return 0
    [[ $target == leader ]] || where="a follower, which hands them to the leader"
    floor=$(awk -v f="$(field "$baseline" fsync_p50_ms)" -v r="$(field "$baseline" rtt_p50_ms)" \
        'BEGIN { printf "%.3f", f + r }')
    echo "one connection, sequential writes (to $where): raftkv p50 $p50 ms; one fdatasync" \
        "($(field "$baseline" fsync_p50_ms) ms, alone) + one loopback round trip ($(field "$baseline" rtt_p50_ms) ms)" \
        "= $floor ms; $(awk -v a="$p50" -v b="$floor" 'BEGIN { printf "%.1f", a / b }')x that (target: 2x)"
}

machine_description() {
    if [[ -n $commit ]]; then
        echo "commit: $commit (built from the commit alone, with --commit)"
    elif [[ -n ${RAFTKV_SERVER:-} ]]; then
        echo "commit: unknown (RAFTKV_SERVER given); HEAD is $(git -C "$repo" rev-parse --short HEAD)"
    else
        echo "commit: $(git -C "$repo" rev-parse --short HEAD)$(
            [[ -z $(git -C "$repo" status --porcelain -- include reference-server) ]] ||
                echo ", with uncommitted changes in include/ or reference-server/ in the working tree")"
    fi
    echo "server: $server${raftkv_flags:+ $raftkv_flags}"
    echo "etcd: $(etcd --version | head -n 1)"
    if [[ $load == native ]]; then
        echo "load generator: raftkv-loadgen ($loadgen), one thread, the same for both systems"
    else
        echo "load generator: $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2) with bench/wrk/*.lua, the same for both systems"
    fi
    echo "host: $(hostname -s), $(nproc) CPUs: $(lscpu | awk -F': *' '/^Model name/ {print $2}'), kernel $(uname -r)"
    echo "disk: $(df -h --output=source,fstype,size "$bench" | tail -n 1 | tr -s ' ')"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before the run"
}

# ---------------------------------------------------------------------------------------------
# Soak: memory under a long write load

soak_run() {
    local soak_csv=$work/$stamp-soak.csv out=$work/soak.out n rss elapsed=0 started nodes
    local load_threads load_connections load_seconds=$soak
    plan_load 64
    nodes=$(target_nodes raftkv "$target")
    echo "soak: $soak s of writes to raftkv at $load_connections connections; RSS every 10 s"
    echo "elapsed_s,node,rss_kib,data_dir_kib" >"$soak_csv"
    run_load raftkv write "$nodes" >"$out" 2>&1 &
    load_pid=$!
    started=$SECONDS
    while true; do
        for n in 1 2 3; do
            rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${raftkv_pid[n]}/status")
            echo "$elapsed,$n,$rss,$(du -sk "$work/raftkv/$n" | cut -f1)" >>"$soak_csv"
        done
        kill -0 "$load_pid" 2>/dev/null || break
        sleep 10
        elapsed=$((SECONDS - started))
    done
    wait "$load_pid" || true
    load_pid=""
    grep '^BENCH' "$out" || {
        cat "$out" >&2
        fail "no result from $load"
    }
    awk -F, 'NR > 1 { if (!($2 in first)) first[$2] = $3; last[$2] = $3; if ($3 > max[$2]) max[$2] = $3 }
        END { for (n = 1; n <= 3; n++) printf "node %d RSS: %d MiB at the start, %d MiB at most, %d MiB at the end\n", n, first[n] / 1024, max[n] / 1024, last[n] / 1024 }' "$soak_csv"
    cp "$soak_csv" "$results/"
    echo "samples: $results/$stamp-soak.csv"
}

# ---------------------------------------------------------------------------------------------
# Main

install_missing_tools
build_server
build_loadgen

# Results are written in the work directory and copied to bench/results/ once complete.
mkdir -p "$bench/.work" "$bench/results"
work=$(mktemp -d "$bench/.work/run.XXXXXX")
results=$bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)
csv=$work/$stamp.csv
ratio_csv=$work/$stamp-ratio.csv

start_raftkv
if ((soak > 0)); then
    soak_run
    exit 0
fi
start_etcd

machine_description >"$work/machine.txt"
cat "$work/machine.txt"
echo "$csv_header" >"$csv"

needs_prefill=0
[[ ,$workloads, != *,read* && ,$workloads, != *,mixed,* ]] || needs_prefill=1
if ((needs_prefill)); then
    prefill raftkv
    prefill etcd
fi
measure_baseline

# Points alternate between the systems so that a slow spell of the shared machine hits both.
for workload in "${workload_list[@]}"; do
    for c in "${connection_list[@]}"; do
        measure raftkv "$workload" "$c"
        measure etcd "$workload" "$c"
    done
done

write_ratios
{
    echo "raftkv vs etcd, $(date -u '+%Y-%m-%d %H:%M UTC'), target $target, load $load, ${duration} s per point, $value_bytes-byte values, $key_count keys"
    cat "$work/machine.txt"
    [[ -z $baseline ]] || echo "baseline: ${baseline#BASELINE }"
    echo
    print_table
    echo
    print_single_connection_writes
} >"$work/$stamp.txt"
cp "$csv" "$ratio_csv" "$work/$stamp.txt" "$results/"
chart=$("$bench/plot.sh" "$results/$stamp.csv")
echo
cat "$results/$stamp.txt"
echo
echo "results: bench/results/$stamp{.csv,-ratio.csv,.txt} and the chart bench/results/${chart##*/}"
