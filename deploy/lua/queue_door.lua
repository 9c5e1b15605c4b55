-- The queue's door at the gateway: a join's solved ALTCHA challenge checked as
-- waitingroom/queue/challenge.py checks it, so that a join of an event whose challenge is
-- on, carrying a good solution, is still answered by deploy/lua/queue_join.lua.
--
-- The same keys (derived from the queue ticket secret, the event and the fan: a challenge
-- issued to anyone else, or for another event, fails) and ALTCHA's key-signature fast path:
-- two HMACs, no key derivation. It only ever accepts: a payload it does not take exactly in
-- the shape the waitingroom issues (PBKDF2/SHA-256, the parameters and their types as
-- issued, lowercase hex) goes to the waitingroom, which refuses it with a fresh challenge
-- (or takes it) and explains. The canonical JSON signed is altcha's (sorted keys, no
-- spaces), written out here for exactly those parameters; tests/e2e holds the two to each
-- other (a solved join answered here, one the waitingroom refuses passed on).

local cjson = require("cjson.safe").new()
cjson.decode_invalid_numbers(false)

local M = {}
local hmac, keyed_hmac, same, to_hex, from_hex, secret
local base -- HMAC(secret, label): the same for every fan, derived once
local floor, format = math.floor, string.format

-- waitingroom/queue/challenge.py ALGORITHM and the parameters it issues.
local ALGORITHM = "PBKDF2/SHA-256"
local PARAMETERS = {
    algorithm = true, cost = true, data = true, expiresAt = true, keyLength = true,
    keyPrefix = true, keySignature = true, nonce = true, salt = true,
}
local MAX_PAYLOAD = 4096

-- ``crypto``: queue_join.lua's HMAC-SHA256 (under any key, and under a fixed one keyed
-- once), constant-time compare and hex both ways (each in C: the join's path runs mostly
-- in LuaJIT's interpreter, where a loop over bytes costs).
function M.configure(crypto, ticket_secret)
    hmac, keyed_hmac, same = crypto.hmac, crypto.keyed_hmac, crypto.same
    to_hex, from_hex = crypto.to_hex, crypto.from_hex
    secret, base = ticket_secret, nil
end

local function is_hex(v)
    return type(v) == "string" and #v > 0 and #v % 2 == 0 and v:find("^[0-9a-f]+$") ~= nil
end

local function is_count(v)
    return type(v) == "number" and v >= 0 and v < 2 ^ 53 and floor(v) == v
end

-- challenge.py _keys: HMAC(secret, label) as the base, then one key for the challenge's
-- signature and one for the derived key's, each the hex of an HMAC of "<event>:<user>".
-- Not cached: under the base's context, keyed once, the two cost about 2 us, less than a
-- cache's upkeep for a surge of fans each seen once.
local function keys_of(user, event_id)
    local name = event_id .. ":" .. user
    if base == nil then base = keyed_hmac(secret, "ticketing/queue-challenge") end
    if base == nil then return nil end
    local challenge_mac = keyed_hmac(base, "challenge|" .. name)
    local key_mac = keyed_hmac(base, "key|" .. name)
    if challenge_mac == nil or key_mac == nil then return nil end
    return to_hex(challenge_mac), to_hex(key_mac)
end

-- The challenge's signature (its name in the used set) and how long to keep it (s) when
-- ``payload`` solves a challenge issued to ``user`` for ``event_id`` and not yet expired;
-- nil for anything else (the waitingroom's to judge). Not whether it was used before.
function M.solved(payload, user, event_id, now_s)
    if type(payload) ~= "string" or #payload > MAX_PAYLOAD then return nil end
    local raw = ngx.decode_base64(payload)
    if raw == nil then return nil end
    local body = cjson.decode(raw)
    if type(body) ~= "table" then return nil end
    local challenge, solution = body.challenge, body.solution
    if type(challenge) ~= "table" or type(solution) ~= "table" then return nil end
    local p, signature = challenge.parameters, challenge.signature
    if type(p) ~= "table" or not is_hex(signature) then return nil end
    for name in pairs(p) do
        if not PARAMETERS[name] then return nil end
    end
    local data = p.data
    if p.algorithm ~= ALGORITHM or type(data) ~= "table" or not is_count(data.max_tries) then
        return nil
    end
    for name in pairs(data) do
        if name ~= "max_tries" then return nil end
    end
    if not (is_count(p.cost) and is_count(p.keyLength) and is_count(p.expiresAt)) then
        return nil
    end
    if not (is_hex(p.keyPrefix) and is_hex(p.keySignature) and is_hex(p.nonce)
        and is_hex(p.salt) and is_hex(solution.derivedKey)) then
        return nil
    end
    if p.expiresAt < now_s then return nil end -- expired: the waitingroom says so
    local challenge_key, key_key = keys_of(user, event_id)
    if challenge_key == nil then return nil end
    local canonical = format(
        '{"algorithm":"%s","cost":%d,"data":{"max_tries":%d},"expiresAt":%d,"keyLength":%d,'
        .. '"keyPrefix":"%s","keySignature":"%s","nonce":"%s","salt":"%s"}',
        ALGORITHM, p.cost, data.max_tries, p.expiresAt, p.keyLength, p.keyPrefix,
        p.keySignature, p.nonce, p.salt)
    local signed = hmac(challenge_key, canonical)
    if signed == nil or not same(to_hex(signed), signature) then return nil end
    local derived = from_hex(solution.derivedKey)
    if derived == nil then return nil end
    local key_signed = hmac(key_key, derived)
    if key_signed == nil or not same(to_hex(key_signed), p.keySignature) then return nil end
    return signature, math.max(1, p.expiresAt - floor(now_s) + 1)
end

return M
