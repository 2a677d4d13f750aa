-- mock.lua -- mock LLM backends for the ngx_http_classify_module test suite.
--
-- Runs in a SEPARATE nginx (Debian's /usr/sbin/nginx + ndk + lua, see
-- mock.conf.in), never inside the nginx under test.  Started per test file by
-- t/lib/Test/Classify/Mock.pm, or by hand with `t/mock/run-mock [PORT]`.
-- Listens on 127.0.0.1:$TEST_NGINX_MOCK_PORT (default 1990).
--
-- Query arguments choose the behaviour, because the module under test builds
-- the POST body itself; a test picks the behaviour per classifier in its
-- proxy_pass URL, e.g.
--   proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=fiqh&verdict=yes&delay=0.4;
--
-- CONTRACT ----------------------------------------------------------------
--
-- Common arguments of the three endpoints:
--   tag=T      record key (default "default")
--   delay=S    seconds (float) before the first byte of the answer (default 0)
--   status=N   answer HTTP status N; a non-2xx N answers a small JSON error
--              {"error":{"message":"mock error N","type":"mock_error","code":N}}
--              (a 2xx N only replaces the status of the normal answer)
--   mode=M     see per endpoint; an unknown mode answers 400 (JSON error)
-- Every endpoint answer carries X-Mock-Tag, X-Mock-Body-Length (bytes of
-- request body received) and X-Mock-Body-Sha1 (hex sha1 of that body).
-- The request body is always read completely first, then abort detection is
-- armed (lua_check_client_abort + ngx.on_abort): if the client (the nginx
-- under test) closes the connection while the mock sleeps (delay, hang, gap)
-- the request ends at once and is recorded with status 499, aborted=true.
--
-- POST /v1/chat/completions   OpenAI-compatible classifier (never streams,
--                             even when the body says "stream": true)
--   verdict=V  assistant content (URL-decoded; default "no")
--   rule=R     (demo) "Yes." when the last user message has one of the
--              words of rule R (offtopic, fiqh), else "No."; overrides V
--   mode=ok      (default) 200 application/json
--                {"id":"chatcmpl-mock","object":"chat.completion","created":<t>,
--                 "model":<request model or "mock">,"choices":[{"index":0,
--                 "message":{"role":"assistant","content":V},"finish_reason":"stop"}],
--                 "usage":{"prompt_tokens":..,"completion_tokens":..,"total_tokens":..}}
--   mode=garbage 200 application/json, body is not JSON
--   mode=empty   200 {"choices":[]}
--   mode=noword  the ok answer with content "???" (or V if verdict= given)
--   mode=hang    sleeps 3600 s (abortable), then 504
--   mode=reset   status line + headers with Content-Length of the full ok
--                answer, only the first half of the body, then the
--                connection is closed
--   mode=big     ok answer whose content is V followed by padding, the body
--                being over 128 KB (size=BYTES of padding, default 140000)
--   mode=close   connection closed without any answer (recorded as 444)
--
-- POST /classify/json         the `json` protocol classifier
--   verdict=true|false (default false) -> 200 {"verdict":true|false}
--   modes as above: garbage (not JSON), empty ({}), noword
--   ({"verdict":"maybe"}), hang, reset, big ({"verdict":..,"pad":"..."} over
--   128 KB), close
--
-- POST /v1/generate           the generation backend (OpenAI streamed chat)
--   chunks=K (default 3), text=STR (split evenly, UTF-8 safe, into K pieces;
--   default pieces "chunk1 ", "chunk2 ", ...), gap=S seconds between pieces
--   (default 0), model from the request body or "mock".
--   200 text/event-stream, each event flushed on its own:
--     data: {"id":"chatcmpl-gen","object":"chat.completion.chunk","created":<t>,
--            "model":M,"choices":[{"index":0,"delta":{"content":PIECE},
--            "finish_reason":null}]}\n\n          (K times, gap between)
--     data: {... "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n
--     data: [DONE]\n\n
--   strict=1: stream only when the body says "stream": true (OpenAI's rule)
--   When the request's JSON body has "stream": false: one chat.completion
--   object (id "chatcmpl-gen") with the concatenated text.
--   mode=ok|hang|reset|close; reset sends the headers and the first event
--   (or, non-streaming, half the body under a full Content-Length) and closes.
--
-- Any other URI outside /_mock/: 404 JSON error, recorded like the others
-- (so a misrouted proxy_pass shows up in the records).
--
-- RECORDS: every request to the endpoints above appends a record under its
-- tag when it FINISHES (log phase), also when the client aborted it:
--   seq (global, 1-based), tag, uri ($request_uri, with args, raw), method,
--   body (raw request body), status ($status; 499 whenever the client went
--   away before the answer was complete, even after the headers were sent),
--   request_time ($request_time, "0.052"), aborted, start/finish (epoch s).
-- Records are kept in lua_shared_dict mock_records, in order of completion.
--
-- Control endpoints (not recorded; logged to logs/control.log):
--   GET /_mock/log?tag=T[&n=N][&wait=S]
--        wait up to S s (default 0) until at least N records exist (N
--        defaults to 1 when wait is given, else 0), then 200 text/plain, one
--        line per record in order of completion:
--        "<status> <request_time> <uri>\n", e.g.
--        "499 0.052 /v1/chat/completions?tag=fiqh&delay=2"; empty if none.
--        tag=* means all tags.
--   GET /_mock/headers?tag=T[&i=I][&wait=S]
--        the request line and headers of record I, as received
--   GET /_mock/body?tag=T[&i=I][&wait=S]
--        raw body of record I (1-based; negative counts from the end;
--        default the last), application/json; 404 if none after waiting
--        up to S s.
--   GET /_mock/count?tag=T      "<number>\n" (tag=* : all tags)
--   GET|POST /_mock/clear[?tag=T]   clear one tag or everything; "ok\n"
--   GET /_mock/records?tag=T[&n=N][&wait=S][&body=1]
--        the records as a JSON array of objects (body included with body=1)
--   GET /_mock/tags             the tags that have records, one a line
--   GET /_mock/ping             "pong\n" (readiness)

local json = require "mock_json"

local M = {}

local dict = ngx.shared.mock_records
local ngx_sleep, ngx_now = ngx.sleep, ngx.now
local concat = table.concat
local format = string.format

------------------------------------------------------------------ helpers

local function get_args()
    return ngx.req.get_uri_args(200)
end

-- the last value of a query argument; `?x` (no '=') counts as absent
local function arg(args, name, default)
    local v = args[name]
    if type(v) == "table" then v = v[#v] end
    if v == nil or v == true then return default end
    return v
end

local function num_arg(args, name, default)
    local v = tonumber(arg(args, name, nil))
    if v == nil or v ~= v then return default end
    return v
end

local function tag_of(args)
    local t = arg(args, "tag", "default")
    if t == "" then t = "default" end
    return (t:gsub("[%c]", "_"))
end

local function hex(s)
    return (s:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function read_body()
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if data == nil then
        local file = ngx.req.get_body_file()
        if file then
            local fh, err = io.open(file, "rb")
            if not fh then
                ngx.log(ngx.ERR, "mock: cannot open body file ", file, ": ", err)
                return ""
            end
            data = fh:read("*a")
            fh:close()
        end
    end
    return data or ""
end

local function sleep(s)
    if s and s > 0 then ngx_sleep(s) end
end

-- send a string; on a write failure the client is gone: end the request
local function send(s, flush)
    local ok, err = ngx.print(s)
    if ok and flush then ok, err = ngx.flush(true) end
    if not ok and err ~= "buffering" then
        ngx.ctx.aborted = true
        return ngx.exit(ngx.ERROR)
    end
end

local function respond(status, ctype, body)
    ngx.status = status
    ngx.header["Content-Type"] = ctype
    ngx.header["Content-Length"] = #body
    send(body)
    return ngx.exit(ngx.OK)
end

local function error_json(status, message)
    return json.encode(json.obj{
        "error", json.obj{
            "message", message or ("mock error " .. status),
            "type", "mock_error",
            "code", status,
        },
    })
end

-- status line, headers with the full Content-Length, half the body, close
local function reset_with(status, ctype, body)
    ngx.status = status
    ngx.header["Content-Type"] = ctype
    ngx.header["Content-Length"] = #body
    send(body:sub(1, math.floor(#body / 2)), true)
    return ngx.exit(ngx.ERROR)
end

local function hang()
    ngx_sleep(3600)
    return respond(504, "application/json", error_json(504, "mock hang ended"))
end

-- common start of every recorded endpoint: read the body, arm abort
-- detection, parse the arguments, set the X-Mock-* headers
local function begin()
    local ctx = ngx.ctx
    ctx.body = read_body()

    local ok, err = ngx.on_abort(function()
        ctx.aborted = true
        -- 499 cannot be set once the status line is out; end it anyway
        return ngx.exit(ngx.headers_sent and ngx.ERROR or 499)
    end)
    if not ok then
        ngx.log(ngx.ERR, "mock: ngx.on_abort failed: ", err)
    end

    local args = get_args()
    ngx.header["X-Mock-Tag"] = tag_of(args)
    ngx.header["X-Mock-Body-Length"] = #ctx.body
    ngx.header["X-Mock-Body-Sha1"] = hex(ngx.sha1_bin(ctx.body))
    return args, ctx.body
end

local function request_json(body)
    local v = json.decode(body)
    if type(v) ~= "table" then return {} end
    return v
end

local function model_of(req)
    if type(req.model) == "string" then return req.model end
    return "mock"
end

local function approx_tokens(s)
    return math.ceil(#s / 4)
end

-- returns true when the request was answered already
local function common_modes(args, mode, known)
    if not known[mode] then
        respond(400, "application/json",
                error_json(400, "mock: unknown mode " .. mode))
        return true
    end
    if mode == "hang" then hang() return true end
    if mode == "close" then ngx.exit(444) return true end
    local status = num_arg(args, "status", nil)
    if status and (status < 200 or status > 299) then
        if status < 100 or status > 599 then status = 500 end
        respond(status, "application/json", error_json(status))
        return true
    end
    return false
end

local function status_of(args)
    local status = num_arg(args, "status", 200)
    if status < 200 or status > 299 then status = 200 end
    return math.floor(status)
end

------------------------------------------------------------------ classifiers

-- rule=NAME (the `make run` demo): "Yes." when the last user message
-- matches the rule's words, else "No."
local rules = {
    offtopic = { "pizza", "football", "weather", "movie", "recipe",
                 "stock", "bitcoin", "game" },
    fiqh = { "halal", "haram", "permissible", "allowed", "ruling", "fatwa",
             "forbidden" },
}

local function rule_verdict(name, req)
    local words = rules[name] or {}
    local query = ""
    if type(req.messages) == "table" then
        for _, m in ipairs(req.messages) do
            if type(m) == "table" and m.role == "user"
               and type(m.content) == "string"
            then
                query = m.content
            end
        end
    end
    query = query:lower()
    for _, w in ipairs(words) do
        if query:find(w, 1, true) then return "Yes." end
    end
    return "No."
end

local chat_modes = { ok = true, garbage = true, empty = true, noword = true,
                     hang = true, reset = true, big = true, close = true }

function M.chat()
    local args, body = begin()
    local mode = arg(args, "mode", "ok")
    sleep(num_arg(args, "delay", 0))
    if common_modes(args, mode, chat_modes) then return end

    local status = status_of(args)
    local ctype = "application/json"

    if mode == "garbage" then
        return respond(status, ctype,
                       "<html>mock garbage: this is not JSON {\"choices\": [\n")
    end
    if mode == "empty" then
        return respond(status, ctype, '{"choices":[]}')
    end

    local verdict = arg(args, "verdict", "no")
    local rule = arg(args, "rule", nil)
    if rule then
        verdict = rule_verdict(rule, request_json(body))
    end
    if mode == "noword" then
        verdict = arg(args, "verdict", "???")
    elseif mode == "big" then
        local size = num_arg(args, "size", 140000)
        local pad = string.rep("padding ", math.ceil(size / 8)):sub(1, size)
        verdict = verdict .. " " .. pad
    end

    local req = request_json(body)
    local ptok, ctok = approx_tokens(body), approx_tokens(verdict)
    local answer = json.encode(json.obj{
        "id", "chatcmpl-mock",
        "object", "chat.completion",
        "created", ngx.time(),
        "model", model_of(req),
        "choices", json.arr{ json.obj{
            "index", 0,
            "message", json.obj{ "role", "assistant", "content", verdict },
            "finish_reason", "stop",
        } },
        "usage", json.obj{
            "prompt_tokens", ptok,
            "completion_tokens", ctok,
            "total_tokens", ptok + ctok,
        },
    })

    if mode == "reset" then return reset_with(status, ctype, answer) end
    return respond(status, ctype, answer)
end

function M.json_classifier()
    local args = begin()
    local mode = arg(args, "mode", "ok")
    sleep(num_arg(args, "delay", 0))
    if common_modes(args, mode, chat_modes) then return end

    local status = status_of(args)
    local ctype = "application/json"
    local verdict = arg(args, "verdict", "false")
    verdict = (verdict == "true" or verdict == "1" or verdict == "yes")

    if mode == "garbage" then
        return respond(status, ctype, "<html>mock garbage: not JSON {\"verdict\": \n")
    end
    if mode == "empty" then return respond(status, ctype, "{}") end
    if mode == "noword" then
        return respond(status, ctype, '{"verdict":"maybe"}')
    end

    local answer
    if mode == "big" then
        local size = num_arg(args, "size", 140000)
        answer = json.encode(json.obj{
            "verdict", verdict,
            "pad", string.rep("padding ", math.ceil(size / 8)):sub(1, size),
        })
    else
        answer = json.encode(json.obj{ "verdict", verdict })
    end
    if mode == "reset" then return reset_with(status, ctype, answer) end
    return respond(status, ctype, answer)
end

------------------------------------------------------------------ generation

local gen_modes = { ok = true, hang = true, reset = true, close = true }

local function utf8_split(text, k)
    local cps = {}
    for cp in text:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
        cps[#cps + 1] = cp
    end
    local n = #cps
    local pieces = {}
    for i = 1, k do
        local a = math.floor((i - 1) * n / k) + 1
        local b = math.floor(i * n / k)
        pieces[i] = concat(cps, "", a, b)
    end
    return pieces
end

function M.generate()
    local args, body = begin()
    local mode = arg(args, "mode", "ok")
    sleep(num_arg(args, "delay", 0))
    if common_modes(args, mode, gen_modes) then return end

    local status = status_of(args)
    local k = math.floor(num_arg(args, "chunks", 3))
    if k < 0 then k = 0 end
    local text = arg(args, "text", nil)
    local pieces
    if text then
        pieces = utf8_split(text, k)
    else
        pieces = {}
        for i = 1, k do pieces[i] = "chunk" .. i .. " " end
    end
    local gap = num_arg(args, "gap", 0)

    local req = request_json(body)
    local model = model_of(req)
    local created = ngx.time()

    -- strict=1: OpenAI's own rule, a stream only when "stream": true
    local strict = arg(args, "strict", "0") ~= "0"
    if req.stream == false or (strict and req.stream ~= true) then
        local content = concat(pieces)
        local ptok, ctok = approx_tokens(body), approx_tokens(content)
        local answer = json.encode(json.obj{
            "id", "chatcmpl-gen",
            "object", "chat.completion",
            "created", created,
            "model", model,
            "choices", json.arr{ json.obj{
                "index", 0,
                "message", json.obj{ "role", "assistant", "content", content },
                "finish_reason", "stop",
            } },
            "usage", json.obj{
                "prompt_tokens", ptok,
                "completion_tokens", ctok,
                "total_tokens", ptok + ctok,
            },
        })
        if mode == "reset" then
            return reset_with(status, "application/json", answer)
        end
        return respond(status, "application/json", answer)
    end

    local function event(delta, finish)
        return "data: " .. json.encode(json.obj{
            "id", "chatcmpl-gen",
            "object", "chat.completion.chunk",
            "created", created,
            "model", model,
            "choices", json.arr{ json.obj{
                "index", 0,
                "delta", delta,
                "finish_reason", finish or json.null,
            } },
        }) .. "\n\n"
    end

    ngx.status = status
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["Cache-Control"] = "no-cache"
    ngx.header["X-Accel-Buffering"] = "no"

    for i, piece in ipairs(pieces) do
        if i > 1 then sleep(gap) end
        send(event(json.obj{ "content", piece }), true)
        if mode == "reset" then return ngx.exit(ngx.ERROR) end
    end
    if mode == "reset" then return ngx.exit(ngx.ERROR) end  -- chunks=0
    send(event(json.obj{}, "stop") .. "data: [DONE]\n\n", true)
    return ngx.exit(ngx.OK)
end

function M.unknown()
    begin()
    return respond(404, "application/json",
                   error_json(404, "mock: no endpoint " .. ngx.var.uri))
end

------------------------------------------------------------------ records
--
-- shared dict layout:
--   seq            global sequence number (incr)
--   n:<tag>        number of records of <tag>
--   r:<tag>:<i>    record i of <tag>: "seq\tstatus\trt\taborted\tmethod\t
--                                      start\tfinish\tbody_len\turi"
--   b:<tag>:<i>    its raw body
--   g:<seq>        "<i>\t<tag>" (for tag=*)

local function parse_meta(tag, i, s)
    if not s then return nil end
    local seq, status, rt, aborted, method, start, finish, blen, uri =
        s:match("^(%d+)\t(%d+)\t([^\t]*)\t(%d)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(%d+)\t(.*)$")
    if not seq then return nil end
    return {
        seq = tonumber(seq), tag = tag, i = i, status = tonumber(status),
        request_time = rt, aborted = aborted == "1", method = method,
        start = tonumber(start), finish = tonumber(finish),
        body_length = tonumber(blen), uri = uri,
    }
end

function M.record()
    local ctx = ngx.ctx
    local args = get_args()
    local tag = tag_of(args)
    local status = tonumber(ngx.var.status) or 0
    local aborted = ctx.aborted or status == 499
    if aborted then status = 499 end
    local body = ctx.body or ""
    local uri = ngx.var.request_uri or ngx.var.uri

    local seq = dict:incr("seq", 1, 0)
    local i = dict:incr("n:" .. tag, 1, 0)
    local meta = concat({
        seq, status, ngx.var.request_time or "", aborted and 1 or 0,
        ngx.req.get_method(), format("%.3f", ngx.req.start_time()),
        format("%.3f", ngx_now()), #body, uri,
    }, "\t")
    local ok, err = dict:set("b:" .. tag .. ":" .. i, body)
    if not ok then ngx.log(ngx.ERR, "mock: cannot store body: ", err) end
    ok, err = dict:set("h:" .. tag .. ":" .. i, ngx.req.raw_header(true))
    if not ok then ngx.log(ngx.ERR, "mock: cannot store headers: ", err) end
    ok, err = dict:set("r:" .. tag .. ":" .. i, meta)
    if not ok then ngx.log(ngx.ERR, "mock: cannot store record: ", err) end
    dict:set("g:" .. seq, i .. "\t" .. tag)
end

local function count(tag)
    if tag == "*" then
        local n = 0
        for s = 1, dict:get("seq") or 0 do
            if dict:get("g:" .. s) then n = n + 1 end
        end
        return n
    end
    return dict:get("n:" .. tag) or 0
end

-- records of a tag (or "*": all) in order of completion
local function records(tag)
    local out = {}
    if tag == "*" then
        for s = 1, dict:get("seq") or 0 do
            local g = dict:get("g:" .. s)
            if g then
                local i, t = g:match("^(%d+)\t(.*)$")
                local r = parse_meta(t, tonumber(i),
                                     dict:get("r:" .. t .. ":" .. i))
                if r and r.seq == s then out[#out + 1] = r end
            end
        end
        return out
    end
    for i = 1, count(tag) do
        local r = parse_meta(tag, i, dict:get("r:" .. tag .. ":" .. i))
        if r then out[#out + 1] = r end
    end
    return out
end

local function wait_for(tag, n, wait)
    local deadline = ngx_now() + wait
    while count(tag) < n do
        if ngx_now() >= deadline then return false end
        ngx_sleep(0.01)
        ngx.update_time()
    end
    return true
end

local function text(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "text/plain"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(ngx.OK)
end

local function clear(tag)
    if tag == nil then
        dict:flush_all()
        dict:flush_expired(0)
        return
    end
    local n = dict:get("n:" .. tag) or 0
    for i = 1, n do
        local r = parse_meta(tag, i, dict:get("r:" .. tag .. ":" .. i))
        if r then dict:delete("g:" .. r.seq) end
        dict:delete("r:" .. tag .. ":" .. i)
        dict:delete("b:" .. tag .. ":" .. i)
    end
    dict:delete("n:" .. tag)
end

local control = {}

control.ping = function() return text(200, "pong\n") end

control.log = function(args)
    local tag = tag_of(args)
    local wait = num_arg(args, "wait", nil)
    local n = num_arg(args, "n", wait and 1 or 0)
    wait_for(tag, n, wait or 0)
    local lines = {}
    for _, r in ipairs(records(tag)) do
        lines[#lines + 1] = r.status .. " " .. r.request_time .. " " .. r.uri .. "\n"
    end
    return text(200, concat(lines))
end

control.count = function(args)
    return text(200, count(tag_of(args)) .. "\n")
end

-- the raw body ("b") or request headers ("h") of one record
local function record_part(args, part, ctype)
    local tag = tag_of(args)
    local wait = num_arg(args, "wait", 0)
    local i = num_arg(args, "i", nil)
    i = i and math.floor(i)
    wait_for(tag, (i and i > 0) and i or (i and -i) or 1, wait)
    local recs = records(tag)
    local r
    if i == nil then
        r = recs[#recs]
    elseif i > 0 then
        for _, x in ipairs(recs) do if x.i == i then r = x end end
    elseif i < 0 then
        r = recs[#recs + 1 + i]
    end
    if not r then
        return text(404, "no record " .. (i or "last") .. " for tag " .. tag .. "\n")
    end
    local body = dict:get(part .. ":" .. r.tag .. ":" .. r.i) or ""
    ngx.header["Content-Type"] = ctype
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(ngx.OK)
end

control.body = function(args)
    return record_part(args, "b", "application/json")
end

control.headers = function(args)
    return record_part(args, "h", "text/plain")
end

control.records = function(args)
    local tag = tag_of(args)
    local wait = num_arg(args, "wait", nil)
    local n = num_arg(args, "n", wait and 1 or 0)
    wait_for(tag, n, wait or 0)
    local with_body = arg(args, "body", "0") ~= "0"
    local list = {}
    for _, r in ipairs(records(tag)) do
        local o = {
            "seq", r.seq, "tag", r.tag, "i", r.i, "uri", r.uri,
            "method", r.method, "status", r.status,
            "request_time", tonumber(r.request_time) or r.request_time,
            "aborted", r.aborted, "start", r.start, "finish", r.finish,
            "body_length", r.body_length,
        }
        if with_body then
            o[#o + 1] = "body"
            o[#o + 1] = dict:get("b:" .. r.tag .. ":" .. r.i) or ""
        end
        list[#list + 1] = json.obj(o)
    end
    local body = json.encode(json.arr(list)) .. "\n"
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(ngx.OK)
end

control.tags = function()
    local keys = dict:get_keys(0)
    local tags = {}
    for _, k in ipairs(keys) do
        local t = k:match("^n:(.*)$")
        if t then tags[#tags + 1] = t end
    end
    table.sort(tags)
    return text(200, #tags > 0 and (concat(tags, "\n") .. "\n") or "")
end

control.clear = function(args)
    local t = arg(args, "tag", nil)
    clear(t and tag_of(args) or nil)
    return text(200, "ok\n")
end

function M.control()
    local name = ngx.var.uri:match("^/_mock/([%w_]+)$")
    local h = name and control[name]
    if not h then
        return text(404, "unknown mock control endpoint " .. ngx.var.uri .. "\n")
    end
    ngx.req.discard_body()
    return h(get_args())
end

return M
