-- wrk script, workload "read-stale": reads of random keys each node answers from its own state,
-- possibly behind: raftkv's ?consistency=stale, etcd's serializable range (prefill first).
-- Configured through the environment; see common.lua. Used by bench/run.sh.
workload = "read"
read_kind = "stale"
dofile((string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "") .. "common.lua")
