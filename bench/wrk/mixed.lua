-- wrk script, workload "mixed": 90% linearizable reads, 10% writes, random keys (prefill first).
-- Configured through the environment; see common.lua. Used by bench/run.sh.
workload = "mixed"
dofile((string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "") .. "common.lua")
