-- openresty-gate.lua -- the comparison gate of bench/speculate/run: the
-- same two classifiers and generation as the module's, written the way an
-- OpenResty user would (lua-nginx-module, lua-cjson): read the body, one
-- capture_multi of the two classifier calls (parallel, waits for both),
-- then the reply of the first positive one in priority order, or
-- ngx.exec() to the generation with the body intact.  No speculation, no
-- early decision, no abort: what OpenResty's API offers.

local cjson = require "cjson.safe"

local M = {}

local prompts = {
    "Answer Yes if the question is off-topic, else No.",
    "Answer Yes if the question asks for a ruling, else No.",
}

local replies = {
    "I can only help with on-topic questions.",
    "Please ask a qualified scholar.",
}

local function query_of(body)
    local req = cjson.decode(body or "")
    if type(req) ~= "table" or type(req.messages) ~= "table" then
        return nil
    end
    for i = #req.messages, 1, -1 do
        local m = req.messages[i]
        if type(m) == "table" and m.role == "user"
           and type(m.content) == "string"
        then
            return m.content
        end
    end
end

local function call_body(prompt, query)
    return cjson.encode({
        model = "bench", temperature = 0, max_tokens = 5,
        messages = {
            { role = "system", content = prompt },
            { role = "user", content = query },
        },
    })
end

local function positive(res)
    if res.status ~= 200 then
        return false                                  -- fail open
    end
    local a = cjson.decode(res.body)
    local c = a and a.choices and a.choices[1] and a.choices[1].message
              and a.choices[1].message.content
    local w = type(c) == "string" and c:match("%a+")
    return w ~= nil and (w:lower() == "yes" or w:lower() == "true")
end

-- the classifier locations are the module bench's: /_cls/<name>
function M.gate(names)
    ngx.req.read_body()
    local q = query_of(ngx.req.get_body_data())
    if not q then
        ngx.status = 400
        ngx.say('{"error":{"message":"no query","code":400}}')
        return ngx.exit(400)
    end

    local calls = {}
    for i, name in ipairs(names) do
        calls[i] = { "/_cls/" .. name, { method = ngx.HTTP_POST,
                                         body = call_body(prompts[i], q) } }
    end

    local res = { ngx.location.capture_multi(calls) }

    for i = 1, #res do
        if positive(res[i]) then
            ngx.header["Content-Type"] = "text/event-stream"
            ngx.header["X-Classify-Verdict"] = names[i]
            ngx.print("data: ", cjson.encode({ choices = { {
                index = 0, delta = { content = replies[i] } } } }),
                "\n\ndata: [DONE]\n\n")
            return ngx.exit(200)
        end
    end

    return ngx.exec("@gen")
end

return M
