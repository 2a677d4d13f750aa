-- mock_json.lua -- a small JSON encoder/decoder for the classify test mock.
--
-- Written for this project (Debian's lua-nginx-module ships without
-- lua-cjson).  It is only meant for the mock backends in t/mock/: correct
-- for RFC 8259 input, not tuned for speed.
--
--   local json = require "mock_json"
--   local v, err = json.decode(str)   -- v == nil and err on invalid input;
--                                     -- JSON null decodes to json.null
--   json.encode(value)                -- value: nil/json.null, boolean,
--                                     -- number, string, table
--   json.obj{ "k1", v1, "k2", v2 }    -- object with keys in this order
--   json.arr{ v1, v2 }                -- array (also for an empty array)
--
-- Plain tables encode as arrays when t[1] ~= nil, otherwise as objects with
-- sorted keys.  Strings are emitted byte for byte (UTF-8 passes through);
-- only '"', '\' and control bytes are escaped.

local M = {}

local byte, char, sub, find, format = string.byte, string.char, string.sub,
                                      string.find, string.format
local concat = table.concat

M.null = setmetatable({}, { __tostring = function() return "null" end })

local OBJ = {}
local ARR = {}

function M.obj(list) return setmetatable({ list = list }, OBJ) end
function M.arr(list) return setmetatable({ list = list }, ARR) end

------------------------------------------------------------------ encoding

local escmap = {
    ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
    ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function esc(c)
    return escmap[c] or format("\\u%04x", byte(c))
end

local function enc_string(s)
    return '"' .. (s:gsub('[%z\1-\31"\\\127]', esc)) .. '"'
end
M.encode_string = enc_string

local encode

local function enc_number(n)
    if n ~= n or n == math.huge or n == -math.huge then
        return "null"
    end
    if n == math.floor(n) and n > -2^53 and n < 2^53 then
        return format("%d", n)
    end
    return format("%.14g", n)
end

encode = function(v, out)
    local t = type(v)
    if v == nil or v == M.null then
        out[#out + 1] = "null"
    elseif t == "boolean" then
        out[#out + 1] = v and "true" or "false"
    elseif t == "number" then
        out[#out + 1] = enc_number(v)
    elseif t == "string" then
        out[#out + 1] = enc_string(v)
    elseif t == "table" then
        local mt = getmetatable(v)
        if mt == OBJ then
            local l = v.list
            out[#out + 1] = "{"
            for i = 1, #l, 2 do
                if i > 1 then out[#out + 1] = "," end
                out[#out + 1] = enc_string(tostring(l[i]))
                out[#out + 1] = ":"
                encode(l[i + 1], out)
            end
            out[#out + 1] = "}"
        elseif mt == ARR or v[1] ~= nil then
            local l = (mt == ARR) and v.list or v
            out[#out + 1] = "["
            for i = 1, #l do
                if i > 1 then out[#out + 1] = "," end
                encode(l[i], out)
            end
            out[#out + 1] = "]"
        else
            local keys = {}
            for k in pairs(v) do keys[#keys + 1] = tostring(k) end
            table.sort(keys)
            out[#out + 1] = "{"
            for i, k in ipairs(keys) do
                if i > 1 then out[#out + 1] = "," end
                out[#out + 1] = enc_string(k)
                out[#out + 1] = ":"
                encode(v[k], out)
            end
            out[#out + 1] = "}"
        end
    else
        error("cannot encode a " .. t .. " as JSON")
    end
end

function M.encode(v)
    local out = {}
    encode(v, out)
    return concat(out)
end

------------------------------------------------------------------ decoding

local unesc = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f',
    n = '\n', r = '\r', t = '\t',
}

local function utf8_char(cp)
    if cp < 0x80 then
        return char(cp)
    elseif cp < 0x800 then
        return char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
    elseif cp < 0x10000 then
        return char(0xE0 + math.floor(cp / 0x1000),
                    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
    return char(0xF0 + math.floor(cp / 0x40000),
                0x80 + math.floor(cp / 0x1000) % 0x40,
                0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end
M.utf8_char = utf8_char

local function fail(pos, msg)
    error({ json_error = msg .. " at byte " .. pos }, 0)
end

local function skip_ws(s, pos)
    return find(s, "[^ \t\r\n]", pos) or #s + 1
end

local decode_value

local function decode_string(s, pos)
    -- s:sub(pos, pos) == '"'
    local out = {}
    pos = pos + 1
    while true do
        local a = find(s, '[%z\1-\31"\\]', pos)
        if not a then fail(pos, "unterminated string") end
        if a > pos then out[#out + 1] = sub(s, pos, a - 1) end
        local c = sub(s, a, a)
        if c == '"' then
            return concat(out), a + 1
        elseif c == '\\' then
            local e = sub(s, a + 1, a + 1)
            if unesc[e] then
                out[#out + 1] = unesc[e]
                pos = a + 2
            elseif e == 'u' then
                local hex = sub(s, a + 2, a + 5)
                if not hex:find("^%x%x%x%x$") then
                    fail(a, "bad \\u escape")
                end
                local cp = tonumber(hex, 16)
                pos = a + 6
                if cp >= 0xD800 and cp <= 0xDBFF
                   and sub(s, pos, pos + 1) == "\\u"
                then
                    local lo = tonumber(sub(s, pos + 2, pos + 5), 16)
                    if lo and lo >= 0xDC00 and lo <= 0xDFFF then
                        cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
                        pos = pos + 6
                    end
                end
                out[#out + 1] = utf8_char(cp)
            else
                fail(a, "bad escape")
            end
        else
            fail(a, "control character in string")
        end
    end
end

decode_value = function(s, pos, depth)
    if depth > 200 then fail(pos, "nesting too deep") end
    pos = skip_ws(s, pos)
    local c = sub(s, pos, pos)
    if c == '"' then
        return decode_string(s, pos)
    elseif c == '{' then
        local obj = {}
        pos = skip_ws(s, pos + 1)
        if sub(s, pos, pos) == '}' then return obj, pos + 1 end
        while true do
            pos = skip_ws(s, pos)
            if sub(s, pos, pos) ~= '"' then fail(pos, "expected a key") end
            local k
            k, pos = decode_string(s, pos)
            pos = skip_ws(s, pos)
            if sub(s, pos, pos) ~= ':' then fail(pos, "expected ':'") end
            obj[k], pos = decode_value(s, pos + 1, depth + 1)
            pos = skip_ws(s, pos)
            c = sub(s, pos, pos)
            if c == '}' then return obj, pos + 1 end
            if c ~= ',' then fail(pos, "expected ',' or '}'") end
            pos = pos + 1
        end
    elseif c == '[' then
        local arr, n = {}, 0
        pos = skip_ws(s, pos + 1)
        if sub(s, pos, pos) == ']' then return arr, pos + 1 end
        while true do
            n = n + 1
            arr[n], pos = decode_value(s, pos, depth + 1)
            pos = skip_ws(s, pos)
            c = sub(s, pos, pos)
            if c == ']' then return arr, pos + 1 end
            if c ~= ',' then fail(pos, "expected ',' or ']'") end
            pos = pos + 1
        end
    elseif sub(s, pos, pos + 3) == "true" then
        return true, pos + 4
    elseif sub(s, pos, pos + 4) == "false" then
        return false, pos + 5
    elseif sub(s, pos, pos + 3) == "null" then
        return M.null, pos + 4
    else
        local a, b = find(s, "^-?%d+", pos)
        if not a then fail(pos, "unexpected character") end
        local a2, b2 = find(s, "^%.%d+", b + 1)
        if a2 then b = b2 end
        a2, b2 = find(s, "^[eE][-+]?%d+", b + 1)
        if a2 then b = b2 end
        return tonumber(sub(s, a, b)), b + 1
    end
end

function M.decode(s)
    if type(s) ~= "string" then return nil, "not a string" end
    local ok, v, pos = pcall(decode_value, s, 1, 0)
    if not ok then
        if type(v) == "table" and v.json_error then return nil, v.json_error end
        return nil, tostring(v)
    end
    pos = skip_ws(s, pos)
    if pos <= #s then return nil, "trailing garbage at byte " .. pos end
    return v
end

return M
