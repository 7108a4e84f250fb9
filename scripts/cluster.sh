#!/usr/bin/env bash
# Starts, stops or shows a local three-node raftkv cluster on loopback.
#
#   scripts/cluster.sh start  [--dir DIR] [-- FLAG...]   build the release preset if needed, start
#                                                       nodes 1-3, each with the extra FLAGs
#   scripts/cluster.sh stop   [--dir DIR]   stop them (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status [--dir DIR]   show each node's process and /status
#
# Node N serves HTTP on 127.0.0.1:808N and Raft on 127.0.0.1:908N, keeps its data in DIR/N,
# its pid in DIR/N.pid and its log in DIR/N.log. DIR defaults to ./raftkv-cluster (relative
# to the current directory). Starting a running node, or stopping a stopped one, does nothing.
# RAFTKV_SERVER=path/to/raftkv-server runs that binary instead of building the release preset.
#
#   scripts/cluster.sh start -- --snapshot-entries 200 --snapshot-catchup-entries 50
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
server=${RAFTKV_SERVER:-$repo/build/release/reference-server/raftkv-server}
nodes=(1 2 3)
peers=1=127.0.0.1:9081,2=127.0.0.1:9082,3=127.0.0.1:9083

usage() {
    echo "usage: $0 start|stop|status [--dir DIR] [-- raftkv-server flags, for start]" >&2
    exit 2
}

(($# >= 1)) || usage
command=$1
shift
dir=raftkv-cluster
flags=()
while (($# > 0)); do
    case $1 in
    --)
        [[ $command == start ]] || usage
        shift
        flags=("$@")
        break
        ;;
    --dir)
        (($# >= 2)) || usage
        dir=$2
        shift 2
        ;;
    --dir=*)
        dir=${1#--dir=}
        shift
        ;;
    *) usage ;;
    esac
done
[[ -n "$dir" ]] || usage
dir=$(realpath -m "$dir")

# The pid of node $1 if it is running, else nothing.
running_pid() {
    local pid_file=$dir/$1.pid pid
    [[ -f "$pid_file" ]] || return 0
    pid=$(<"$pid_file")
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        [[ "$(ps -p "$pid" -o comm= 2>/dev/null)" == raftkv-server ]]; then
        echo "$pid"
    fi
}

build() {
    [[ -z "${RAFTKV_SERVER:-}" ]] || return 0
    (
        cd "$repo"
        ./scripts/install-deps.sh
        cmake --preset release >/dev/null
        cmake --build --preset release --target raftkv-server
    )
}

start_node() {
    local n=$1
    if [[ -n "$(running_pid "$n")" ]]; then
        echo "node $n: already running (pid $(running_pid "$n"))"
        return
    fi
    mkdir -p "$dir/$n"
    nohup "$server" --id "$n" --data-dir "$dir/$n" --http "127.0.0.1:808$n" --raft "127.0.0.1:908$n" \
        --peers "$peers" "${flags[@]}" >>"$dir/$n.log" 2>&1 </dev/null &
    echo $! >"$dir/$n.pid"
    echo "node $n: started (pid $!), http 127.0.0.1:808$n, log $dir/$n.log"
}

# Waits until every node answers /health with 200 (it knows a leader), up to 20 s.
wait_healthy() {
    local deadline=$((SECONDS + 20)) n healthy
    while ((SECONDS < deadline)); do
        healthy=0
        for n in "${nodes[@]}"; do
            if [[ -z "$(running_pid "$n")" ]]; then
                echo "node $n exited; the end of $dir/$n.log:" >&2
                tail -n 5 "$dir/$n.log" >&2
                return 1
            fi
            if curl -fsS -m 1 "http://127.0.0.1:808$n/health" >/dev/null 2>&1; then
                healthy=$((healthy + 1))
            fi
        done
        if ((healthy == ${#nodes[@]})); then
            echo "cluster ready: try curl -X PUT http://127.0.0.1:8081/kv/hello -d '{\"value\": \"world\"}'"
            return 0
        fi
        sleep 0.2
    done
    echo "the cluster has no leader after 20 s; see $dir/*.log" >&2
    return 1
}

stop_node() {
    local n=$1 pid deadline
    pid=$(running_pid "$n")
    if [[ -z "$pid" ]]; then
        echo "node $n: not running"
        rm -f "$dir/$n.pid"
        return
    fi
    kill -TERM "$pid"
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        echo "node $n: killed (pid $pid did not stop within 10 s)"
    else
        echo "node $n: stopped"
    fi
    rm -f "$dir/$n.pid"
}

show_node() {
    local n=$1 pid status
    pid=$(running_pid "$n")
    if [[ -z "$pid" ]]; then
        echo "node $n: not running"
        return 1
    fi
    status=$(curl -sS -m 2 "http://127.0.0.1:808$n/status" 2>&1) || status="no answer: $status"
    echo "node $n: pid $pid, http 127.0.0.1:808$n: $status"
}

case $command in
start)
    build
    mkdir -p "$dir"
    for n in "${nodes[@]}"; do
        start_node "$n"
    done
    wait_healthy
    ;;
stop)
    for n in "${nodes[@]}"; do
        stop_node "$n"
    done
    ;;
status)
    all=0
    for n in "${nodes[@]}"; do
        show_node "$n" || all=1
    done
    exit $all
    ;;
*) usage ;;
esac
