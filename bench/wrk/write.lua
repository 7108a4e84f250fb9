-- wrk script, workload "write": random 128-byte writes over the key space.
-- Configured through the environment; see common.lua. Used by bench/run.sh.
workload = "write"
dofile((string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "") .. "common.lua")
