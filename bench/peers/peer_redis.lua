-- peer_redis.lua -- the benchmark peers' Redis read: one LRANGE over an
-- ngx_lua cosocket, the connection kept in the worker's keepalive pool.
--
-- lua-resty-redis is packaged by Debian only as lua-nginx-redis, which
-- depends on nginx-extras (twenty more modules); the peers need one
-- command, so they speak it themselves (RESP, written from the protocol's
-- description), over the same cosocket calls that library makes: connect
-- (a pooled connection when there is one), send, receive("*l") per line,
-- receive(n) per bulk, setkeepalive.
--
--   local redis = require "peer_redis"
--   local items, err = redis.lrange(host, port, key, start, stop, timeout)
--   redis.serve(host, port, timeout)   -- content handler: ?key=&start=&stop=
--                                      -- -> 200 a JSON array of the items

local tcp = ngx.socket.tcp
local concat = table.concat
local byte, sub, format = string.byte, string.sub, string.format

local _M = {}

local POOL_IDLE_MS = 60000
local POOL_SIZE = 256

local function bulk(s)
    return format("$%d\r\n%s\r\n", #s, s)
end

-- the items of a list, an array of strings (a nil element is skipped);
-- nil and the error on failure (the connection is then closed, not pooled)
function _M.lrange(host, port, key, start, stop, timeout)
    local sock = tcp()
    sock:settimeout(timeout)

    local ok, err = sock:connect(host, port)
    if not ok then
        return nil, "connect: " .. err
    end

    ok, err = sock:send("*4\r\n$6\r\nLRANGE\r\n" .. bulk(key) .. bulk(start)
                        .. bulk(stop))
    if not ok then
        sock:close()
        return nil, "send: " .. err
    end

    local line
    line, err = sock:receive("*l")
    if not line then
        sock:close()
        return nil, "receive: " .. err
    end

    if byte(line, 1) ~= 42 then          -- not "*<count>": "-ERR ...", ...
        sock:close()
        return nil, "reply: " .. line
    end

    local items = {}
    local n = tonumber(sub(line, 2)) or -1

    for _ = 1, n do
        line, err = sock:receive("*l")
        if not line then
            sock:close()
            return nil, "receive: " .. err
        end

        local len = byte(line, 1) == 36 and tonumber(sub(line, 2)) or nil
        if len == nil then
            sock:close()
            return nil, "reply: " .. line
        end

        if len >= 0 then
            local data
            data, err = sock:receive(len + 2)
            if not data then
                sock:close()
                return nil, "receive: " .. err
            end

            items[#items + 1] = sub(data, 1, len)
        end
    end

    sock:setkeepalive(POOL_IDLE_MS, POOL_SIZE)

    return items
end

-- a location's content handler: the njs peer reads its context through a
-- subrequest to it, since njs 0.7.9 has no TCP socket
function _M.serve(host, port, timeout)
    local args = ngx.req.get_uri_args()
    local items, err = _M.lrange(host, port, args.key or "",
                                 args.start or "0", args.stop or "-1",
                                 timeout)
    if not items then
        ngx.log(ngx.ERR, "peer redis: LRANGE \"", args.key, "\": ", err)
        return ngx.exit(ngx.HTTP_BAD_GATEWAY)
    end

    ngx.header["Content-Type"] = "application/json"
    ngx.print("[", concat(items, ","), "]")
end

return _M
