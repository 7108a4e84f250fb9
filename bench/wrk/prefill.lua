-- wrk script, workload "prefill": write every key once, each thread its own slice, then stop.
-- Configured through the environment; see common.lua. Used by bench/run.sh.
workload = "prefill"
dofile((string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "") .. "common.lua")
