-- The gateway's own answer to POST /queue/{event_id}/join: the surge's hottest request,
-- answered in nginx against Redis instead of crossing to a waitingroom process.
--
-- It only ever accepts. It answers a join itself when, and only when, it is the plain case:
-- a bearer token of the shape this platform mints that verifies (HS256 with the JWT secret,
-- or under RS256 signed by one of the platform's public keys, named by its kid: the gateway
-- holds no key that signs access tokens); no body, or just
-- the fan's own queue ticket for this event (signed by us, not expired) and, while the
-- event's door asks for proof of work, a solved challenge it checks itself
-- (deploy/lua/queue_door.lua, the waitingroom's keys, used once); an event in the
-- waitingroom's snapshot of queue-enabled events; before on-sale, only once the pre-queue's
-- seed commitment is on record; Redis answering; and the PLACE script placing the fan as
-- waiting or in the pre-queue (or telling them sold out: PLACE reads the sell-out the
-- waitingroom's counts set in Redis, so a join after the last seat sold hears it at once;
-- a fan in line while every seat left is held hears all_held, as from the waitingroom). Everything else (a ticket it
-- does not take, a pre-queue ticket after on-sale, any admitted fan's ticket (signed with a
-- key the gateway never holds), other fields, a token it does not read, an unknown event, an
-- admitted fan, a rate limit, any Redis error, a join its event's door refuses, any join of
-- an event whose one person, one place rule (cluster_rule) is on) goes to
-- the waitingroom unchanged (ngx.exec
-- to @waitingroom), which decides and explains as it always has.
--
-- What it shares with the waitingroom rather than repeats: the PLACE script itself (run
-- by its SHA, the same keys and arguments as waitingroom/queue/store.py; a NOSCRIPT goes to
-- the waitingroom, whose client loads it again), the token header, the limits, the rate
-- window and the histogram buckets, all rendered into the config by deploy/render_nginx.py
-- from the same Python. The status body and ticket are the waitingroom's
-- (waitingroom/queue/status.py, waitingroom/queue/ticket.py) for the kinds it answers;
-- tests/e2e/test_gateway_join_answers.py holds the two answers to each other, field by field.
--
-- Redis is whatever TICKETING_REDIS_URL names: one server, a Redis Cluster (each event's
-- keys share a hash tag, so a join goes to its event's slot's primary) or Sentinel's
-- primary; deploy/lua/redis_link.lua finds the node and follows the redirections.

local ffi = require "ffi"
-- An instance of our own, as strict as orjson where it matters: no "nan", hex or infinity.
local cjson = require("cjson.safe").new()
cjson.decode_invalid_numbers(false)
local redis_link = require "redis_link"
local b64 = require "ngx.base64"
local lrucache = require "resty.lrucache"
local door = require "queue_door"
local semaphore = require "ngx.semaphore"

ffi.cdef [[
const void *EVP_sha256(void);
typedef struct evp_mac_st EVP_MAC;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;
typedef struct ossl_param_st {
    const char *key; unsigned int data_type; void *data; size_t data_size; size_t return_size;
} OSSL_PARAM;
EVP_MAC *EVP_MAC_fetch(void *libctx, const char *algorithm, const char *properties);
EVP_MAC_CTX *EVP_MAC_CTX_new(EVP_MAC *mac);
void EVP_MAC_CTX_free(EVP_MAC_CTX *ctx);
int EVP_MAC_init(EVP_MAC_CTX *ctx, const unsigned char *key, size_t keylen,
                 const OSSL_PARAM params[]);
int EVP_MAC_update(EVP_MAC_CTX *ctx, const unsigned char *data, size_t datalen);
int EVP_MAC_final(EVP_MAC_CTX *ctx, unsigned char *out, size_t *outl, size_t outsize);
typedef struct bio_st BIO;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;
BIO *BIO_new_mem_buf(const void *buf, int len);
int BIO_free(BIO *a);
EVP_PKEY *PEM_read_bio_PUBKEY(BIO *bp, EVP_PKEY **x, void *cb, void *u);
void EVP_PKEY_free(EVP_PKEY *pkey);
EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, void **pctx, const void *type, void *e,
                         EVP_PKEY *pkey);
int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen,
                     const unsigned char *tbs, size_t tbslen);
typedef struct evp_md_st EVP_MD;
EVP_MD *EVP_MD_fetch(void *ctx, const char *algorithm, const char *properties);
int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const EVP_MD *type, void *impl);
int RAND_bytes(unsigned char *buf, int num);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
int OPENSSL_hexstr2buf_ex(unsigned char *buf, size_t buf_n, size_t *buflen, const char *str,
                          const char sep);
unsigned char *ngx_hex_dump(unsigned char *dst, const unsigned char *src, size_t len);
]]

local C = ffi.C
local digest = ffi.new("unsigned char[32]")
local digest_len = ffi.new("size_t[1]")
local SHA256 = C.EVP_sha256()

-- HMAC-SHA256 through OpenSSL 3's EVP_MAC, its algorithm fetched once per worker: the
-- one-shot HMAC() looks it up, allocates and keys a context on every call (about 2 us
-- here against 1). A join makes four to six of them.
local HMAC_MAC = C.EVP_MAC_fetch(nil, "HMAC", nil)

local function new_mac(key)
    if HMAC_MAC == nil then return nil end
    local ctx = C.EVP_MAC_CTX_new(HMAC_MAC)
    if ctx == nil then return nil end
    ctx = ffi.gc(ctx, C.EVP_MAC_CTX_free)
    -- {digest = "SHA256"} and the end marker; C strings of their own, alive for the call
    -- (a Lua string's address is not to be kept past it).
    local name, digest_name = ffi.new("char[7]", "digest"), ffi.new("char[7]", "SHA256")
    local params = ffi.new("OSSL_PARAM[2]")
    params[0].key = name
    params[0].data_type = 4 -- OSSL_PARAM_UTF8_STRING
    params[0].data = digest_name
    params[0].data_size = 6
    params[0].return_size = ffi.cast("size_t", -1) -- OSSL_PARAM_UNMODIFIED
    if C.EVP_MAC_init(ctx, key, #key, params) ~= 1 then return nil end
    return ctx
end

local function mac_of(ctx, key, data) -- key nil: the context's own, its pads kept
    if C.EVP_MAC_init(ctx, key, key and #key or 0, nil) ~= 1
        or C.EVP_MAC_update(ctx, data, #data) ~= 1
        or C.EVP_MAC_final(ctx, digest, digest_len, 32) ~= 1 then
        return nil
    end
    return ffi.string(digest, 32)
end

local scratch = new_mac("-") -- keyed again for each call of hmac_sha256

-- HMAC-SHA256 of ``data`` under any ``key`` (a fan's, a derived one); nil on failure.
local function hmac_sha256(key, data)
    if scratch == nil then return nil end
    return mac_of(scratch, key, data)
end

-- HMAC-SHA256 under a fixed secret (the token's, the ticket's, the door's base): a
-- context per secret, keyed once, so a call hashes only ``data`` (about 0.8 us).
local fixed_macs = {}
local function keyed_hmac(secret, data)
    local ctx = fixed_macs[secret]
    if ctx == nil then
        ctx = new_mac(secret)
        if ctx == nil then return nil end
        fixed_macs[secret] = ctx
    end
    return mac_of(ctx, nil, data)
end

-- RSASSA-PKCS1-v1_5 with SHA-256 (RS256) of ``data`` by ``pkey``, in the OpenSSL nginx
-- itself links (as the HMAC above): true only for a valid signature.
local function rs256_valid(pkey, data, signature)
    local ctx = C.EVP_MD_CTX_new()
    if ctx == nil then return false end
    local ok = C.EVP_DigestVerifyInit(ctx, nil, SHA256, nil, pkey) == 1
        and C.EVP_DigestVerify(ctx, signature, #signature, data, #data) == 1
    C.EVP_MD_CTX_free(ctx)
    return ok
end

local function load_public_key(pem)
    local bio = C.BIO_new_mem_buf(pem, #pem)
    if bio == nil then return nil end
    local pkey = C.PEM_read_bio_PUBKEY(bio, nil, nil, nil)
    C.BIO_free(bio)
    if pkey == nil then return nil end
    return ffi.gc(pkey, C.EVP_PKEY_free)
end

local encode_b64url, decode_b64url = b64.encode_base64url, b64.decode_base64url

-- Whether two signatures are equal, looking at every byte whatever the first difference:
-- "~=" may stop early, and how soon it answers would tell a forger how much was right.
-- OpenSSL's CRYPTO_memcmp: a loop in Lua is a closure call per byte, which the join's
-- path (a yield to Redis in it) mostly runs in LuaJIT's interpreter.
local function same_signature(a, b)
    if #a ~= #b then return false end -- lengths are public (a SHA-256 MAC's)
    return C.CRYPTO_memcmp(a, b, #a) == 0
end

-- Lowercase hex, and back, in C (nginx's own ngx_hex_dump, OpenSSL's hexstr2buf) for the
-- same reason; for at most MAX_RAW bytes (a join's body is at most 4 KB).
local MAX_RAW = 2048
local hex_out = ffi.new("unsigned char[?]", MAX_RAW * 2)
local raw_out = ffi.new("unsigned char[?]", MAX_RAW)
local raw_len = ffi.new("size_t[1]")

local function to_hex(raw)
    if #raw > MAX_RAW then return nil end
    C.ngx_hex_dump(hex_out, raw, #raw)
    return ffi.string(hex_out, #raw * 2)
end

local function from_hex(h) -- nil unless h is hex of at most MAX_RAW bytes
    if #h % 2 ~= 0 or #h > MAX_RAW * 2 then return nil end
    if C.OPENSSL_hexstr2buf_ex(raw_out, MAX_RAW, raw_len, h, 0) ~= 1 then return nil end
    return ffi.string(raw_out, raw_len[0])
end
-- A Lua string as a JSON string literal, as orjson writes it: cjson escapes "/" as "\/"
-- (and only then writes a backslash before a "/", since a bare "/" never stays bare).
local function quote(s)
    return (cjson.encode(s):gsub("\\/", "/"))
end
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local now = ngx.now

local M = {}
local cfg -- set once by configure() (init_by_lua, in the master)
local stats -- ngx.shared dict: counters for /metrics

-- Claims a token of ours may carry (ticketing/jwt_speed.py HS256FastPath's set).
local TOKEN_CLAIMS = { sub = true, roles = true, iat = true, nbf = true, exp = true }
-- The header fields of an RS256 token of ours (ticketing/keys.py Signer; PyJWT adds typ).
local RS256_HEADER = { alg = true, kid = true, typ = true }
-- Per worker: each public key parsed once, and RS256 tokens already verified (a fan polls
-- with the same token; an RSA verification costs ~30-50 us, a lookup well under one).
local public_keys = {}
local verified = lrucache.new(20000)
local STATUS_OF_KIND = { waiting = "waiting", pre = "pre_queue", sold_out = "sold_out" }
local OUTCOMES = { [0] = "again", [1] = "new", [2] = "restored" }

function M.configure(options)
    cfg = options
    cfg.jwt_secret = os.getenv("TICKETING_JWT_SECRET")
    -- Under RS256: {kid = PEM public key}, as deploy/gateway.py puts it in the environment.
    cfg.jwt_keys = cjson.decode(os.getenv("TICKETING_GATEWAY_JWT_KEYS") or "{}") or {}
    cfg.ticket_secret = os.getenv("TICKETING_QUEUE_TICKET_SECRET")
    cfg.redis_password = os.getenv("TICKETING_GATEWAY_REDIS_PASSWORD")
    local can_verify = (cfg.jwt_algorithm == "HS256" and cfg.jwt_secret ~= nil
        and cfg.jwt_secret ~= "")
        or (cfg.jwt_algorithm == "RS256" and type(cfg.jwt_keys) == "table"
        and next(cfg.jwt_keys) ~= nil)
    -- Switched off (TICKETING_GATEWAY_QUEUE_JOIN=off), or without the keys, every join
    -- goes to the waitingroom.
    cfg.enabled = cfg.enabled and can_verify and cfg.ticket_secret ~= nil
        and cfg.ticket_secret ~= ""
    door.configure({
        hmac = hmac_sha256, keyed_hmac = keyed_hmac, same = same_signature, to_hex = to_hex,
        from_hex = from_hex,
    }, cfg.ticket_secret)
    stats = ngx.shared[cfg.stats_dict]
    redis_link.configure(cfg, function(cause) stats:incr("reroute|" .. cause, 1, 0) end)
end

local function count(name, amount)
    stats:incr(name, amount or 1, 0)
end

local function pass(reason)
    count("fallback|" .. reason)
    return ngx.exec("@waitingroom")
end

-- --- the bearer token (only accepts; see HS256FastPath) -----------------------------------

-- The claims of an HS256 JWS of ours (the header exactly as we write it) signed with
-- ``secret``; nil for anything else.
local function signed_claims(token, secret)
    local prefix = cfg.token_header .. "."
    if token:sub(1, #prefix) ~= prefix then return nil end
    local body, signature = token:match("^([%w%-_]+)%.([%w%-_]+)$", #prefix + 1)
    if body == nil then return nil end
    local mac = keyed_hmac(secret, prefix .. body)
    if mac == nil or not same_signature(encode_b64url(mac), signature) then return nil end
    local raw = decode_b64url(body)
    if raw == nil or encode_b64url(raw) ~= body then return nil end -- canonical only
    local claims = cjson.decode(raw)
    if type(claims) ~= "table" then return nil end
    return claims, raw
end

-- The claims of an RS256 JWS signed by one of the platform's public keys, named by its kid
-- (header alg, kid and at most typ "JWT"); nil for anything else.
local function rs256_claims(token)
    local head, body, signature = token:match("^([%w%-_]+)%.([%w%-_]+)%.([%w%-_]+)$")
    if head == nil then return nil end
    local raw_head = decode_b64url(head)
    if raw_head == nil or encode_b64url(raw_head) ~= head then return nil end
    local header = cjson.decode(raw_head)
    if type(header) ~= "table" or header.alg ~= "RS256" or type(header.kid) ~= "string" then
        return nil
    end
    if header.typ ~= nil and header.typ ~= "JWT" then return nil end
    for name in pairs(header) do
        if not RS256_HEADER[name] then return nil end
    end
    local pem = cfg.jwt_keys[header.kid]
    if type(pem) ~= "string" then return nil end
    local pkey = public_keys[header.kid]
    if pkey == nil then
        pkey = load_public_key(pem)
        if pkey == nil then return nil end
        public_keys[header.kid] = pkey
    end
    local sig = decode_b64url(signature)
    if sig == nil or encode_b64url(sig) ~= signature then return nil end
    if not rs256_valid(pkey, head .. "." .. body, sig) then return nil end
    local raw = decode_b64url(body)
    if raw == nil or encode_b64url(raw) ~= body then return nil end
    local claims = cjson.decode(raw)
    if type(claims) ~= "table" then return nil end
    return claims, raw
end

-- A JSON array of strings, as the waitingroom requires "roles" to be. cjson decodes
-- [] and {} alike, so an empty one is told apart in the claims' own text.
local function strings_array(t, raw)
    if type(t) ~= "table" then return false end
    local n = 0
    for k, v in pairs(t) do
        if type(k) ~= "number" or type(v) ~= "string" then return false end
        n = n + 1
    end
    if n ~= #t then return false end
    return n > 0 or raw:find('"roles"%s*:%s*%[%s*%]') ~= nil
end

local function verified_user(now_s)
    local header = ngx.var.http_authorization
    if header == nil then return nil end
    local scheme, token = header:match("^(%a+) +([%w%-_%.]+) *$")
    if scheme == nil or scheme:lower() ~= "bearer" then return nil end
    local rs256 = cfg.jwt_algorithm == "RS256"
    if rs256 then
        local known = verified:get(token)
        if known ~= nil then
            if known.exp > now_s - cfg.leeway then return known.sub end
            return nil
        end
    end
    local claims, raw_claims
    if rs256 then
        claims, raw_claims = rs256_claims(token)
    else
        claims, raw_claims = signed_claims(token, cfg.jwt_secret)
    end
    if claims == nil then return nil end
    for name in pairs(claims) do
        if not TOKEN_CLAIMS[name] then return nil end
    end
    local sub, roles = claims.sub, claims.roles
    if type(sub) ~= "string" or sub == "" then return nil end
    if roles ~= nil and not strings_array(roles, raw_claims) then return nil end
    local exp, iat, nbf = claims.exp, claims.iat, claims.nbf
    if type(exp) ~= "number" or floor(exp) ~= exp or exp <= now_s - cfg.leeway then
        return nil
    end
    for _, t in ipairs({ iat or false, nbf or false }) do
        if t and (type(t) ~= "number" or floor(t) ~= t or t > now_s + cfg.leeway) then
            return nil
        end
    end
    -- Remembered until it expires: a time in the past stays past, so only exp is checked
    -- again on a hit.
    if rs256 then verified:set(token, { sub = sub, exp = exp }, exp + cfg.leeway - now_s) end
    return sub
end

-- --- a queue ticket brought back (waitingroom/queue/ticket.py read_ticket's accepts) -------

local RESTORABLE = { waiting = true, pre = true }

-- A join's body as the gateway takes it: an object of the fan's queue ticket, a solved
-- challenge (deploy/lua/queue_door.lua), or both, each a string; nil for anything else
-- (other fields, another shape, an empty one: the waitingroom's 400, or its plain join).
local function join_body()
    ngx.req.read_body()
    local raw = ngx.req.get_body_data() -- nil when it went to a file: not the plain case
    if raw == nil then return nil end
    local body = cjson.decode(raw)
    if type(body) ~= "table" or next(body) == nil then return nil end
    for name, value in pairs(body) do
        if (name ~= "queue_ticket" and name ~= "altcha") or type(value) ~= "string" then
            return nil
        end
    end
    local altcha = body.altcha -- QueueJoinBody's bounds: 1 to 4,096, no NUL
    if altcha ~= nil and (#altcha == 0 or #altcha > 4096 or altcha:find("\0", 1, true)) then
        return nil
    end
    return body
end

-- A queue ticket brought back: (where, place, epoch) to restore, false to join without
-- restoring (a ticket of ours for a place that cannot be restored), or nil for anything
-- the waitingroom must judge (a ticket it would refuse, someone else's, another event's, an
-- expired one, and every admitted fan's ticket: those are signed with a key derived from
-- the admission secret, which the gateway never holds, and one under the line key is a
-- forgery the waitingroom refuses).
local function restore_from_ticket(queue_ticket, user, event_id, now_s)
    local claims = signed_claims(queue_ticket, cfg.ticket_secret)
    if claims == nil then return nil end
    local sub, event, where, place, epoch, exp, iat =
        claims.sub, claims.event_id, claims.where, claims.place, claims.epoch, claims.exp,
        claims.iat
    if sub ~= user or event ~= tonumber(event_id) then return nil end
    if type(where) ~= "string" or type(epoch) ~= "string" or type(place) ~= "number" then
        return nil
    end
    if type(exp) ~= "number" or exp <= now_s or (iat ~= nil and
        (type(iat) ~= "number" or iat > now_s)) then
        return nil
    end
    if where == "admitted" then return nil end
    if not RESTORABLE[where] then return false end
    if floor(place) ~= place or math.abs(place) >= 2 ^ 53 then return nil end
    return where, string.format("%d", place), epoch
end

-- --- Redis, events and figures (through a link: deploy/lua/redis_link.lua) -----------------

-- Per worker: the waitingroom's snapshot of queue-enabled events (read at most once a
-- second), and each queue's figures (at most once a second per event, as FiguresCache).
local events = { at = -1, by_id = {} }
local figures_of = {}

local function event_of(link, event_id, now_s)
    if now_s - events.at >= 1 then
        local raw = link:call(cfg.events_key, "get", cfg.events_key)
        events.at = now_s -- after the read: the requests meanwhile read too, not find nothing
        if type(raw) == "string" then
            local list = cjson.decode(raw)
            if type(list) == "table" then
                local by_id = {}
                for _, e in ipairs(list) do
                    if type(e) == "table" and e.on_sale_ms then by_id[e.event_id] = e end
                end
                events.by_id = by_id
            end
        end
    end
    return events.by_id[tonumber(event_id)]
end

local function hash(reply)
    local out = {}
    if type(reply) == "table" then
        for i = 1, #reply, 2 do out[reply[i]] = reply[i + 1] end
    end
    return out
end

-- ticketing/domain/queue.py measured_rate_per_minute (window 60 s, span at least 5 s)
local function measured_per_minute(by_second, now_second)
    local total, first = 0, nil
    for second, n in pairs(by_second) do
        local s = tonumber(second)
        if s and now_second - cfg.rate_window < s and s <= now_second then
            total = total + (tonumber(n) or 0)
            if first == nil or s < first then first = s end
        end
    end
    if total == 0 then return 0 end
    local span = min(cfg.rate_window, max(cfg.rate_min_span, now_second - first + 1))
    return total * 60 / span
end

local function figures(link, event_id, now_s)
    local cached = figures_of[event_id]
    if cached and now_s - cached.at < 1 then return cached end
    local key = cfg.key_prefix .. event_id .. "}:"
    local replies = link:pipeline(key, {
        { "hmget", key .. "config", "paused", "challenge_difficulty", "challenge_auto",
          "cluster_rule" },
        { "zcard", key .. "waiting" },
        { "zcard", key .. "pre" },
        { "hgetall", key .. "state" },
        { "hgetall", key .. "rate" },
        { "hmget", key .. "fair", "commitment", "recorded" },
        { "exists", key .. "seed" },
        -- A registered presale's end (Unix ms; 0: none), as waitingroom/queue/presale_gate.py
        -- keeps it; missing until the waitingroom has written it.
        { "get", key .. "presale" },
    })
    if type(replies) ~= "table" then return nil end
    for i = 1, 8 do
        if type(replies[i]) == "table" and replies[i][1] == false then return nil end
    end
    local conf, waiting, pre, state, rate, fair, seed =
        replies[1], replies[2], replies[3], hash(replies[4]), hash(replies[5]), replies[6],
        replies[7]
    local drawn = state.drawn == "1"
    -- The door's difficulty in force (ticketing/domain/challenge.py effective_difficulty):
    -- the operator's, raised by the automatic mode's level while that mode is on.
    local difficulty, auto = tonumber(conf[2]) or 0, conf[3] == "1"
    if auto then difficulty = max(difficulty, tonumber(state.challenge_level) or 0) end
    cached = {
        at = now_s,
        paused = conf[1] == "1",
        challenge = difficulty > 0,
        challenge_auto = auto,
        -- one person, one place's rule in force: the waitingroom applies it
        cluster_rule = type(conf[4]) == "string" and conf[4] ~= "off",
        sold_out = state.sold_out == "1",
        -- every seat left is in a hold (the admitters' TICK keeps this flag)
        all_held = state.all_held == "1" and state.sold_out ~= "1",
        -- nil: not known here (the key is missing), the waitingroom's to say
        presale_until = tonumber(replies[8]),
        waiting = waiting + (drawn and 0 or pre),
        rate = measured_per_minute(rate, floor(now_s)),
        -- The pre-queue's seed committed to, and that commitment on record in PostgreSQL
        -- (waitingroom/queue/draw.py marks it): only then may anyone enter the pre-queue.
        committed = type(fair[1]) == "string" and fair[1] == fair[2] and seed == 1,
    }
    figures_of[event_id] = cached
    return cached
end

-- --- the answer ---------------------------------------------------------------------------

local function ticket(user, event_id, where, place, epoch, now_s)
    -- waitingroom/queue/ticket.py issue_ticket's claims, in its order; place is the PLACE
    -- script's integer text, written as it came.
    local iat = floor(now_s)
    local claims = '{"sub":' .. quote(user) .. ',"event_id":' .. event_id
        .. ',"where":' .. quote(where) .. ',"place":' .. place .. ',"epoch":' .. quote(epoch)
        .. ',"iat":' .. iat .. ',"exp":' .. (iat + cfg.ticket_ttl) .. '}'
    local signing_input = cfg.token_header .. "." .. encode_b64url(claims)
    return signing_input .. "." .. encode_b64url(keyed_hmac(cfg.ticket_secret, signing_input))
end

-- --- one person, one place (waitingroom/queue/signals_rules.py, signals_store.py) ---------

-- While an event's cluster_rule is on, its joins go to the waitingroom (pass "cluster"),
-- which applies it; while off, the gateway records the signals of each fan it places, as
-- the waitingroom does: the account in its address block's and its device's sets, each
-- counted once in sig:sizes (the operators' list), and the device cookie set on a browser
-- without one. A join again through here records nothing new (a fan's first join does).
local DEVICE_COOKIE = "tq_device"
local DEVICE_MAX_AGE = 400 * 24 * 3600
local random_bytes = ffi.new("unsigned char[16]")

-- signals_rules.address_block: IPv4 /24, IPv6 /48 written as Python's ipaddress writes it
-- (an IPv4-mapped address as its IPv4); nil for anything else.
local function address_block(address)
    local v4 = address:match("^::[fF][fF][fF][fF]:(%d+%.%d+%.%d+%.%d+)$") or address
    local a, b, c = v4:match("^(%d+)%.(%d+)%.(%d+)%.%d+$")
    if a then return a .. "." .. b .. "." .. c .. ".0/24" end
    if not address:find(":", 1, true) or address:find("%.") then return nil end
    local head, tail = address:match("^(.-)::(.*)$")
    local groups = {}
    for g in (head or address):gmatch("[^:]+") do groups[#groups + 1] = g end
    if head then
        local rest = {}
        for g in tail:gmatch("[^:]+") do rest[#rest + 1] = g end
        for _ = 1, 8 - #groups - #rest do groups[#groups + 1] = "0" end
        for _, g in ipairs(rest) do groups[#groups + 1] = g end
    end
    if #groups ~= 8 then return nil end
    local block = {}
    for i = 1, 3 do
        local n = tonumber(groups[i], 16)
        if n == nil or #groups[i] > 4 then return nil end
        block[i] = string.format("%x", n)
    end
    while #block > 0 and block[#block] == "0" do block[#block] = nil end
    return table.concat(block, ":") .. "::/48"
end

-- signals_rules.device_key: a hash of a cookie of ours (32 lowercase hex), else nil.
-- SHA-256 fetched once per worker (SHA256() looks the algorithm up on every call).
local SHA256_MD = C.EVP_MD_fetch(nil, "SHA256", nil)
local device_md = ffi.new("unsigned char[32]")
local function device_key(cookie)
    if cookie == nil or #cookie ~= 32 or cookie:find("[^0-9a-f]") then return nil end
    if SHA256_MD == nil or C.EVP_Digest(cookie, #cookie, device_md, nil, SHA256_MD, nil) ~= 1 then
        return nil
    end
    return to_hex(ffi.string(device_md, 12)) -- the first 24 hex digits
end

-- The join's signal names (block:..., device:...) and the cookie to set, if any.
local function join_signals()
    local names, new_device = {}, nil
    local block = address_block(ngx.var.remote_addr or "")
    if block then names[#names + 1] = "block:" .. block end
    local device = device_key(ngx.var["cookie_" .. DEVICE_COOKIE])
    if device == nil and C.RAND_bytes(random_bytes, 16) == 1 then
        new_device = to_hex(ffi.string(random_bytes, 16))
        device = device_key(new_device)
    end
    if device then names[#names + 1] = "device:" .. device end
    return names, new_device
end

-- A fan placed (or restored) here: their account in each signal's set, and an account new
-- to a set counted once in sig:sizes, as the waitingroom's SIGNAL_JOIN counts it. Once per
-- fan and event (a join again adds nothing), after the place is theirs; best effort.
-- Not on the join's own round trip: each worker gathers them and writes them every
-- SIGNALS_EVERY seconds, one EVAL per event and batch (a surge's joins would otherwise pay
-- a round trip and a script call each: a fifth of the gateway's join throughput here).
-- KEYS: sig:sizes, then a signal's set per pair  ARGV: user, signal name, per pair
local RECORD = "for i = 2, #KEYS do if redis.call('SADD', KEYS[i], ARGV[2 * i - 3]) == 1 "
    .. "then redis.call('ZINCRBY', KEYS[1], 1, ARGV[2 * i - 2]) end end"
local SIGNALS_EVERY = 0.1
local SIGNALS_BATCH = 500 -- pairs per EVAL
local SIGNALS_MAX = 50000 -- pairs waiting per worker; beyond, dropped and counted
local signals_waiting, signals_count, signals_timer = {}, 0, false

local function write_signals(premature)
    signals_timer = false
    local batches = signals_waiting
    signals_waiting, signals_count = {}, 0
    for key, pairs_of in pairs(batches) do
        local link = redis_link.open(key) -- nil: no node reachable
        local broken = link == nil
        for first = 1, #pairs_of, SIGNALS_BATCH do
            local last = min(#pairs_of, first + SIGNALS_BATCH - 1)
            local reply = nil
            if not broken then
                local call = { RECORD, last - first + 2, key .. "sig:sizes" }
                for i = first, last do call[#call + 1] = key .. "sig:" .. pairs_of[i][2] end
                for i = first, last do
                    call[#call + 1] = pairs_of[i][1]
                    call[#call + 1] = pairs_of[i][2]
                end
                reply = link:call(key, "eval", unpack(call))
            end
            -- nil: the connection broke (or none); false: Redis refused the script
            if reply == nil or reply == false then
                count("signals_failed", last - first + 1)
                broken = broken or reply == nil
            end
        end
        if link ~= nil then
            if broken then link:close() else link:release() end
        end
    end
end

local function record_signals(key, user, signals)
    if #signals == 0 then return end
    if signals_count + #signals > SIGNALS_MAX then
        count("signals_failed", #signals)
        return
    end
    local pairs_of = signals_waiting[key]
    if pairs_of == nil then
        pairs_of = {}
        signals_waiting[key] = pairs_of
    end
    for _, name in ipairs(signals) do pairs_of[#pairs_of + 1] = { user, name } end
    signals_count = signals_count + #signals
    if not signals_timer then
        signals_timer = ngx.timer.at(SIGNALS_EVERY, write_signals) and true or false
    end
end

local function observe_wait(seconds)
    for _, bound in ipairs(cfg.wait_buckets) do
        if seconds <= bound then count("wait_bucket|" .. bound) end
    end
    count("wait_count")
    count("wait_sum", seconds)
end

-- --- a join's PLACE, shared --------------------------------------------------------------

-- PLACE takes many fans' joins in one call (waitingroom/queue/scripts_places.py), each
-- decided as it would be alone. A worker makes one PLACE call per event at a time; the
-- event's joins that arrive meanwhile wait and go together in the next, which the first of
-- them sends. An idle gateway sends each join alone, at once, as before; a surge's joins
-- share a round trip and a script call (in Redis, the script's start and the state it reads
-- once a call). A join waits for at most one call ahead of its own.
local PLACE_BATCH = 64 -- joins per call at most
local PLACE_SHARED_KEYS = 6
local batches = {} -- per event key: the call being gathered
local gates = {} -- per event key: a semaphore of one, held for the call under way

local function place_call(link, key, batch)
    local call = { cfg.place_sha, PLACE_SHARED_KEYS + #batch.keys,
        key .. "waiting", key .. "pre", key .. "active", key .. "seen", key .. "state",
        key .. "departed" }
    for _, k in ipairs(batch.keys) do call[#call + 1] = k end
    call[#call + 1] = cfg.user_limit[1]
    call[#call + 1] = cfg.user_limit[2]
    call[#call + 1] = cfg.ip_limit[1]
    call[#call + 1] = cfg.ip_limit[2]
    for _, a in ipairs(batch.args) do call[#call + 1] = a end
    return link:call(key, "evalsha", unpack(call))
end

-- This join's PLACE reply (kind, place, rank, pre_ahead, epoch, new), or nil when the call
-- failed (NOSCRIPT, Redis unreachable, a redirection not followed, no answer in time):
-- then nothing was placed or recorded by it, and the join goes to the waitingroom.
-- ``keys``: the fan's three keys; ``args``: its eight arguments (scripts_places.py).
local function place(link, key, keys, args)
    local batch = batches[key]
    if batch == nil or batch.n >= PLACE_BATCH then
        batch = { n = 0, keys = {}, args = {}, done = semaphore.new(0) }
        batches[key] = batch
    end
    batch.n = batch.n + 1
    local i = batch.n
    for _, k in ipairs(keys) do batch.keys[#batch.keys + 1] = k end
    for _, a in ipairs(args) do batch.args[#batch.args + 1] = a end
    local wait_s = cfg.redis_timeout_ms * 3 / 1000
    if i > 1 then
        -- Another join sends it. Past the wait, this join goes to the waitingroom, whose
        -- PLACE finds the fan already placed should the late call have placed them (and
        -- refuses a solved challenge that call recorded as used, with a fresh challenge).
        if not batch.done:wait(wait_s) or batch.reply == nil then return nil end
    else
        local gate = gates[key]
        if gate == nil then
            gate = semaphore.new(1)
            gates[key] = gate
        end
        local entered = gate:wait(wait_s)
        if batches[key] == batch then batches[key] = nil end -- later joins gather the next
        if entered then
            count("place_calls")
            count("place_joins", batch.n)
            local ok, reply = pcall(place_call, link, key, batch)
            gate:post(1)
            if ok and type(reply) == "table" and #reply == 7 * batch.n then
                batch.reply = reply
            else
                link:close() -- an error, or a connection in an unknown state
            end
        end
        if batch.n > 1 then batch.done:post(batch.n - 1) end
        if batch.reply == nil then return nil end
    end
    local r, at = batch.reply, (i - 1) * 7
    return r[at + 1], r[at + 2], tonumber(r[at + 3]), tonumber(r[at + 4]), r[at + 5],
        tonumber(r[at + 6])
end

function M.join()
    if not cfg.enabled then return pass("disabled") end
    if ngx.req.get_method() ~= "POST" then return pass("method") end
    local now_s = now()
    local user = verified_user(now_s)
    if user == nil then return pass("token") end
    local event_id = tonumber(ngx.var.queue_event_id)
    if event_id == nil or event_id < 1 or event_id > cfg.max_id then return pass("event_id") end
    event_id = string.format("%d", event_id) -- "007" is event 7, as the waitingroom reads it
    local where, place_arg, epoch_arg = "", "0", ""
    local altcha
    local length = ngx.var.http_content_length
    if (length ~= nil and length ~= "0") or ngx.var.http_transfer_encoding ~= nil then
        local body = join_body()
        if body == nil then return pass("body") end
        altcha = body.altcha
        if body.queue_ticket ~= nil then
            local w, p, e = restore_from_ticket(body.queue_ticket, user, event_id, now_s)
            if w == nil then return pass("body") end
            if w then where, place_arg, epoch_arg = w, p, e end
        end
    end

    -- Every key of an event's queue shares its hash tag: one slot, one node of a cluster.
    local key = cfg.key_prefix .. event_id .. "}:"
    local link = redis_link.link() -- dialled at its first command, if any
    local event = event_of(link, event_id, now_s)
    if event == nil then
        link:release()
        return pass(link.unreachable and "redis" or "event") -- no node answered, or no such event
    end
    local fig = figures(link, event_id, now_s)
    if fig == nil then link:release(); return pass("redis") end
    if fig.cluster_rule then link:release(); return pass("cluster") end
    if fig.presale_until == nil or now_s * 1000 < fig.presale_until then
        -- A registered presale runs (or nothing here says whether the event has one): the
        -- waitingroom checks the fan's presale code against its record, and refuses or
        -- places them.
        link:release()
        return pass("presale")
    end
    local door_signature, door_ttl
    if fig.challenge then
        -- The door asks for a solved challenge: one queue_door.lua takes is checked here;
        -- none, or one it does not take, goes to the waitingroom, which refuses it with a
        -- fresh challenge (or takes it) and explains.
        if altcha ~= nil then
            door_signature, door_ttl = door.solved(altcha, user, event_id, now_s)
        end
        if door_signature == nil then link:release(); return pass("challenge") end
    end
    local on_sale = now_s * 1000 >= event.on_sale_ms
    if not on_sale and not fig.committed then
        link:release()
        return pass("uncommitted") -- the waitingroom commits (and records) the seed first
    end
    if where == "pre" and on_sale then
        -- After the draw a pre-queue ticket may need the recorded draw (PostgreSQL), should
        -- Redis have lost the queue: the waitingroom's to look up.
        link:release()
        return pass("pre_ticket")
    end

    -- A solved challenge is used once, as the waitingroom records it
    -- (waitingroom/queue/store_challenge.py): PLACE records it in the step that places the
    -- fan, and refuses (kind "used", nothing placed) one used before, which the waitingroom
    -- answers 403 challenge_failed.
    -- Without one, a key PLACE reads anyway stands in (while a cluster's slot migrates, a
    -- key missing on the node makes the call TRYAGAIN: a new one passes the join on then).
    local used_key = door_signature and key .. "challenge:used:" .. door_signature
        or key .. "state"
    local kind, place_of, rank, pre_ahead, epoch, new = place(link, key,
        { key .. "rl:user:" .. user, key .. "rl:ip:" .. ngx.var.remote_addr, used_key },
        { user, "join", string.format("%d", event.on_sale_ms), where, place_arg, epoch_arg,
          "1", door_signature and string.format("%d", door_ttl) or "0" })
    if kind == nil then
        -- NOSCRIPT (Redis restarted; a replica promoted, a node new to the cluster: Redis
        -- 7 keeps no script on a replica) or any error: the waitingroom loads the script
        -- again (its cluster client on every primary) or answers 503 itself. Nothing was
        -- placed, and no challenge recorded, by a call that failed.
        link:release()
        return pass("redis")
    end
    local status = STATUS_OF_KIND[kind]
    if status == nil then
        -- admitted (the answer carries an admission token), limited (429 with its wait) or
        -- a challenge used before (403): the waitingroom answers. PLACE changed nothing for
        -- these but the fan's limit count (a limited call is not counted) and recorded no
        -- challenge: an admitted fan's goes there unused.
        link:release()
        return pass(kind == "limited" and "limited" or kind == "used" and "challenge" or "kind")
    end
    local signals, new_device = join_signals()
    if new ~= 0 then record_signals(key, user, signals) end
    if fig.challenge_auto then
        -- The automatic mode's window (waitingroom/queue/store_challenge.py count_door): a
        -- join answered here is counted here, one passed on is counted there. Best effort.
        local second = key .. "challenge:joins:" .. string.format("%d", floor(now_s))
        link:pipeline(key, { { "incr", second }, { "expire", second, 30 } })
    end
    link:release()

    local position, ahead, eta = "null", "null", "null"
    if kind == "waiting" then
        local behind = rank + pre_ahead
        if fig.sold_out then
            status = "sold_out"
        else
            position, ahead = tostring(behind + 1), tostring(behind)
            if fig.all_held then
                status = "all_held"
            elseif fig.paused then
                status = "paused"
            elseif fig.rate > 0 then
                eta = ceil((behind + 1) * 60 / fig.rate)
                if new == 1 then observe_wait(eta) end
                eta = tostring(eta)
            end
        end
    end
    count("joins|" .. event_id .. "|" .. (kind == "sold_out" and "sold_out" or OUTCOMES[new]))

    local body = table.concat({
        '{"event_id":', event_id, ',"status":"', status, '","position":', position,
        ',"ahead":', ahead, ',"eta_seconds":', eta, ',"queue_ticket":"',
        ticket(user, event_id, kind, place_of, epoch, now_s), '","on_sale_at":',
        quote(event.on_sale_at), ',"waiting":', fig.waiting, ',"admit_rate_per_minute":',
        string.format("%.1f", fig.rate), '}',
    })
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    if new_device then
        ngx.header["Set-Cookie"] = DEVICE_COOKIE .. "=" .. new_device .. "; Max-Age="
            .. DEVICE_MAX_AGE .. "; Path=/queue/; HttpOnly; SameSite=Lax"
    end
    ngx.header["X-Queue-Join"] = "gateway" -- which of the two answered (tests, operators)
    ngx.print(body)
end

-- --- metrics (the gateway's metrics listener) ---------------------------------------------

function M.metrics()
    local lines = {
        "# HELP ticketing_gateway_queue_joins_total Joins the gateway answered itself, by outcome.",
        "# TYPE ticketing_gateway_queue_joins_total counter",
    }
    local fallbacks, reroutes, buckets = {}, {}, {}
    for _, name in ipairs(stats:get_keys(0)) do
        local value = stats:get(name)
        local a, b, c = name:match("^([^|]+)|?([^|]*)|?([^|]*)$")
        if a == "joins" then
            lines[#lines + 1] = string.format(
                'ticketing_gateway_queue_joins_total{event_id="%s",outcome="%s"} %d', b, c, value)
        elseif a == "fallback" then
            fallbacks[#fallbacks + 1] = string.format(
                'ticketing_gateway_queue_join_fallbacks_total{reason="%s"} %d', b, value)
        elseif a == "reroute" then
            reroutes[#reroutes + 1] = string.format(
                'ticketing_gateway_redis_reroutes_total{cause="%s"} %d', b, value)
        elseif a == "wait_bucket" then
            buckets[tonumber(b)] = value
        end
    end
    lines[#lines + 1] = "# HELP ticketing_gateway_queue_join_fallbacks_total Joins the "
        .. "gateway passed to the waitingroom, by reason."
    lines[#lines + 1] = "# TYPE ticketing_gateway_queue_join_fallbacks_total counter"
    for _, line in ipairs(fallbacks) do lines[#lines + 1] = line end
    lines[#lines + 1] = "# HELP ticketing_gateway_redis_reroutes_total Redis commands of "
        .. "joins sent on to another node (moved, ask), or after asking the topology again "
        .. "(readonly, unreachable)."
    lines[#lines + 1] = "# TYPE ticketing_gateway_redis_reroutes_total counter"
    for _, line in ipairs(reroutes) do lines[#lines + 1] = line end
    local name = "ticketing_gateway_queue_estimated_wait_seconds"
    lines[#lines + 1] = "# HELP " .. name .. " The wait a fan was told when the gateway "
        .. "placed them (from the measured admission rate)."
    lines[#lines + 1] = "# TYPE " .. name .. " histogram"
    for _, bound in ipairs(cfg.wait_buckets) do
        lines[#lines + 1] = string.format('%s_bucket{le="%s"} %d', name,
            string.format("%.1f", bound), buckets[bound] or 0)
    end
    local total = stats:get("wait_count") or 0
    lines[#lines + 1] = string.format('%s_bucket{le="+Inf"} %d', name, total)
    lines[#lines + 1] = string.format("%s_sum %s", name, tostring(stats:get("wait_sum") or 0))
    lines[#lines + 1] = string.format("%s_count %d", name, total)
    lines[#lines + 1] = "# HELP ticketing_gateway_queue_place_calls_total PLACE calls the "
        .. "gateway's joins made (each carries the joins of one event that arrived while the "
        .. "worker's previous call for it was under way)."
    lines[#lines + 1] = "# TYPE ticketing_gateway_queue_place_calls_total counter"
    lines[#lines + 1] = string.format("ticketing_gateway_queue_place_calls_total %d",
        stats:get("place_calls") or 0)
    lines[#lines + 1] = "# HELP ticketing_gateway_queue_place_joins_total Joins sent in those "
        .. "PLACE calls: over the calls, the joins per call."
    lines[#lines + 1] = "# TYPE ticketing_gateway_queue_place_joins_total counter"
    lines[#lines + 1] = string.format("ticketing_gateway_queue_place_joins_total %d",
        stats:get("place_joins") or 0)
    name = "ticketing_gateway_queue_signals_failed_total"
    lines[#lines + 1] = "# HELP " .. name .. " One person, one place signals of fans the "
        .. "gateway placed that were not recorded (Redis failed, or too many waiting)."
    lines[#lines + 1] = "# TYPE " .. name .. " counter"
    lines[#lines + 1] = string.format("%s %d", name, stats:get("signals_failed") or 0)
    ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    ngx.say(table.concat(lines, "\n"))
end

return M
