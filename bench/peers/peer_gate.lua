-- peer_gate.lua -- the benchmark's OpenResty peer: the module's gate
-- written the way an OpenResty user would, for the comparison in
-- bench/RESULTS.md.  Same job, same classifier locations, same mock:
--
--   read the body (ngx.req.read_body), take the query (the newest user
--   message) and the context (the messages before it, or the last
--   "context" messages of the Redis list chat:<X-Session-Id>, one LRANGE
--   over a cosocket), fire every classifier at once (one subrequest each,
--   ngx.location.capture_multi: it returns when ALL have answered, there
--   is no abort), decide by priority (the first listed positive wins; an
--   error counts as negative, on_error pass), then either answer with the
--   classifier's canned reply in the client's wire format or pass the
--   request, body intact, to the generation (ngx.exec to a named location).
--
-- nginx.conf, per gated location:
--   set $peer_classify "c50 c100";     the classifiers, in priority order
--   set $peer_time     "-";            written here: decision ms
--   set $peer_verdict  "-";            the verdict (name, or pass)
--   set $peer_results  "-";            name:outcome,...
--   content_by_lua_block { require("peer_gate").run() }
-- and once, in http{}:
--   init_by_lua_block { require("peer_gate").init("/path/peers.json") }
--
-- peers.json (written by bench/run; njs imports the same object):
--   {"redis": {"host", "port", "timeout_ms"}, "generation": "@gen",
--    "classifiers": {"<name>": {"pass", "model", "prompt", "context",
--                               "max_tokens", "positive": [...],
--                               "reply"}}}

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
    end

    conf.redis.timeout = conf.redis.timeout_ms
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

-- the newest user message is the query, the messages before it the context
local function parse(body)
    local req = cjson.decode(body)
    if type(req) ~= "table" or type(req.messages) ~= "table" then
        return nil, "body is not a chat request"
    end

    local msgs = req.messages
    for i = #msgs, 1, -1 do
        local m = msgs[i]
        if type(m) == "table" and m.role == "user"
           and type(m.content) == "string"
        then
            local context = {}
            for j = 1, i - 1 do
                context[j] = msgs[j]
            end
            return req, m.content, context
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

local function call_body(cl, query, context)
    local msgs = { { role = "system", content = cl.prompt } }
    for i = math.max(1, #context - cl.context + 1), #context do
        msgs[#msgs + 1] = context[i]
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
    if session and session ~= "" then
        if #session > 128 or match(session, "[^%w%-_.:]") then
            return refuse(ngx.HTTP_BAD_REQUEST, "bad session id")
        end
        context = redis_context(session, list.context) or context
    end

    local calls = {}
    for i, cl in ipairs(list) do
        calls[i] = { cl.pass, { method = ngx.HTTP_POST,
                                body = call_body(cl, query, context) } }
    end

    local res = { ngx.location.capture_multi(calls) }

    local verdict
    local results = {}
    for i, cl in ipairs(list) do
        local o = outcome(cl, res[i])
        results[i] = cl.name .. ":" .. o
        if o == "positive" and verdict == nil then
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

return _M
