//! The Lua scripts: each runs atomically in Redis.

use std::sync::LazyLock;

use redis::Script;

/// Copies the entry `id` of stream `KEYS[1]` to stream `KEYS[2]` with the error, the
/// delivery count and the source id, then acks and deletes it. Runs only while the
/// entry is pending and owned by `consumer` (else returns 0: someone else has it).
///
/// KEYS: stream, dead. ARGV: group, id, consumer, error, deliveries.
const DEAD_LETTER: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not p[1] or p[1][2] ~= ARGV[3] then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local args = {KEYS[2], '*'}
if e[1] then for _, v in ipairs(e[1][2]) do args[#args + 1] = v end end
args[#args + 1] = 'otelconc.source_id'; args[#args + 1] = ARGV[2]
args[#args + 1] = 'otelconc.error'; args[#args + 1] = ARGV[4]
args[#args + 1] = 'otelconc.deliveries'; args[#args + 1] = ARGV[5]
redis.call('XADD', unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
";

/// Commits a batch of finished jobs that added effects (those without go through a
/// plain `XACK` + `XDEL`: they need no marker), each on its own terms: sets the job's
/// dedup marker (NX, PX ttl) and only when the marker was new runs its effect commands;
/// an effect that fails moves the entry to the dead-letter stream `KEYS[2]` with its
/// error. Then acks and deletes every entry of the batch (one `XACK`, one
/// `XDEL`). Returns one {code, error} per job, in order: {1, ''} applied, {0, ''}
/// duplicate, {2, error} an effect failed (or was refused, below).
///
/// On a Redis Cluster node (`ARGV[3]` is `1`) every key of every effect command of a job
/// (`COMMAND GETKEYS`) must hash to the stream's slot by the same hash tag, checked
/// before any of that job's effects is applied: a single node that owns every slot
/// would run a foreign key without complaint, and the queue would break once its slots
/// are spread.
///
/// KEYS: stream, dead, then the m jobs' markers. ARGV: group, ttl ms, cluster (0 or 1),
/// m, then per job: id, deliveries, n, then n commands each as argc followed by its
/// args.
const COMMIT: &str = r"
local function tag(k)
  local s = string.find(k, '{', 1, true)
  if s then
    local e = string.find(k, '}', s + 1, true)
    if e and e > s + 1 then return string.sub(k, s + 1, e - 1) end
  end
  return k
end
local want = tag(KEYS[1])
local cluster = ARGV[3] == '1'
local out = {}
local ids = {}
local i = 5
for j = 1, tonumber(ARGV[4]) do
  local id = ARGV[i]
  local deliveries = ARGV[i + 1]
  local n = tonumber(ARGV[i + 2])
  i = i + 3
  local first = i
  local err = nil
  if cluster then
    for c = 1, n do
      local argc = tonumber(ARGV[i])
      local keys = redis.pcall('COMMAND', 'GETKEYS', unpack(ARGV, i + 1, i + argc))
      i = i + argc + 1
      if not err and type(keys) == 'table' and not keys.err then
        for _, k in ipairs(keys) do
          if tag(k) ~= want then
            err = 'effect key `' .. k .. '` is outside the queue\'s hash slot: in Redis Cluster '
              .. 'the keys of a job\'s effects must carry the queue\'s hash tag {' .. want .. '}'
            break
          end
        end
      end
    end
    i = first
  end
  local fresh = false
  if not err then
    fresh = redis.call('SET', KEYS[2 + j], '1', 'NX', 'PX', ARGV[2])
  end
  for c = 1, n do
    local argc = tonumber(ARGV[i])
    if fresh and not err then
      local r = redis.pcall(unpack(ARGV, i + 1, i + argc))
      if type(r) == 'table' and r.err then err = 'effect failed: ' .. r.err end
    end
    i = i + argc + 1
  end
  if err then
    local e = redis.call('XRANGE', KEYS[1], id, id)
    local args = {KEYS[2], '*'}
    if e[1] then for _, v in ipairs(e[1][2]) do args[#args + 1] = v end end
    args[#args + 1] = 'otelconc.source_id'; args[#args + 1] = id
    args[#args + 1] = 'otelconc.error'; args[#args + 1] = err
    args[#args + 1] = 'otelconc.deliveries'; args[#args + 1] = deliveries
    redis.call('XADD', unpack(args))
    out[j] = {2, err}
  elseif fresh then
    out[j] = {1, ''}
  else
    out[j] = {0, ''}
  end
  ids[j] = id
end
if #ids > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
return out
";

/// Resets the idle time of each entry still owned by `consumer`; returns the ids it
/// no longer owns (acked, or reclaimed by another consumer).
///
/// KEYS: stream. ARGV: group, consumer, ids...
const HEARTBEAT: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
";

/// Sets the idle time of entry `id` (still owned by `consumer`) to `idle` ms, so it
/// becomes reclaimable after `visibility - idle`. Returns 1, or 0 when not owned.
///
/// KEYS: stream. ARGV: group, consumer, id, idle ms.
const RELEASE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not p[1] or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
return 1
";

/// Deletes consumer `ARGV[2]` from the group only if it holds no pending entry.
/// Returns 1 deleted, 0 kept.
///
/// KEYS: stream. ARGV: group, consumer.
const DELETE_IF_IDLE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if p[1] then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// A script's source and its SHA1 (for `EVALSHA`).
pub(crate) struct Lua {
    code: &'static str,
    hash: String,
}

impl Lua {
    fn new(code: &'static str) -> Self {
        Self {
            code,
            hash: Script::new(code).get_hash().to_string(),
        }
    }
}

pub(crate) static DEAD_LETTER_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(DEAD_LETTER));
pub(crate) static COMMIT_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(COMMIT));
pub(crate) static HEARTBEAT_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(HEARTBEAT));
pub(crate) static RELEASE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(RELEASE));
pub(crate) static DELETE_IF_IDLE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(DELETE_IF_IDLE));

/// Keys and arguments of one script call, owned (so the call's future is `Send` for any
/// lifetime, which the `redis` crate's borrowed `ScriptInvocation` is not).
#[derive(Default)]
pub(crate) struct Call {
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    pub(crate) fn key(&mut self, k: impl AsRef<[u8]>) -> &mut Self {
        self.keys.push(k.as_ref().to_vec());
        self
    }

    pub(crate) fn arg(&mut self, a: impl redis::ToRedisArgs) -> &mut Self {
        self.args.extend(a.to_redis_args());
        self
    }

    fn cmd(&self, verb: &str, body: &[u8]) -> redis::Cmd {
        let mut c = redis::cmd(verb);
        c.arg(body).arg(self.keys.len());
        for k in &self.keys {
            c.arg(k.as_slice());
        }
        for a in &self.args {
            c.arg(a.as_slice());
        }
        c
    }

    /// `EVALSHA`, falling back to `EVAL` (which also loads it) when Redis does not have
    /// the script yet (a fresh or restarted server).
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &Lua,
        conn: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<T> {
        match self
            .cmd("EVALSHA", script.hash.as_bytes())
            .query_async(conn)
            .await
        {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.cmd("EVAL", script.code.as_bytes())
                    .query_async(conn)
                    .await
            }
            other => other,
        }
    }
}
