-- wrk script, workload "read": linearizable reads of random keys (prefill first).
-- Configured through the environment; see common.lua. Used by bench/run.sh.
workload = "read"
dofile((string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "") .. "common.lua")
