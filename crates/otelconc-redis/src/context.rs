//! [`JobContext`]: what a handler knows about its delivery, and where it adds effects.

use std::fmt;
use std::sync::{Arc, Mutex};

use otelconc::pool::CancellationToken;

/// The effect commands a handler added, each as its arguments, in the order added.
pub(crate) type Effects = Vec<Vec<Vec<u8>>>;

/// One delivery of a job, handed to the handler with the job.
///
/// Cloning is cheap; clones share the effects list.
///
/// # Examples
/// ```no_run
/// use otelconc_redis::JobContext;
/// async fn handler(n: u64, cx: JobContext) -> Result<(), String> {
///     // Applied once per job, atomically with the ack.
///     cx.effect(redis::cmd("INCRBY").arg("total").arg(n));
///     // For effects outside Redis, dedupe on the entry id.
///     let _idempotency_key = cx.id();
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    queue: Arc<str>,
    attempt: u64,
    token: CancellationToken,
    started: std::time::Instant,
    effects: Mutex<Option<Effects>>,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("queue", &self.inner.queue)
            .field("attempt", &self.inner.attempt)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    pub(crate) fn new(
        id: Arc<str>,
        queue: Arc<str>,
        attempt: u64,
        token: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                queue,
                attempt,
                token,
                started: std::time::Instant::now(),
                effects: Mutex::new(Some(Vec::new())),
            }),
        }
    }

    /// The job's id: its stream entry id, the same on every delivery of the job. Use it
    /// as the idempotency key of effects outside Redis.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(cx: otelconc_redis::JobContext) {
    /// let key = cx.id();
    /// # let _ = key; }
    /// ```
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The queue's name.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(cx: otelconc_redis::JobContext) { println!("{}", cx.queue()); }
    /// ```
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Which delivery this is, from 1: Redis's delivery count for the entry.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(cx: otelconc_redis::JobContext) { if cx.attempt() > 1 { /* a retry */ } }
    /// ```
    pub fn attempt(&self) -> u64 {
        self.inner.attempt
    }

    /// Fires when the job times out or the worker's shutdown deadline passes (the
    /// handler's future is dropped then; the token is for work it handed elsewhere).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(cx: otelconc_redis::JobContext) { let _t = cx.token().clone(); }
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.inner.token
    }

    /// Adds a Redis command to run when the job succeeds, in one atomic script with the
    /// job's dedup marker and its ack: applied exactly once per job, however often the
    /// job runs. Commands run in the order added. Nothing is sent now; a command added
    /// after the handler returned is ignored.
    ///
    /// On a Redis Cluster node the command's keys must carry the queue's hash tag
    /// (`{queue name}`), or the job fails to the dead-letter stream with nothing applied
    /// (see the [crate docs](crate#delivery-semantics)).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(cx: otelconc_redis::JobContext) {
    /// cx.effect(redis::cmd("HINCRBY").arg("counts").arg(cx.id()).arg(1));
    /// # }
    /// ```
    pub fn effect(&self, cmd: &redis::Cmd) {
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        if args.is_empty() {
            return;
        }
        if let Ok(mut guard) = self.inner.effects.lock()
            && let Some(list) = guard.as_mut()
        {
            list.push(args);
        }
    }

    /// When the handler was handed this delivery (for `messaging.process.duration`).
    pub(crate) fn started(&self) -> std::time::Instant {
        self.inner.started
    }

    /// The effects, once: later `effect` calls are ignored.
    pub(crate) fn take_effects(&self) -> Effects {
        match self.inner.effects.lock() {
            Ok(mut guard) => guard.take().unwrap_or_default(),
            Err(poisoned) => poisoned.into_inner().take().unwrap_or_default(),
        }
    }
}
