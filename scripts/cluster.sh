#!/usr/bin/env bash
# Starts, stops, shows, grows or shrinks a local raftkv cluster on loopback.
#
#   scripts/cluster.sh start  [--dir DIR] [-- FLAG...]   build the release preset if needed, start
#                                                       nodes 1-3 (and those added since), each
#                                                       with the extra FLAGs
#   scripts/cluster.sh stop   [--dir DIR]   stop them (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status [--dir DIR]   show each node's process and /status
#   scripts/cluster.sh add ID [--dir DIR] [-- FLAG...]   add node ID (4-9): POST /cluster/members
#                                           as a learner, start it with --join and an empty data
#                                           directory, wait until it caught up, promote it
#   scripts/cluster.sh remove ID [--dir DIR]   DELETE /cluster/members/ID, then stop node ID; its
#                                           data directory is kept aside as DIR/ID.removed-<time>
#
# Grow to five and back: add 4; add 5; remove 5; remove 4. A removed node of 1-3 is not started
# again by start (DIR/ID.removed marks it) until it is added back.
#
# Node N serves HTTP on 127.0.0.1:808N and Raft on 127.0.0.1:908N, keeps its data in DIR/N,
# its pid in DIR/N.pid and its log in DIR/N.log. DIR defaults to ./raftkv-cluster (relative
# to the current directory). Nodes 1-3 read their settings from config/node1.yaml,
# node2.yaml and node3.yaml (all but the data directory; flags after -- override them). Starting a running node, or stopping a stopped one, does nothing.
# RAFTKV_SERVER=path/to/raftkv-server runs that binary instead of building the release preset.
#
#   scripts/cluster.sh start -- --snapshot-entries 200 --snapshot-catchup-entries 50
#
# RAFTKV_SERVER_FLAGS: more raftkv-server flags for every node that start and add start
# (split at spaces; before those after --), so that a node added later gets them too. In
# either, {id} stands for the node's id. The script's own requests (waiting for /health,
# status, adding and removing members) follow the nodes' settings through:
#   RAFTKV_TOKEN             a bearer token (with --auth-tokens: one of the write tokens)
#   RAFTKV_CACERT            the CA of the nodes' HTTPS certificates (with --cert/--key): the
#                            script then speaks https://, and --join gets an https:// URL
#   RAFTKV_CERT, RAFTKV_KEY  a client certificate (with --client-ca)
# A cluster with tokens and TLS everywhere (certificates from scripts/make-certs.sh certs):
#
#   export RAFTKV_SERVER_FLAGS="--auth-tokens $PWD/tokens --cert $PWD/certs/node-{id}.crt
#     --key $PWD/certs/node-{id}.key --forward-ca $PWD/certs/ca.crt
#     --peer-cert $PWD/certs/node-{id}.crt --peer-key $PWD/certs/node-{id}.key
#     --peer-ca $PWD/certs/ca.crt"
#   RAFTKV_TOKEN=$(head -n1 tokens | cut -d' ' -f1) RAFTKV_CACERT=certs/ca.crt scripts/cluster.sh start
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
server=${RAFTKV_SERVER:-$repo/build/release/reference-server/raftkv-server}
nodes=(1 2 3)
read -r -a env_flags <<<"${RAFTKV_SERVER_FLAGS:-}"

# The script's own HTTP requests: curl with the nodes' scheme, TLS files and token.
scheme=http
curl_tls=()
if [[ -n "${RAFTKV_CACERT:-}" ]]; then
    scheme=https
    curl_tls=(--cacert "$RAFTKV_CACERT")
fi
if [[ -n "${RAFTKV_CERT:-}" ]]; then
    curl_tls+=(--cert "$RAFTKV_CERT" --key "${RAFTKV_KEY:?RAFTKV_CERT needs RAFTKV_KEY}")
fi
request() {
    if [[ -n "${RAFTKV_TOKEN:-}" ]]; then # read from a pipe: not in the process list
        curl "${curl_tls[@]}" -H @<(printf 'Authorization: Bearer %s\n' "$RAFTKV_TOKEN") "$@"
    else
        curl "${curl_tls[@]}" "$@"
    fi
}

usage() {
    echo "usage: $0 start|stop|status|add ID|remove ID [--dir DIR] [-- raftkv-server flags, for start and add]" >&2
    exit 2
}

(($# >= 1)) || usage
command=$1
shift
target=
if [[ $command == add || $command == remove ]]; then
    (($# >= 1)) && [[ $1 =~ ^[1-9]$ ]] || usage
    target=$1
    shift
fi
dir=raftkv-cluster
flags=()
while (($# > 0)); do
    case $1 in
    --)
        [[ $command == start || $command == add ]] || usage
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

# Nodes 1-3 unless removed, and every node added since (it has a data directory).
for n in 4 5 6 7 8 9; do
    [[ -d "$dir/$n" ]] && nodes+=("$n")
done
members() {
    local n
    for n in "${nodes[@]}"; do
        [[ -f "$dir/$n.removed" ]] || echo "$n"
    done
}

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
    # Nodes 1-3 bootstrap from config/nodeN.yaml (id, addresses, peers), in their own data
    # directory; a node added later joins (first start: $2 is the --join URL) and afterwards
    # restarts from what its data directory recorded.
    local how=(--config "$repo/config/node$n.yaml" --data-dir "$dir/$n")
    local addresses=(--id "$n" --data-dir "$dir/$n" --http "127.0.0.1:808$n" --raft "127.0.0.1:908$n")
    if [[ -n "${2:-}" ]]; then
        how=("${addresses[@]}" --join "$2")
    elif ((n > 3)) || [[ -f "$dir/$n.joined" ]]; then
        how=("${addresses[@]}")
    fi
    local extra=() f
    for f in "${env_flags[@]}" "${flags[@]}"; do
        extra+=("${f//\{id\}/$n}")
    done
    mkdir -p "$dir/$n"
    nohup "$server" "${how[@]}" "${extra[@]}" >>"$dir/$n.log" 2>&1 </dev/null &
    echo $! >"$dir/$n.pid"
    echo "node $n: started (pid $!), $scheme 127.0.0.1:808$n, log $dir/$n.log"
}

# Waits until every member answers /health with 200 (a linearizable read through it works),
# up to 20 s.
wait_healthy() {
    local deadline=$((SECONDS + 20)) n healthy all
    mapfile -t all < <(members)
    while ((SECONDS < deadline)); do
        healthy=0
        for n in "${all[@]}"; do
            if [[ -z "$(running_pid "$n")" ]]; then
                echo "node $n exited; the end of $dir/$n.log:" >&2
                tail -n 5 "$dir/$n.log" >&2
                return 1
            fi
            if request -fsS -m 1 "$scheme://127.0.0.1:808$n/health" >/dev/null 2>&1; then
                healthy=$((healthy + 1))
            fi
        done
        if ((healthy == ${#all[@]})); then
            echo "cluster ready: try curl -X PUT $scheme://127.0.0.1:8081/kv/hello -d '{\"value\": \"world\"}'"
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
    status=$(request -sS -m 2 "$scheme://127.0.0.1:808$n/status" 2>&1) || status="no answer: $status"
    echo "node $n: pid $pid, $scheme 127.0.0.1:808$n: $status"
}

# The HTTP port of a running member other than $1 that knows a leader, or nothing.
some_member_port() {
    local n
    for n in $(members); do
        [[ "$n" != "$1" && -n "$(running_pid "$n")" ]] || continue
        if request -fsS -m 1 "$scheme://127.0.0.1:808$n/health" >/dev/null 2>&1; then
            echo "808$n"
            return
        fi
    done
}

# Sends a membership request until it is not refused for a change still in progress (409)
# or a leader being elected (503), up to 30 s; prints the answer, fails unless 2xx.
cluster_request() {
    local method=$1 url=$2 body=${3:-} deadline=$((SECONDS + 30)) out code
    while :; do
        out=$(request -sS -m 10 -X "$method" -w '\n%{http_code}' ${body:+-d "$body"} "$url" 2>&1) || true
        code=${out##*$'\n'}
        out=${out%$'\n'*}
        if [[ ! $code =~ ^(409|503|000)$ ]] || ((SECONDS >= deadline)); then
            echo "$method $url: $code $out"
            [[ $code =~ ^2 ]]
            return
        fi
        sleep 0.5
    done
}

add_node() {
    local n=$1 port
    if members | grep -qx "$n"; then
        echo "node $n is already a member" >&2
        return 1
    fi
    port=$(some_member_port "$n")
    [[ -n "$port" ]] || { echo "no running member knows a leader; start the cluster first" >&2; return 1; }
    if [[ -d "$dir/$n" ]]; then # a removed node comes back with an empty data directory
        mv "$dir/$n" "$dir/$n.removed-$(date +%s)"
    fi
    cluster_request POST "$scheme://127.0.0.1:$port/cluster/members" \
        "{\"id\": $n, \"raft\": \"127.0.0.1:908$n\", \"http\": \"127.0.0.1:808$n\", \"learner\": true}"
    rm -f "$dir/$n.removed"
    touch "$dir/$n.joined"
    [[ " ${nodes[*]} " == *" $n "* ]] || nodes+=("$n")
    start_node "$n" "$scheme://127.0.0.1:$port"
    # Promote once the learner hears from the leader; the leader refuses (409) while it is
    # still far behind, and cluster_request retries.
    local deadline=$((SECONDS + 20))
    until request -fsS -m 1 "$scheme://127.0.0.1:808$n/health" >/dev/null 2>&1 || ((SECONDS >= deadline)); do
        sleep 0.2
    done
    cluster_request POST "$scheme://127.0.0.1:$port/cluster/members/$n/promote"
    wait_healthy
}

remove_node() {
    local n=$1 port
    members | grep -qx "$n" || { echo "node $n is not a member" >&2; return 1; }
    port=$(some_member_port "$n")
    [[ -n "$port" ]] || { echo "no other running member knows a leader" >&2; return 1; }
    cluster_request DELETE "$scheme://127.0.0.1:$port/cluster/members/$n"
    stop_node "$n"
    # Its data must not serve again: a removed member comes back only through add (--join).
    if [[ -d "$dir/$n" ]]; then
        mv "$dir/$n" "$dir/$n.removed-$(date +%s)"
    fi
    rm -f "$dir/$n.joined"
    ((n > 3)) || touch "$dir/$n.removed"
}

case $command in
start)
    build
    mkdir -p "$dir"
    for n in $(members); do
        start_node "$n"
    done
    wait_healthy
    ;;
add)
    build
    add_node "$target"
    ;;
remove)
    remove_node "$target"
    ;;
stop)
    for n in "${nodes[@]}"; do
        stop_node "$n"
    done
    ;;
status)
    all=0
    for n in $(members); do
        show_node "$n" || all=1
    done
    exit $all
    ;;
*) usage ;;
esac
