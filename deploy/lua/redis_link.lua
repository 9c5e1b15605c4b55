-- Where the gateway's join (deploy/lua/queue_join.lua) finds Redis, in each mode
-- TICKETING_REDIS_URL names (ticketing/redis_connect.py): one server; a Redis Cluster,
-- routed by each key's slot; or the primary the sentinels name. A link is one request's
-- connections, one per node it touches, each from that node's keepalive pool; what it
-- learns of the topology (the slot map, the sentinels' primary) is kept per nginx worker.
--
-- It follows what Redis tells it once, then gives up (nil, or Redis's error) and the join
-- goes to the waitingroom, whose own client copes. Cluster: a MOVED (the slot has a new
-- owner: the command runs there and the map is read again), an ASK (the slot is migrating
-- and these keys have left: ASKING, then the command on the target), a primary that
-- refuses connections (the map is read again: a replica may have taken over). Sentinel:
-- a primary that refuses connections or answers READONLY (a failover demoted it) is asked
-- for again. Only what Redis did not run is sent again: it redirects or refuses a write
-- before running anything, and a command whose connection broke is never resent.
--
-- One server is exactly as before: the same connection, commands and pool.

local redis = require "nginx.redis"
local slots_of = require "redis_slots"

local keyslot, redirection = slots_of.keyslot, slots_of.redirection
local address_of, host_port = slots_of.address, slots_of.host_port
local now, sleep, unpack = ngx.now, ngx.sleep, unpack

-- A worker reads its topology again at most this often when Redis says it changed (a
-- MOVED's own slot is corrected at once); a surge meeting a failover must not turn every
-- join into a CLUSTER SLOTS or a question to the sentinels.
local REREAD_GAP = 0.5

local M = {}
local cfg, count

-- Per worker: what is known (value), when it was last read successfully (fresh_at) and
-- last tried (read_at), and whether a read is under way (reading; the requests that
-- meanwhile need it use what is known, or wait for it when nothing is known yet).
local map = { value = nil, fresh_at = -1, read_at = -1, reading = false }
local primary = { value = nil, fresh_at = -1, read_at = -1, reading = false }

function M.configure(options, counter)
    cfg, count = options, counter
end

local function dial(host, port, db, password)
    local red = redis:new()
    red:set_timeout(cfg.redis_timeout_ms)
    local ok
    if port == 0 then -- a unix socket, "unix:/path"
        ok = red:connect(host)
    elseif host:find(":", 1, true) then -- an IPv6 address (as MOVED names one): bracketed
        ok = red:connect("[" .. host .. "]", port)
    else
        ok = red:connect(host, port)
    end
    if not ok then return nil end
    if red:get_reused_times() == 0 then
        if password and password ~= "" then
            if not red:auth(password) then return nil end
        end
        if db ~= 0 and not red:select(db) then return nil end
    end
    return red
end

-- ``question`` to each of ``addresses`` in turn until ``read`` makes something of an
-- answer (``read(reply, host)``); nil when none does. No password for a sentinel: the
-- URL's is the data nodes'.
local function ask(addresses, password, read, question, ...)
    for _, address in ipairs(addresses) do
        local host, port = host_port(address)
        local red = host and dial(host, port, 0, password)
        if red then
            local reply = red[question](red, ...)
            if reply == nil then
                red:close()
            else -- an answer, even an error: the connection is sound
                red:set_keepalive(cfg.redis_idle_ms, cfg.redis_pool)
                local value = read(reply, host)
                if value ~= nil then return value end
            end
        end
    end
    return nil
end

local function seeds()
    local addresses = {}
    for i, node in ipairs(cfg.redis_nodes) do addresses[i] = address_of(node[1], node[2]) end
    return addresses
end

-- The slot map from CLUSTER SLOTS: the seeds first, then every primary the last map named
-- (every seed may be gone by now).
local function read_map()
    local addresses, listed = seeds(), {}
    for _, address in ipairs(addresses) do listed[address] = true end
    for _, address in pairs(map.value or {}) do
        if not listed[address] then
            listed[address] = true
            addresses[#addresses + 1] = address
        end
    end
    return ask(addresses, cfg.redis_password, slots_of.read_slots, "cluster", "slots")
end

-- An answer to get-master-addr-by-name ({ip, port}; nil when the name is unknown).
local function primary_address(reply)
    if type(reply) ~= "table" or type(reply[1]) ~= "string" or tonumber(reply[2]) == nil then
        return nil
    end
    return address_of(reply[1], reply[2])
end

local function read_primary()
    return ask(seeds(), nil, primary_address, "sentinel", "get-master-addr-by-name",
        cfg.redis_service)
end

local function renew(view, read)
    if view.reading then
        local deadline = now() + cfg.redis_timeout_ms / 1000
        while view.reading and view.value == nil and now() < deadline do sleep(0.005) end
        return view.value
    end
    if now() - view.read_at < REREAD_GAP then return view.value end
    view.reading = true
    local ok, value = pcall(read)
    view.reading, view.read_at = false, now()
    if ok and value ~= nil then view.value, view.fresh_at = value, view.read_at end
    return view.value
end

-- The address that serves ``slot`` (cluster) or the primary (sentinel) as far as this
-- worker knows, reading the topology when it knows none (or, for the map, an old one).
local function serving(slot)
    if slot ~= nil then
        if map.value == nil or now() - map.fresh_at >= cfg.redis_slots_ttl then
            renew(map, read_map)
        end
        return map.value and map.value[slot + 1]
    end
    return primary.value or renew(primary, read_primary)
end

-- A MOVED for ``slot``: the map is read again, and the node that owned the slot names its
-- owner now, which every request takes whatever a node slower to learn it says.
local function moved(slot, address)
    count("moved")
    renew(map, read_map)
    map.value[slot + 1] = address
end

local function reread(slot)
    if slot ~= nil then renew(map, read_map) else renew(primary, read_primary) end
end

-- --- a request's link ---------------------------------------------------------------------

local Link = {}
Link.__index = Link

-- This request's connection to ``address``; a node that refused is not dialled twice.
function Link:conn(address)
    local red = self.conns[address]
    if red == nil then
        local host, port = host_port(address)
        red = host and dial(host, port, self.db, cfg.redis_password) or false
        self.conns[address] = red
    end
    return red or nil
end

-- The connection to what serves ``key`` now (the slot's primary; the primary), the
-- topology read again once if that refuses; and the address and slot it is for. None
-- marks the link ``unreachable``.
function Link:node(key)
    if self.single then
        local red = self:conn(self.single)
        if red == nil then self.unreachable = true end
        return red
    end
    local slot = self.cluster and keyslot(key) or nil
    local address = serving(slot)
    local red = address and self:conn(address)
    if red then return red, address, slot end
    count("unreachable")
    reread(slot)
    local again = serving(slot)
    red = again and again ~= address and self:conn(again)
    if red then return red, again, slot end
    self.unreachable = true
    return nil
end

-- ``command`` for ``key`` where it is served, following one redirection (or READONLY).
-- Its reply; false and Redis's error; or nil when no node could be reached.
function Link:call(key, command, ...)
    local red, address, slot = self:node(key)
    if red == nil then return nil, "unreachable" end
    local reply, err = red[command](red, ...)
    if reply ~= false or self.single then return reply, err end
    local kind, _, target = redirection(err)
    if slot ~= nil and kind == "MOVED" then
        moved(slot, target)
        red = self:conn(target)
    elseif slot ~= nil and kind == "ASK" then
        count("ask")
        red = self:conn(target)
        if red and red:asking() ~= "OK" then red = nil end
    elseif slot == nil and err:find("^READONLY") then
        count("readonly")
        if primary.value == address then primary.value = nil end
        red = self:node(key)
        if red == self.conns[address] then return reply, err end -- still the one demoted
    else
        return reply, err
    end
    if red == nil then return nil, "unreachable" end
    return red[command](red, ...)
end

-- ``commands`` ({name, args...} each) in one round trip; with ``asking``, each after an
-- ASKING. The replies in order (an error as {false, err}), or nil on a broken connection.
local function send(red, commands, asking)
    red:init_pipeline(asking and 2 * #commands or #commands)
    for _, command in ipairs(commands) do
        if asking then red:asking() end
        red[command[1]](red, unpack(command, 2))
    end
    local replies = red:commit_pipeline()
    if replies == nil or not asking then return replies end
    local own = {}
    for i = 2, #replies, 2 do own[#own + 1] = replies[i] end -- without ASKING's OKs
    return own
end

-- Reads of one slot's keys (``key`` names it) in one round trip. A MOVED (the slot's
-- owner answers for all of them alike) sends them all to the new owner; an ASK (during a
-- migration, for the keys that already left) sends just those to the target.
function Link:pipeline(key, commands)
    local red, _, slot = self:node(key)
    if red == nil then return nil end
    local replies = send(red, commands)
    if replies == nil or slot == nil then return replies end
    local asked, target = {}, nil
    for i, reply in ipairs(replies) do
        if type(reply) == "table" and reply[1] == false then
            local kind, _, address = redirection(reply[2])
            if kind == "MOVED" then
                moved(slot, address)
                red = self:conn(address)
                return red and send(red, commands) or nil
            elseif kind == "ASK" then
                asked[#asked + 1], target = i, address
            end
        end
    end
    if target == nil then return replies end
    count("ask")
    red = self:conn(target)
    if red == nil then return nil end
    local again = {}
    for j, i in ipairs(asked) do again[j] = commands[i] end
    again = send(red, again, true)
    if again == nil then return nil end
    for j, i in ipairs(asked) do replies[i] = again[j] end
    return replies
end

function Link:release()
    for _, red in pairs(self.conns) do
        if red then red:set_keepalive(cfg.redis_idle_ms, cfg.redis_pool) end
    end
end

function Link:close()
    for _, red in pairs(self.conns) do
        if red then red:close() end
    end
    self.conns = {} -- a release after a close has nothing to keep
end

-- A link that dials nothing until its first command: a join whose event and figures are
-- cached, and whose PLACE another join's call carries, touches no connection.
function M.link()
    local mode, node = cfg.redis_mode, cfg.redis_nodes[1]
    return setmetatable({
        conns = {},
        db = mode == "cluster" and 0 or cfg.redis_db,
        single = mode == "single" and address_of(node[1], node[2]) or nil,
        cluster = mode == "cluster",
    }, Link)
end

-- A link whose first node, the one serving ``key``, answers; nil when none does.
function M.open(key)
    local link = M.link()
    if link:node(key) == nil then return nil end
    return link
end

return M
