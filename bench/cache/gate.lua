-- bench/cache/gate.lua -- the classification gate with a verdict cache,
-- written for OpenResty's lua-nginx-module: the benchmark's point of
-- comparison for ngx_http_classify_module's verdict cache (bench/cache/run).
--
-- It does the module's job for the benchmark's workload, the way a Lua
-- gateway would: read the body, parse it with cjson (query = the last user
-- message, context = the user and assistant messages before it), look each
-- classifier's verdict up in a lua_shared_dict under the same key as the
-- module (the classifier's identity, the query, its last-k slice; the dict
-- compares keys whole), call the misses in parallel with
-- ngx.location.capture_multi() (which waits for all of them: Lua has no
-- way to abort a subrequest), store the answered verdicts, resolve by
-- priority, then ngx.exec() to the generation or answer with the reply as
-- chat.completion.chunk events.  Errors fail open.  $cls_time is the
-- decision time (from the body read to the decision, in ms), $cls_results
-- each classifier's verdict, marked "(cached)", for the access log.

local cjson = require "cjson.safe"
local ffi = require "ffi"

ffi.cdef[[
struct bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct bench_timespec *tp);
]]

local ts = ffi.new("struct bench_timespec")

local function now_us()
    ffi.C.clock_gettime(1, ts)                  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local dict = ngx.shared.verdicts
local VALID = 600                               -- seconds, as the module's 10m
local MAX_KEY = 65535                           -- lua_shared_dict's limit

local positive = { yes = true, ["true"] = true }

local classifiers = {
    { name = "c50", uri = "/_lcls/c50", model = "bench", context = 6,
      prompt = "Answer Yes if the question is off-topic, else No.",
      reply = "I can only help with on-topic questions." },
    { name = "c100", uri = "/_lcls/c100", model = "bench", context = 2,
      prompt = "Answer Yes if the question asks for a ruling, else No.",
      reply = "Please ask a qualified scholar." },
}

-- the identity: every setting that shapes the call
for _, cl in ipairs(classifiers) do
    cl.id = ngx.sha1_bin(table.concat({ cl.name, cl.model, cl.prompt,
                                        cl.context, 5, "true yes", cl.uri },
                                      "\0"))
end

local M = {}

local function text(content)
    if type(content) == "string" then
        return content
    end
    if type(content) ~= "table" then
        return nil
    end
    local t = {}
    for _, part in ipairs(content) do
        if type(part) == "table" and part.type == "text"
           and type(part.text) == "string"
        then
            t[#t + 1] = part.text
        end
    end
    return table.concat(t)
end

local function parse(body)
    local req = cjson.decode(body)
    if type(req) ~= "table" or type(req.messages) ~= "table" then
        return nil
    end

    local msgs, last = req.messages, nil
    for i = #msgs, 1, -1 do
        if type(msgs[i]) == "table" and msgs[i].role == "user" then
            last = i
            break
        end
    end
    if not last then
        return nil
    end

    local query = text(msgs[last].content)
    if not query or query == "" then
        return nil
    end

    local context = {}
    for i = 1, last - 1 do
        local m = msgs[i]
        if type(m) == "table" and (m.role == "user" or m.role == "assistant")
        then
            local c = text(m.content)
            if c then
                context[#context + 1] = { role = m.role, content = c }
            end
        end
    end

    return query, context, req
end

local function slice(context, k)
    local s = {}
    for i = math.max(1, #context - k + 1), #context do
        s[#s + 1] = context[i]
    end
    return s
end

-- the whole key, each text after its length
local function key_of(cl, query, s)
    local parts = { cl.id, #query, query }
    for _, m in ipairs(s) do
        parts[#parts + 1] = #m.role
        parts[#parts + 1] = m.role
        parts[#parts + 1] = #m.content
        parts[#parts + 1] = m.content
    end
    return table.concat(parts, "\0")
end

-- 1 positive, 0 negative, nil an error
local function verdict_of(res)
    if res.status ~= 200 then
        return nil
    end
    local a = cjson.decode(res.body)
    local c = type(a) == "table" and type(a.choices) == "table"
              and type(a.choices[1]) == "table"
              and type(a.choices[1].message) == "table"
              and a.choices[1].message.content
    if type(c) ~= "string" then
        return nil
    end
    local w = c:match("^%s*(%S+)")
    if not w then
        return nil
    end
    w = w:gsub("^%W+", "")
    w = w:gsub("%W+$", "")
    if w == "" then
        return nil
    end
    return positive[w:lower()] and 1 or 0
end

local function reply(req, cl)
    local id = "chatcmpl-lua-" .. ngx.var.connection .. "-"
               .. ngx.var.connection_requests
    local function event(delta, finish)
        return "data: " .. cjson.encode({
            id = id, object = "chat.completion.chunk", created = ngx.time(),
            model = req.model or "bench",
            choices = { { index = 0, delta = delta,
                          finish_reason = finish or cjson.null } },
        }) .. "\n\n"
    end
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["X-Classify-Verdict"] = cl.name
    ngx.print(event({ role = "assistant" }), event({ content = cl.reply }),
              event(setmetatable({}, cjson.empty_table_mt), "stop"),
              "data: [DONE]\n\n")
end

function M.run()
    if ngx.req.get_method() ~= "POST" then
        return ngx.exit(405)
    end

    ngx.req.read_body()
    local body = ngx.req.get_body_data()     -- client_body_buffer_size 64k

    local t0 = now_us()
    local query, context, req = parse(body or "")
    if not query then
        ngx.status = 400
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"error":{"message":"no query","type":"invalid_request_error","code":400}}')
        return
    end

    local verdicts, cached, keys = {}, {}, {}
    for i, cl in ipairs(classifiers) do
        keys[i] = key_of(cl, query, slice(context, cl.context))
        local v = dict:get(keys[i])
        if v then
            verdicts[i] = v
            cached[i] = true
        end
    end

    -- the calls that can still change the answer: the misses listed
    -- before the first cached positive
    local calls, idx = {}, {}
    for i, cl in ipairs(classifiers) do
        if verdicts[i] == 1 then
            break
        end
        if verdicts[i] == nil then
            local messages = { { role = "system", content = cl.prompt } }
            for _, m in ipairs(slice(context, cl.context)) do
                messages[#messages + 1] = m
            end
            messages[#messages + 1] = { role = "user", content = query }
            calls[#calls + 1] = { cl.uri, {
                method = ngx.HTTP_POST,
                body = cjson.encode({ model = cl.model, temperature = 0,
                                      max_tokens = 5, messages = messages }),
            } }
            idx[#idx + 1] = i
        end
    end

    if #calls > 0 then
        local res = { ngx.location.capture_multi(calls) }
        for k, i in ipairs(idx) do
            local v = verdict_of(res[k])
            if v then
                if #keys[i] <= MAX_KEY then
                    dict:set(keys[i], v, VALID)
                end
                verdicts[i] = v
            else
                verdicts[i] = 0                 -- on_error pass
            end
        end
    end

    local winner, results = nil, {}
    for i, cl in ipairs(classifiers) do
        local v = verdicts[i]
        results[i] = cl.name .. ":" .. (v == nil and "skipped"
                     or (v == 1 and "positive" or "negative")
                        .. (cached[i] and "(cached)" or ""))
        if v == 1 and not winner then
            winner = cl
        end
    end

    ngx.var.cls_time = string.format("%.3f", (now_us() - t0) / 1000)
    ngx.var.cls_results = table.concat(results, ",")

    if not winner then
        return ngx.exec("@gen")
    end

    return reply(req, winner)
end

return M
