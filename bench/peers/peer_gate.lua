-- peer_gate.lua -- the benchmarks' OpenResty peer: the module's gate
-- written the way an OpenResty user would, for the comparisons of
-- bench/RESULTS.md, bench/CACHE-RESULTS.md and bench/SPECULATE-RESULTS.md.
-- Same job, same classifier locations, same mock:
--
--   read the body (ngx.req.read_body), take the query (the newest user
--   message) and the context (the user and assistant messages before it,
--   or, with Redis configured, the last "context" messages of the Redis
--   list chat:<X-Session-Id>, one LRANGE over a cosocket), look each
--   classifier's verdict up in the location's verdict cache when it has
--   one (a lua_shared_dict, under the whole key: the classifier's
--   identity, the query, its context slice), fire the classifiers that can
--   still change the answer at once (one subrequest each,
--   ngx.location.capture_multi: it returns when ALL have answered, there
--   is no abort), store their verdicts, decide by priority (the first
--   listed positive wins; an error counts as negative, on_error pass),
--   then either answer with the classifier's canned reply in the client's
--   wire format or pass the request, body intact, to the generation
--   (ngx.exec to a named location).
--
-- nginx.conf, per gated location:
--   set $peer_classify "c50 c100";     the classifiers, in priority order
--   set $peer_cache    "verdicts";     a lua_shared_dict, or "": no cache
--   content_by_lua_block { require("peer_gate").run() }
-- in the server:
--   set $peer_time     "-";            written here: decision ms
--   set $peer_verdict  "-";            the verdict (name, or pass)
--   set $peer_results  "-";            name:outcome,... ("(cached)" marks
--                                      a verdict from the cache)
-- and once, in http{}:
--   init_by_lua_block { require("peer_gate").init("/path/peers.json") }
--
-- peers.json (written by bench/lib.sh; njs imports the same object):
--   {"redis": {"host", "port", "timeout_ms"} (optional: no Redis read
--    without it), "generation": "@gen", "cache_valid": seconds,
--    "classifiers": {"<name>": {"pass", "model", "prompt", "context",
--                               "max_tokens", "positive": [...],
--                               "reply"}}}
--
-- cache_serve() is the njs peer's verdict cache (njs 0.7.9 has no shared
-- memory): a location's content handler over the same dicts.

local cjson = require "cjson.safe"
local ffi = require "ffi"
local redis = require "peer_redis"

local ngx = ngx
local concat = table.concat
local format, gmatch, lower, match = string.format, string.gmatch,
                                     string.lower, string.match

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } peer_timespec_t;
int clock_gettime(int clk_id, peer_timespec_t *tp);
]]

local CLOCK_MONOTONIC = 1
local MAX_KEY = 65535           -- lua_shared_dict's limit
local ts = ffi.new("peer_timespec_t")

-- ngx.now() is the cached millisecond clock: the decision is timed on
-- CLOCK_MONOTONIC, as the module times $classify_time
local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local conf
local lists = {}        -- "$peer_classify" -> {classifiers..., context = k}

local _M = {}

function _M.init(file)
    local f = assert(io.open(file))
    local err
    conf, err = cjson.decode(f:read("*a"))
    f:close()
    assert(conf, err)

    for name, cl in pairs(conf.classifiers) do
        cl.name = name
        cl.yes = {}
        for _, w in ipairs(cl.positive) do
            cl.yes[w] = true
        end
        -- the identity in the cache key: every setting that shapes the call
        cl.id = ngx.encode_base64(ngx.sha1_bin(concat({
                    name, cl.model, cl.prompt, cl.context, cl.max_tokens,
                    concat(cl.positive, " "), cl.pass }, "\0")))
    end

    if conf.redis then
        conf.redis.timeout = conf.redis.timeout_ms
    end
end

-- the classifiers of a location, parsed once per worker
local function list_of(names)
    local list = lists[names]
    if list then
        return list
    end

    list = { context = 0 }
    for name in gmatch(names, "%S+") do
        local cl = assert(conf.classifiers[name], name)
        list[#list + 1] = cl
        if cl.context > list.context then
            list.context = cl.context
        end
    end

    lists[names] = list
    return list
end

local function refuse(status, message)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({ error = { message = message,
                                       type = "invalid_request_error" } }))
    -- the status set above stays: exit(200) only ends the output
    return ngx.exit(ngx.HTTP_OK)
end

-- a message's text: a string, or the text parts of an array
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
    return concat(t)
end

-- the newest user message is the query, the user and assistant messages
-- before it the context
local function parse(body)
    local req = cjson.decode(body)
    if type(req) ~= "table" or type(req.messages) ~= "table" then
        return nil, "body is not a chat request"
    end

    local msgs = req.messages
    for i = #msgs, 1, -1 do
        local m = msgs[i]
        if type(m) == "table" and m.role == "user" then
            local query = text(m.content)
            if not query or query == "" then
                return nil, "no query"
            end

            local context = {}
            for j = 1, i - 1 do
                local c = msgs[j]
                local t = type(c) == "table"
                          and (c.role == "user" or c.role == "assistant")
                          and text(c.content)
                if t then
                    context[#context + 1] = { role = c.role, content = t }
                end
            end
            return req, query, context
        end
    end

    return nil, "no user message"
end

local function redis_context(session, k)
    local items, err = redis.lrange(conf.redis.host, conf.redis.port,
                                    "chat:" .. session, "-" .. k, "-1",
                                    conf.redis.timeout)
    if not items then
        -- fail open, as classify_redis_on_error pass
        ngx.log(ngx.ERR, "peer: redis: ", err)
        return nil
    end

    local context = {}
    for _, item in ipairs(items) do
        local m = cjson.decode(item)
        if type(m) == "table" and type(m.role) == "string"
           and type(m.content) == "string"
        then
            context[#context + 1] = { role = m.role, content = m.content }
        end
    end

    return context
end

-- the last k messages of the context
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
        parts[#parts + 1] = #m.role .. "\0" .. m.role
        parts[#parts + 1] = #m.content .. "\0" .. m.content
    end
    return concat(parts, "\0")
end

local function call_body(cl, query, s)
    local msgs = { { role = "system", content = cl.prompt } }
    for _, m in ipairs(s) do
        msgs[#msgs + 1] = m
    end
    msgs[#msgs + 1] = { role = "user", content = query }

    return cjson.encode({ model = cl.model, temperature = 0,
                          max_tokens = cl.max_tokens, messages = msgs })
end

-- positive, negative or error: the first word of the answer's content
local function outcome(cl, res)
    if res.status ~= 200 then
        return "error"
    end

    local a = cjson.decode(res.body)
    local choice = type(a) == "table" and type(a.choices) == "table"
                   and a.choices[1]
    local content = type(choice) == "table" and type(choice.message) == "table"
                    and choice.message.content
    if type(content) ~= "string" then
        return "error"
    end

    local word = match(content, "^[%s%p]*([^%s%p]+)")
    if word and cl.yes[lower(word)] then
        return "positive"
    end

    return "negative"
end

-- the canned reply in the client's wire format, as the module renders it
local function reply(cl, req)
    local model = type(req.model) == "string" and req.model or "classify"
    local id = "chatcmpl-classify-" .. ngx.var.connection .. "-"
               .. ngx.var.connection_requests
    local created = ngx.time()

    ngx.header["X-Classify-Verdict"] = cl.name

    if req.stream == true then
        local head = format('data: {"id":"%s","object":"chat.completion.chunk",'
                            .. '"created":%d,"model":%s,"choices":[{"index":0,'
                            .. '"delta":', id, created, cjson.encode(model))
        ngx.header["Content-Type"] = "text/event-stream"
        ngx.header["Cache-Control"] = "no-cache"
        ngx.print(head, '{"role":"assistant","content":""}',
                  ',"finish_reason":null}]}\n\n',
                  head, '{"content":', cjson.encode(cl.reply), '}',
                  ',"finish_reason":null}]}\n\n',
                  head, '{},"finish_reason":"stop"}]}\n\n',
                  "data: [DONE]\n\n")
        return
    end

    ngx.header["Content-Type"] = "application/json"
    ngx.print(format('{"id":"%s","object":"chat.completion","created":%d,'
                     .. '"model":%s,"choices":[{"index":0,"message":{"role":'
                     .. '"assistant","content":%s},"finish_reason":"stop"}],'
                     .. '"usage":{"prompt_tokens":0,"completion_tokens":0,'
                     .. '"total_tokens":0}}', id, created, cjson.encode(model),
                     cjson.encode(cl.reply)))
end

function _M.run()
    if ngx.req.get_method() ~= "POST" then
        ngx.header["Allow"] = "POST"
        return refuse(ngx.HTTP_NOT_ALLOWED, "method not allowed: use POST")
    end

    ngx.req.read_body()

    local t0 = now_ms()

    -- client_body_buffer_size keeps the bench's bodies in memory
    local body = ngx.req.get_body_data()
    if not body then
        return refuse(ngx.HTTP_BAD_REQUEST, "no body in memory")
    end

    local req, query, context = parse(body)
    if not req then
        return refuse(ngx.HTTP_BAD_REQUEST, query)
    end

    local list = list_of(ngx.var.peer_classify)

    local session = ngx.var.http_x_session_id
    if conf.redis and session and session ~= "" then
        if #session > 128 or match(session, "[^%w%-_.:]") then
            return refuse(ngx.HTTP_BAD_REQUEST, "bad session id")
        end
        context = redis_context(session, list.context) or context
    end

    -- the cached verdicts; the calls that can still change the answer:
    -- the misses listed before the first cached positive
    local dict = ngx.var.peer_cache ~= "" and ngx.shared[ngx.var.peer_cache]
    local outcomes, keys, slices, calls, called = {}, {}, {}, {}, {}
    for i, cl in ipairs(list) do
        slices[i] = slice(context, cl.context)
        if dict then
            keys[i] = key_of(cl, query, slices[i])
            local v = dict:get(keys[i])
            if v then
                outcomes[i] = v .. "(cached)"
                if v == "positive" then
                    break
                end
            end
        end
        if not outcomes[i] then
            calls[#calls + 1] = { cl.pass, {
                method = ngx.HTTP_POST,
                body = call_body(cl, query, slices[i]) } }
            called[#called + 1] = i
        end
    end

    if #calls > 0 then
        local res = { ngx.location.capture_multi(calls) }
        for k, i in ipairs(called) do
            local o = outcome(list[i], res[k])
            outcomes[i] = o
            if dict and o ~= "error" and #keys[i] <= MAX_KEY then
                dict:set(keys[i], o, conf.cache_valid)
            end
        end
    end

    local verdict
    local results = {}
    for i, cl in ipairs(list) do
        local o = outcomes[i] or "skipped"
        results[i] = cl.name .. ":" .. o
        if verdict == nil and match(o, "^positive") then
            verdict = cl
        end
    end

    ngx.var.peer_time = format("%.3f", now_ms() - t0)
    ngx.var.peer_verdict = verdict and verdict.name or "pass"
    ngx.var.peer_results = concat(results, ",")

    if verdict then
        return reply(verdict, req)
    end

    return ngx.exec(conf.generation)
end

-- the njs peer's cache: POST {"dict": name, "get": [key...]} -> [verdict
-- or null...]; {"dict": name, "set": [[key, verdict]...]} -> []
function _M.cache_serve()
    ngx.req.read_body()
    local q = cjson.decode(ngx.req.get_body_data() or "")
    local dict = type(q) == "table" and ngx.shared[q.dict]
    if not dict then
        return ngx.exit(ngx.HTTP_BAD_REQUEST)
    end

    local out = {}
    for i, key in ipairs(q.get or {}) do
        out[i] = dict:get(key) or cjson.null
    end
    for _, kv in ipairs(q.set or {}) do
        if #kv[1] <= MAX_KEY then
            dict:set(kv[1], kv[2], conf.cache_valid)
        end
    end

    ngx.header["Content-Type"] = "application/json"
    ngx.print(#out > 0 and cjson.encode(out) or "[]")
end

return _M
