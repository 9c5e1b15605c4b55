-- Redis Cluster's arithmetic, for the gateway's join (deploy/lua/redis_link.lua): which
-- slot a key hashes to, a CLUSTER SLOTS reply read into a slot -> primary table, and the
-- MOVED / ASK redirections a node answers with. No I/O here.
--
-- The slot is exactly Redis's (cluster.c keyHashSlot): CRC16/XMODEM (polynomial 0x1021,
-- initial 0) of the key's hash tag, the text between the first "{" and the first "}"
-- after it when that text is not empty, or of the whole key otherwise; modulo 16384.
-- tests/unit/platform/test_gateway_keyslot.py holds it to a real server's CLUSTER KEYSLOT.

local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift
local byte, find = string.byte, string.find

local M = {}

M.SLOTS = 16384

-- CRC16/XMODEM a byte at a time: the table of every byte's remainder.
local CRC = {}
for i = 0, 255 do
    local crc = lshift(i, 8)
    for _ = 1, 8 do
        if band(crc, 0x8000) ~= 0 then
            crc = bxor(lshift(crc, 1), 0x1021)
        else
            crc = lshift(crc, 1)
        end
    end
    CRC[i] = band(crc, 0xffff)
end

local function crc16(s, first, last)
    local crc = 0
    for i = first, last do
        crc = band(bxor(lshift(crc, 8), CRC[bxor(rshift(crc, 8), byte(s, i))]), 0xffff)
    end
    return crc
end

function M.keyslot(key)
    local first, last = 1, #key
    local open = find(key, "{", 1, true)
    if open then
        local close = find(key, "}", open + 1, true)
        if close and close > open + 1 then first, last = open + 1, close - 1 end
    end
    return band(crc16(key, first, last), M.SLOTS - 1)
end

-- "host:port" (an IPv6 host keeps its colons: the port is after the last one).
function M.address(host, port)
    return host .. ":" .. port
end

function M.host_port(address)
    local host, port = address:match("^(.*):(%d+)$")
    if host == nil then return nil end
    return host, tonumber(port)
end

-- A CLUSTER SLOTS reply as {[slot + 1] = "host:port" of its primary}, or nil for a reply
-- that is not one. A slot no node serves stays nil (its joins go to the waitingroom).
-- ``asked`` is the host of the node that answered: an entry with an empty or unknown
-- ("?") address is that node itself.
function M.read_slots(reply, asked)
    if type(reply) ~= "table" or #reply == 0 then return nil end
    local slots = {}
    for _, range in ipairs(reply) do
        if type(range) ~= "table" or type(range[3]) ~= "table" then return nil end
        local first, last, primary = tonumber(range[1]), tonumber(range[2]), range[3]
        local host, port = primary[1], tonumber(primary[2])
        if first == nil or last == nil or port == nil then return nil end
        if type(host) ~= "string" or host == "" or host == "?" then host = asked end
        local address = M.address(host, port)
        for slot = first, last do slots[slot + 1] = address end
    end
    return slots
end

-- "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381" (an error reply's text):
-- the kind, the slot and the node to ask; nil for any other error.
function M.redirection(err)
    if type(err) ~= "string" then return nil end
    local kind, slot, address = err:match("^(%u+) (%d+) (%S+)$")
    if kind ~= "MOVED" and kind ~= "ASK" then return nil end
    return kind, tonumber(slot), address
end

return M
