-- wrk script, workload "read-lease": raftkv's lease reads (?consistency=lease) of random keys;
-- etcd, which has no lease reads, gets its linearizable range (prefill first). Configured
-- through the environment; see common.lua. Used by bench/run.sh.
workload = "read"
read_kind = "lease"
dofile((string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "") .. "common.lua")
