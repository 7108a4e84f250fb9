-- Shared by write.lua, read.lua, mixed.lua and prefill.lua: each sets the global `workload`
-- and loads this file. bench/run.sh configures it through the environment:
--
--   BENCH_SYSTEM        raftkv or etcd: which HTTP API to speak
--   BENCH_NODES         host:port,host:port,...: wrk thread i talks to node ((i-1) mod n)+1
--   BENCH_THREADS       wrk's -t (prefill splits the key space between the threads)
--   BENCH_KEYS          size of the key space (default 100000); keys are "k00000".."k99999"
--   BENCH_VALUE_BYTES   value size in bytes (default 128)
--   BENCH_READ_PERCENT  share of reads in the mixed workload (default 90)
--
-- Every response that is not 2xx counts as an error, and so does a read that finds no value
-- (raftkv answers 404; etcd answers 200 without "kvs", so the read workload checks the body).
-- done() prints one machine-readable line, starting with "BENCH ", which run.sh parses.

local system = os.getenv("BENCH_SYSTEM") or "raftkv"
local nodes = {}
for node in string.gmatch(os.getenv("BENCH_NODES") or "127.0.0.1:8081", "[^,]+") do
    nodes[#nodes + 1] = node
end
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")
local key_count = tonumber(os.getenv("BENCH_KEYS") or "100000")
local value_bytes = tonumber(os.getenv("BENCH_VALUE_BYTES") or "128")
local read_percent = tonumber(os.getenv("BENCH_READ_PERCENT") or "90")

assert(system == "raftkv" or system == "etcd", "BENCH_SYSTEM must be raftkv or etcd")
assert(value_bytes % 3 == 2, "BENCH_VALUE_BYTES must be 2 mod 3 (128 is) for the base64 trick below")

---------------------------------------------------------------------------------------------
-- Setup and done run in one Lua state; each thread runs in a state of its own.

local threads = {}

function setup(thread)
    local index = #threads + 1
    local host, port = string.match(nodes[(index - 1) % #nodes + 1], "^(.+):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
    thread:set("thread_index", index)
    threads[index] = thread
end

function done(summary, latency, requests)
    local non2xx, missing, sample = 0, 0, nil
    for _, thread in ipairs(threads) do
        non2xx = non2xx + thread:get("non2xx")
        missing = missing + thread:get("missing")
        sample = sample or thread:get("error_sample")
    end
    local e = summary.errors
    local socket_errors = e.connect + e.read + e.write + e.timeout
    local seconds = summary.duration / 1e6
    local ok = summary.requests - non2xx - missing
    if sample then
        io.write("BENCH_ERROR_SAMPLE ", sample, "\n")
    end
    if workload == "prefill" then
        for i, thread in ipairs(threads) do
            io.write(string.format("BENCH_PREFILL thread %d: %d of %d writes answered\n", i,
                thread:get("prefill_acked"), thread:get("prefill_size")))
        end
    end
    io.write(string.format(
        "BENCH requests=%d errors=%d non2xx=%d missing=%d socket_errors=%d timeouts=%d " ..
        "duration_s=%.3f throughput=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
        summary.requests, non2xx + missing + socket_errors, non2xx, missing, socket_errors,
        e.timeout, seconds, ok / seconds, latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end

---------------------------------------------------------------------------------------------
-- The running phase: one state per thread.

non2xx, missing, error_sample = 0, 0, nil

local base64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = string.byte(s, i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local d = {math.floor(n / 262144), math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64}
        for j = 1, 4 do
            out[#out + 1] = string.sub(base64_alphabet, d[j] + 1, d[j] + 1)
        end
        if c == nil then out[#out] = "=" end
        if b == nil then out[#out - 1] = "=" end
    end
    return table.concat(out)
end

local function random_string(alphabet, length)
    local chars = {}
    for i = 1, length do
        local k = math.random(#alphabet)
        chars[i] = string.sub(alphabet, k, k)
    end
    return table.concat(chars)
end

-- Values are cut at a random offset from a 256 KiB random string, so that consecutive values
-- differ and neither LevelDB's Snappy nor anything else can compress them much.
local pool_length = 256 * 1024
local pool, key_paths, key_b64

-- raftkv: the value is value_bytes characters of [A-Za-z0-9], sent as a JSON string.
-- etcd: the value is value_bytes random bytes, sent base64-encoded; for 2 mod 3 bytes that is
-- (value_bytes+1)/3*4 characters ending in "=", whose last data character carries two zero bits.
local raftkv_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local etcd_b64_length = (value_bytes + 1) / 3 * 4
local etcd_last_chars = "AEIMQUYcgkosw048" -- base64 digits whose two low bits are zero

local function random_value()
    if system == "raftkv" then
        local offset = math.random(pool_length - value_bytes)
        return string.sub(pool, offset, offset + value_bytes - 1)
    end
    local offset = math.random(pool_length - etcd_b64_length)
    local last = math.random(#etcd_last_chars)
    return string.sub(pool, offset, offset + etcd_b64_length - 3) ..
        string.sub(etcd_last_chars, last, last) .. "="
end

local json_headers = {["Content-Type"] = "application/json"}

local function write_request(key)
    if system == "raftkv" then
        return wrk.format("PUT", key_paths[key], json_headers, '{"value":"' .. random_value() .. '"}')
    end
    return wrk.format("POST", "/v3/kv/put", json_headers,
        '{"key":"' .. key_b64[key] .. '","value":"' .. random_value() .. '"}')
end

-- How reads ask (set by read-lease.lua and read-stale.lua): "linearizable", "lease" (raftkv's
-- ?consistency=lease; etcd has no lease reads, so its linearizable range) or "stale" (raftkv's
-- ?consistency=stale, etcd's "serializable": true).
read_kind = read_kind or "linearizable"
local raftkv_read_query = ({lease = "?consistency=lease", stale = "?consistency=stale"})[read_kind] or ""
local etcd_read_extra = read_kind == "stale" and ',"serializable":true' or ""

local function read_request(key)
    if system == "raftkv" then
        return wrk.format("GET", key_paths[key] .. raftkv_read_query)
    end
    return wrk.format("POST", "/v3/kv/range", json_headers, '{"key":"' .. key_b64[key] .. '"' .. etcd_read_extra .. '}')
end

local function count_response(status, body, expect_value)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
    elseif expect_value and system == "etcd" and not string.find(body, '"kvs"', 1, true) then
        missing = missing + 1
    else
        return
    end
    error_sample = error_sample or (status .. " " .. string.sub(body or "", 1, 200))
end

---------------------------------------------------------------------------------------------
-- Workloads

-- Globals, so that done() can read them with thread:get().
prefill_next, prefill_end, prefill_acked, prefill_size = 0, 0, 0, 0

function init(args)
    math.randomseed(os.time() * 1000 + (thread_index or 0) * 7919)
    pool = random_string(system == "raftkv" and raftkv_alphabet or base64_alphabet, pool_length)
    key_paths, key_b64 = {}, {}
    for k = 0, key_count - 1 do
        local key = string.format("k%05d", k)
        if system == "raftkv" then
            key_paths[k] = "/kv/" .. key
        else
            key_b64[k] = base64(key)
        end
    end
    if workload == "prefill" then
        -- Thread i writes its own contiguous slice of the key space, once, in order.
        prefill_next = math.floor((thread_index - 1) * key_count / thread_count)
        prefill_end = math.floor(thread_index * key_count / thread_count)
        prefill_size = prefill_end - prefill_next
        prefill_acked = 0
        -- wrk calls request() once on the first thread's state before the run, to check the
        -- request, and never sends it; answering that call with a status request keeps the
        -- slice's first key from being lost (and costs one harmless request if a wrk sends it).
        unsent_check = thread_index == 1
    end
end

if workload == "write" then
    function request() return write_request(math.random(0, key_count - 1)) end
    function response(status, headers, body) count_response(status, body, false) end
elseif workload == "read" then
    function request() return read_request(math.random(0, key_count - 1)) end
    function response(status, headers, body) count_response(status, body, true) end
elseif workload == "mixed" then
    function request()
        local key = math.random(0, key_count - 1)
        if math.random(100) <= read_percent then return read_request(key) end
        return write_request(key)
    end
    -- Reads and writes cannot be told apart here, and etcd answers both 200: only raftkv's
    -- 404 shows a missing key in this workload.
    function response(status, headers, body) count_response(status, body, false) end
elseif workload == "prefill" then
    -- Once a thread has sent its slice, its connections send cheap status requests (recognised
    -- by their bodies) until every write in the slice is answered; then the thread stops and
    -- prints PREFILL_THREAD_DONE, and run.sh ends wrk once every thread has.
    local filler = {
        raftkv = {method = "GET", path = "/health", body = nil, marker = '"status"'},
        etcd = {method = "POST", path = "/v3/maintenance/status", body = "{}", marker = '"version"'},
    }
    filler = filler[system]

    function request()
        if unsent_check then
            unsent_check = false
            return wrk.format(filler.method, filler.path, json_headers, filler.body)
        end
        if prefill_next < prefill_end then
            prefill_next = prefill_next + 1
            return write_request(prefill_next - 1)
        end
        return wrk.format(filler.method, filler.path, json_headers, filler.body)
    end

    -- Status requests wait 20 ms each, so that they take little from the writes still running.
    function delay()
        return prefill_next < prefill_end and 0 or 20
    end

    function response(status, headers, body)
        if status >= 200 and status <= 299 and string.find(body, filler.marker, 1, true) then
            return
        end
        count_response(status, body, false)
        prefill_acked = prefill_acked + 1
        if prefill_acked == prefill_size then
            io.write("PREFILL_THREAD_DONE\n")
            io.stdout:flush()
            wrk.thread:stop()
        end
    end
else
    error("unknown workload: " .. tostring(workload))
end
