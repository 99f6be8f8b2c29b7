//! [`Queue`]: the producer side, and the handle a [`Worker`](crate::Worker) consumes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use otelconc::telemetry::Telemetry;
use otelconc::telemetry::names::ATTR_ERROR_TYPE;

use crate::error::Error;
use crate::keys::{GROUP, JOB_FIELD, Keys};
use crate::metrics::QueueMetrics;

/// A job queue in a Redis stream, typed by its job `J`.
///
/// Cloning is cheap; clones share one auto-reconnecting connection (the `redis` crate's
/// `ConnectionManager`: a lost connection is re-established on the next command, and a
/// command that fails meanwhile returns [`Error::Redis`]).
///
/// # Examples
/// ```no_run
/// # async fn f() -> Result<(), otelconc_redis::Error> {
/// let q = otelconc_redis::Queue::<u64>::connect("redis://127.0.0.1:6379", "numbers").await?;
/// let id = q.submit(&42).await?;
/// # let _ = id; Ok(()) }
/// ```
pub struct Queue<J> {
    pub(crate) inner: Arc<Inner>,
    _job: PhantomData<fn() -> J>,
}

pub(crate) struct Inner {
    pub(crate) keys: Keys,
    pub(crate) client: redis::Client,
    pub(crate) conn: ConnectionManager,
    pub(crate) telemetry: Telemetry,
    metrics: QueueMetrics,
}

impl<J> Clone for Queue<J> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _job: PhantomData,
        }
    }
}

impl<J> fmt::Debug for Queue<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.inner.keys.name)
            .field("stream", &self.inner.keys.stream)
            .finish_non_exhaustive()
    }
}

/// The connection settings every connection of this crate uses: commands time out after
/// `response` (a blocking read adds its block time), reconnects back off from 50 ms.
pub(crate) fn manager_config(response: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(response))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
        .set_number_of_retries(4)
}

/// The longest [`Queue::connect`] and [`WorkerBuilder::start`](crate::WorkerBuilder::start)
/// wait for Redis to answer before they fail with a timeout.
///
/// # Examples
/// ```
/// assert_eq!(otelconc_redis::CONNECT_TIMEOUT.as_secs(), 10);
/// ```
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `connect` for at most [`CONNECT_TIMEOUT`]; past it, a timeout error naming `url`.
pub(crate) async fn within_connect_timeout<T>(
    url: &str,
    connect: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(r) => r,
        Err(_) => Err(Error::Redis(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from Redis at {url} within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        )))),
    }
}

/// Response timeout of ordinary commands (long enough for `appendfsync always`).
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An entry in the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub dead_id: String,
    /// The id it had in the queue's stream (the job id).
    pub source_id: String,
    /// The last error.
    pub error: String,
    /// How often it had been delivered.
    pub deliveries: u64,
    /// Every field of the dead-letter entry whose value is UTF-8: those of the original
    /// entry (`job`, `traceparent`, ...) and the three this crate adds
    /// (`otelconc.source_id`, `otelconc.error`, `otelconc.deliveries`).
    pub fields: HashMap<String, String>,
}

impl<J: Serialize + DeserializeOwned> Queue<J> {
    /// Connects to Redis at `url` (`redis://host:port[/db]`) and makes sure the queue
    /// `name` exists: its stream and consumer group are created if missing
    /// (`XGROUP CREATE ... 0 MKSTREAM`, so entries added before any worker started are delivered too; an existing group is kept as it is).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty `name` (its hash tag `{}` would not keep the
    /// queue's keys in one Redis Cluster slot), before connecting.
    /// [`Error::Redis`] for a malformed URL, a key of the wrong type, or a server that
    /// cannot be reached: for a refused connection after four quick retries (about
    /// 1.2 s in all, in case the server is just starting), and after at most 10 s
    /// ([`CONNECT_TIMEOUT`](crate::CONNECT_TIMEOUT)) for one that does not answer (an
    /// error whose `is_timeout()` is true, naming the URL).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f() -> Result<(), otelconc_redis::Error> {
    /// let q = otelconc_redis::Queue::<String>::connect("redis://127.0.0.1:6379", "mail").await?;
    /// # let _ = q; Ok(()) }
    /// ```
    pub async fn connect(url: &str, name: &str) -> Result<Self, Error> {
        if name.is_empty() {
            return Err(Error::Config(
                "the queue name must not be empty (it is the hash tag of the queue's keys)".into(),
            ));
        }
        let client = redis::Client::open(url)?;
        let keys = Keys::new(name);
        within_connect_timeout(url, Self::connect_inner(client, keys)).await
    }

    async fn connect_inner(client: redis::Client, keys: Keys) -> Result<Self, Error> {
        let mut conn =
            ConnectionManager::new_with_config(client.clone(), manager_config(RESPONSE_TIMEOUT))
                .await?;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        let telemetry = Telemetry::global();
        let metrics = QueueMetrics::new(&telemetry, &keys.name_arc());
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                client,
                conn,
                telemetry,
                metrics,
            }),
            _job: PhantomData,
        })
    }

    /// The same queue (same connection) recording its metrics through `telemetry`'s
    /// meter and its `send` spans through `telemetry`'s tracer, instead of the global
    /// providers ([`Telemetry::global`] at [`connect`](Self::connect) time); a
    /// [`Worker`](crate::Worker) built on the returned queue uses it too. Under
    /// [`SpanPolicy::Never`](otelconc::telemetry::SpanPolicy::Never) no span is built
    /// (the caller's context still travels in each entry).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f() -> Result<(), otelconc_redis::Error> {
    /// use otelconc::telemetry::Telemetry;
    /// let q = otelconc_redis::Queue::<u64>::connect("redis://127.0.0.1:6379", "numbers")
    ///     .await?
    ///     .with_telemetry(Telemetry::global());
    /// # let _ = q; Ok(()) }
    /// ```
    #[must_use]
    pub fn with_telemetry(self, telemetry: Telemetry) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                keys: i.keys.clone(),
                client: i.client.clone(),
                conn: i.conn.clone(),
                metrics: QueueMetrics::new(&telemetry, &i.keys.name_arc()),
                telemetry,
            }),
            _job: PhantomData,
        }
    }

    /// Appends `job` to the queue in a `send {queue}` span that is a child of the
    /// current context, and returns the entry id (the job's id). See
    /// [`submit_with_context`](Self::submit_with_context).
    ///
    /// # Errors
    /// As [`submit_with_context`](Self::submit_with_context).
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped after the `XADD` was sent, the job may or may not be in
    /// the queue.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// let id = q.submit(&7).await?;
    /// # let _ = id; Ok(()) }
    /// ```
    pub fn submit(&self, job: &J) -> impl Future<Output = Result<String, Error>> + Send + use<J> {
        self.submit_with_context(job, &otelconc::telemetry::current_context())
    }

    /// Appends `job` (as JSON, field `job`) with `XADD`, in a `send {queue}` PRODUCER
    /// span that is a child of `cx`; the span's context (`traceparent`, `tracestate`,
    /// `baggage`, per the global propagator) is written into the entry's fields, so the
    /// worker's `process` span joins the same trace. Returns the entry id.
    ///
    /// The job is serialized when this is called, not when the future is polled: the
    /// future borrows nothing, so generic code can spawn it: it is `Send` whatever `J` is
    /// (`J` need not be `Sync`), and `'static` when `J` is.
    ///
    /// # Errors
    /// [`Error::Encode`] when `job` does not serialize; [`Error::Redis`] when Redis
    /// cannot be reached or refuses (the job is then not queued, unless the connection
    /// was lost after Redis applied the `XADD`: at-least-once applies to submits too).
    ///
    /// # Cancel safety
    /// As [`submit`](Self::submit).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// use std::collections::HashMap;
    /// let incoming: HashMap<String, String> = HashMap::new(); // a request's headers
    /// let cx = otelconc::telemetry::extract(&incoming);
    /// let id = q.submit_with_context(&7, &cx).await?;
    /// # let _ = id; Ok(()) }
    /// ```
    pub fn submit_with_context(
        &self,
        job: &J,
        cx: &Context,
    ) -> impl Future<Output = Result<String, Error>> + Send + use<J> {
        let inner = self.inner.clone();
        let payload = serde_json::to_vec(job).map_err(Error::Encode);
        let cx = cx.clone();
        async move {
            let payload = payload?;
            let keys = &inner.keys;
            let span_cx = crate::telemetry::send_span(&inner.telemetry, &cx, &keys.name, None);
            let headers = headers(span_cx.as_ref().unwrap_or(&cx));
            let mut cmd = redis::cmd("XADD");
            entry(&mut cmd, &keys.stream, &payload, &headers);
            let mut conn = inner.conn.clone();
            let result: redis::RedisResult<String> = cmd.query_async(&mut conn).await;
            match &result {
                Ok(_) => inner.metrics.sent(1, None),
                Err(e) => inner.metrics.sent(1, Some(error_type(e))),
            }
            end_send(
                span_cx.as_ref(),
                result.as_ref().ok(),
                result.as_ref().err(),
            );
            Ok(result?)
        }
    }

    /// Appends every job of `jobs` in pipelined round trips (`XADD`s sent together, 1,000
    /// per round trip), in one `send {queue}` PRODUCER span (child of the current
    /// context, with `messaging.batch.message_count`) whose context every entry
    /// carries. Returns the entry ids, in the order of `jobs`. For producers that have
    /// many jobs at hand: one round trip per chunk instead of one per job.
    ///
    /// The jobs are serialized when this is called; the future borrows nothing (it is
    /// `Send`, and `'static` for a `'static` job type).
    ///
    /// # Errors
    /// [`Error::Encode`] when a job does not serialize (nothing is sent);
    /// [`Error::Redis`] when Redis cannot be reached or refuses: chunks sent before the
    /// failing one are queued, and the failing chunk may be in part.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped midway, some of the jobs may be queued.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// let ids = q.submit_many(&[1, 2, 3]).await?;
    /// assert_eq!(ids.len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn submit_many(
        &self,
        jobs: &[J],
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + use<J> {
        let inner = self.inner.clone();
        let payloads: Result<Vec<Vec<u8>>, Error> = jobs
            .iter()
            .map(|j| serde_json::to_vec(j).map_err(Error::Encode))
            .collect();
        let cx = otelconc::telemetry::current_context();
        async move {
            let payloads = payloads?;
            if payloads.is_empty() {
                return Ok(Vec::new());
            }
            let keys = &inner.keys;
            let span_cx = crate::telemetry::send_span(
                &inner.telemetry,
                &cx,
                &keys.name,
                Some(payloads.len()),
            );
            let headers = headers(span_cx.as_ref().unwrap_or(&cx));
            let mut conn = inner.conn.clone();
            let mut ids = Vec::with_capacity(payloads.len());
            let mut failed = None;
            for chunk in payloads.chunks(SUBMIT_CHUNK) {
                let mut pipe = redis::pipe();
                for p in chunk {
                    let mut cmd = redis::cmd("XADD");
                    entry(&mut cmd, &keys.stream, p, &headers);
                    pipe.add_command(cmd);
                }
                match pipe.query_async::<Vec<String>>(&mut conn).await {
                    Ok(got) => {
                        inner.metrics.sent(got.len() as u64, None);
                        ids.extend(got);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = &failed {
                inner
                    .metrics
                    .sent((payloads.len() - ids.len()) as u64, Some(error_type(e)));
            }
            end_send(span_cx.as_ref(), None, failed.as_ref());
            match failed {
                Some(e) => Err(e.into()),
                None => Ok(ids),
            }
        }
    }

    /// The queue's name.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(q: otelconc_redis::Queue<u64>) { assert_eq!(q.name(), "numbers"); }
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.keys.name
    }

    /// The key of the queue's stream (`otelconc:{name}`).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(q: otelconc_redis::Queue<u64>) { assert_eq!(q.stream_key(), "otelconc:{numbers}"); }
    /// ```
    pub fn stream_key(&self) -> &str {
        &self.inner.keys.stream
    }

    /// The key of the dead-letter stream (`otelconc:{name}:dead`).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(q: otelconc_redis::Queue<u64>) { assert_eq!(q.dead_letter_key(), "otelconc:{numbers}:dead"); }
    /// ```
    pub fn dead_letter_key(&self) -> &str {
        &self.inner.keys.dead
    }

    /// Entries delivered to a consumer and not yet acked (the group's PEL size).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis cannot be reached.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// assert_eq!(q.pending().await?, 0);
    /// # Ok(()) }
    /// ```
    pub async fn pending(&self) -> Result<u64, Error> {
        let mut conn = self.inner.conn.clone();
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(&self.inner.keys.stream)
            .arg(GROUP)
            .query_async(&mut conn)
            .await?;
        Ok(match v {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 0,
            },
            _ => 0,
        })
    }

    /// Entries in the stream: not yet delivered, or delivered and not yet acked (acked
    /// entries are deleted).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis cannot be reached.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// let open = q.len().await?;
    /// # let _ = open; Ok(()) }
    /// ```
    pub async fn len(&self) -> Result<u64, Error> {
        self.stream_len().await
    }

    /// Whether the stream holds no entry (nothing waiting, nothing in flight).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis cannot be reached.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// assert!(q.is_empty().await?);
    /// # Ok(()) }
    /// ```
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.stream_len().await? == 0)
    }

    async fn stream_len(&self) -> Result<u64, Error> {
        let mut conn = self.inner.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(&self.inner.keys.stream)
            .query_async(&mut conn)
            .await?)
    }

    /// Up to `count` entries of the dead-letter stream, oldest first.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis cannot be reached.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
    /// for d in q.dead_letters(10).await? {
    ///     println!("{} after {} deliveries: {}", d.source_id, d.deliveries, d.error);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn dead_letters(&self, count: usize) -> Result<Vec<DeadLetter>, Error> {
        let mut conn = self.inner.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.inner.keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| {
                let fields: HashMap<String, String> = e
                    .map
                    .iter()
                    .filter_map(|(k, v)| {
                        redis::from_redis_value_ref::<String>(v)
                            .ok()
                            .map(|v| (k.clone(), v))
                    })
                    .collect();
                DeadLetter {
                    dead_id: e.id.clone(),
                    source_id: fields
                        .get("otelconc.source_id")
                        .cloned()
                        .unwrap_or_default(),
                    error: fields.get("otelconc.error").cloned().unwrap_or_default(),
                    deliveries: fields
                        .get("otelconc.deliveries")
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0),
                    fields,
                }
            })
            .collect())
    }
}

impl<J> Queue<J> {
    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }
}

/// Jobs per pipelined round trip of [`Queue::submit_many`].
const SUBMIT_CHUNK: usize = 1000;

/// The `error.type` of a failed Redis command: a small closed set.
pub(crate) fn error_type(e: &redis::RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        "connection"
    } else {
        "redis"
    }
}

/// Ends the `send` span in `span_cx`, when one was built: with the entry id of a single
/// submit, or the error of a failed one.
fn end_send(span_cx: Option<&Context>, id: Option<&String>, failed: Option<&redis::RedisError>) {
    let Some(span_cx) = span_cx else { return };
    let span = span_cx.span();
    if let Some(id) = id {
        span.set_attribute(KeyValue::new("messaging.message.id", id.clone()));
    }
    if let Some(e) = failed {
        span.set_attribute(KeyValue::new(ATTR_ERROR_TYPE, error_type(e)));
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}

/// The propagation fields of `span_cx` (`traceparent`, `tracestate`, `baggage`).
fn headers(span_cx: &Context) -> Vec<(String, String)> {
    struct Fields(Vec<(String, String)>);
    impl opentelemetry::propagation::Injector for Fields {
        fn set(&mut self, key: &str, value: String) {
            match self.0.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => self.0.push((key.to_owned(), value)),
            }
        }
    }
    let mut fields = Fields(Vec::with_capacity(3));
    otelconc::telemetry::inject(span_cx, &mut fields);
    fields.0
}

/// The arguments of one entry's `XADD` after the verb.
fn entry(cmd: &mut redis::Cmd, stream: &str, payload: &[u8], headers: &[(String, String)]) {
    cmd.arg(stream).arg("*").arg(JOB_FIELD).arg(payload);
    for (k, v) in headers {
        cmd.arg(k).arg(v);
    }
}
