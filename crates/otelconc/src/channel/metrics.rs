//! The channel's instruments in one [`Metrics`] struct: striped counts by outcome,
//! the wait and queue-time histograms, the observable instruments that read them, and
//! [`Waited`], which times and counts one wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;

use opentelemetry::KeyValue;

use crate::telemetry::names::{self, channel as spec};
use crate::telemetry::{End, Histogram, Observation, Telemetry};
use crate::util::backlog::Backlog;
use crate::util::counts::Striped;

/// One message in 256 sent by each thread (every 256th of the thread's sends on the
/// channel, the stride starting at a random offset per channel) carries a send
/// timestamp for the queue-time histogram. Messages sent inside a sampled trace carry
/// one too, for their consumer span, but are not added to the histogram unless they
/// are in the sample: its count stays a fixed fraction of the traffic.
pub(super) const SAMPLE_EVERY: u64 = 256;

/// One wait in 64 of each thread (every 64th send wait of the thread, over all
/// channels, and every 64th receive wait: a fixed stride a channel built per request
/// shares) is timed for the wait histograms: a timestamp costs 20 to 100 ns here, as
/// much as a whole channel operation, and in a busy channel nearly every operation of
/// the slower side waits briefly.
pub(super) const SAMPLE_WAITS: u64 = 64;

/// How a send ended; its position in `SEND_OUTCOMES` (receives count no outcomes:
/// `otelconc.channel.received` counts messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok = 0,
    /// The channel was full (`try_send`).
    Refused = 1,
    Closed = 2,
    Timeout = 3,
    Cancelled = 4,
}

/// How many [`Outcome`]s there are.
const OUTCOMES: usize = 5;

impl Outcome {
    /// How a producer span whose send ended so ends (the error rule): a refused send
    /// fails with `error.type` `queue_full`, a send to a closed channel with `closed`, a
    /// send that gave up at its deadline with `timeout`; a send dropped or cancelled
    /// before it completed is cancelled, not failed.
    pub(super) fn send_end(self) -> End {
        match self {
            Self::Ok => End::Ok,
            Self::Refused => End::Failed("queue_full", "channel full".into()),
            Self::Closed => End::Failed("closed", "channel closed".into()),
            Self::Timeout => End::Failed("timeout", "send timed out".into()),
            Self::Cancelled => End::Cancelled,
        }
    }
}

/// The senders' counts, by outcome.
///
/// Kept in a [`Striped`] counter: any thread may send through any handle, so each
/// thread counts on a cache line of its own with a plain load and store (no locked
/// add, no line shared between producers), and collection sums the stripes.
///
/// The message sample is a fixed stride of each thread's sends on the channel, kept in
/// the thread's stripe beside its counts (no second thread-local lookup on the fast
/// path), starting at a random offset per channel: a channel built per request, or a
/// sender cloned per task, then has its messages timed at the same rate as any other
/// (1 in N), never its first one always. The wait samples, taken only by operations
/// that wait, are a stride of each thread's waits over every channel.
///
/// When nothing observes the channel's metrics (no SDK: the meter dropped the
/// callbacks), `on` is false and nothing is counted, sampled or timed.
#[derive(Debug)]
pub(super) struct Counts {
    /// Written once, when the channel's instruments are registered.
    on: AtomicBool,
    /// Where the channel's message samples start in the stride (see [`random_offset`]).
    offset: u64,
    by: Striped<SLOTS>,
}

/// The receivers' side: they count no outcomes (`otelconc.channel.received` is derived
/// from the senders' counts) and only sample their waits.
#[derive(Debug, Default)]
pub(super) struct Receives {
    /// Written once, when the channel's instruments are registered.
    on: AtomicBool,
}

/// The side a wait belongs to ([`Counts`] or [`Receives`]): where [`Waited`] and
/// [`timed_blocking`] sample the wait and count how it ended.
pub(super) trait Side: Sync {
    /// Notes one more wait; when it is the sampled one of this thread's 1 in
    /// [`SAMPLE_WAITS`] for this side, the time it starts at (see [`record_wait`]).
    fn wait_start(&self) -> Option<Instant>;

    /// Counts a wait that ended as `outcome` (nothing for the receivers).
    fn add(&self, outcome: Outcome, n: u64);
}

/// The slot of [`Counts::by`] past the outcomes: the message sequence (queue-time
/// sample).
const SEQ: usize = OUTCOMES;
const SLOTS: usize = OUTCOMES + 1;

/// The thread's sequences of send waits and receive waits, for the wait samples.
const SEND_WAITS: usize = 0;
const RECEIVE_WAITS: usize = 1;

thread_local! {
    /// This thread's wait sequences, over every channel: only operations that wait
    /// (and so park) read them, so the thread-local lookup is off the fast path.
    static WAIT_SEQUENCES: [std::cell::Cell<u64>; 2] =
        const { [std::cell::Cell::new(0), std::cell::Cell::new(0)] };
}

/// The next number of this thread's wait sequence `k` (0 during thread teardown).
fn next_wait(k: usize) -> u64 {
    WAIT_SEQUENCES
        .try_with(|s| {
            let n = s[k].get();
            s[k].set(n.wrapping_add(1));
            n
        })
        .unwrap_or(0)
}

/// A random offset for one channel, so that its message samples start anywhere in the
/// stride: a channel built per request has its first message sampled 1 time in N, not
/// always.
fn random_offset() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl Counts {
    pub(super) fn new() -> Self {
        Self {
            on: AtomicBool::new(false),
            offset: random_offset(),
            by: Striped::default(),
        }
    }

    /// Whether anything reads these counts.
    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Notes one more message sent; whether it is the sampled one of this thread's 1 in
    /// [`SAMPLE_EVERY`].
    #[inline]
    pub(super) fn sample_message(&self) -> bool {
        self.is_on()
            && self
                .by
                .add_seq(SEQ, 1)
                .wrapping_add(self.offset)
                .is_multiple_of(SAMPLE_EVERY)
    }

    /// The count of the outcome at position `outcome`.
    fn get(&self, outcome: usize) -> u64 {
        self.by.get(outcome)
    }
}

/// The wait sample of this thread's sequence `k`, when `on`.
#[inline]
fn wait_start(on: &AtomicBool, k: usize) -> Option<Instant> {
    if !on.load(Ordering::Relaxed) {
        return None;
    }
    next_wait(k).is_multiple_of(SAMPLE_WAITS).then(Instant::now)
}

impl Side for Counts {
    #[inline]
    fn wait_start(&self) -> Option<Instant> {
        wait_start(&self.on, SEND_WAITS)
    }

    #[inline]
    fn add(&self, outcome: Outcome, n: u64) {
        if self.is_on() {
            self.by.add(outcome as usize, n);
        }
    }
}

impl Receives {
    /// Whether anything reads the channel's metrics.
    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
}

impl Side for Receives {
    #[inline]
    fn wait_start(&self) -> Option<Instant> {
        wait_start(&self.on, RECEIVE_WAITS)
    }

    #[inline]
    fn add(&self, _: Outcome, _: u64) {}
}

/// Every instrument of one channel, and the counts its observable instruments read.
pub(super) struct Metrics {
    pub(super) send_wait: Histogram,
    pub(super) recv_wait: Histogram,
    queue_time: Histogram,
    /// For the oldest message's age.
    backlog: Backlog,
    /// What the senders counted.
    pub(super) sends: Counts,
    /// The receivers' wait samples.
    pub(super) recvs: Receives,
    /// The last `received{outcome=ok}` reported, to keep the derived count monotonic.
    received_ok: AtomicU64,
    /// Whether the meter kept the metric callbacks, i.e. an SDK will read the counts.
    observed: AtomicBool,
    /// This channel's part in its observable instruments, for as long as it lives.
    observations: OnceLock<Vec<Observation>>,
    /// Messages in the channel, for its size, the received count and the oldest
    /// message's age. It holds a receiver of the channel (not counted as a `Receiver`
    /// handle), so it lives exactly as long as the handles do; the callbacks hold only a
    /// weak reference to the channel's
    /// state, so a dropped channel is freed, queued messages included, even while the
    /// meter lives on.
    len: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
}

impl Metrics {
    pub(super) fn new(telemetry: &Telemetry, name: &KeyValue) -> Self {
        let attrs = [name.clone()];
        Self {
            send_wait: telemetry.histogram(&spec::SEND_WAIT_DURATION, &attrs),
            recv_wait: telemetry.histogram(&spec::RECEIVE_WAIT_DURATION, &attrs),
            queue_time: telemetry.histogram(&spec::QUEUE_DURATION, &attrs),
            backlog: Backlog::default(),
            sends: Counts::new(),
            recvs: Receives::default(),
            received_ok: AtomicU64::new(0),
            observed: AtomicBool::new(false),
            observations: OnceLock::new(),
            len: OnceLock::new(),
        }
    }

    /// Registers the observable instruments of the channel whose state `owner` holds
    /// these metrics (`metrics_of` reaches them). Callbacks hold only weak references,
    /// so a dropped channel stops reporting.
    ///
    /// A meter without an SDK drops the callbacks at once ([`Observation::observed`]
    /// says so). Then the channel counts, samples and times nothing (`Counts::on`), so the
    /// channel costs what async-channel costs.
    pub(super) fn register<S: Send + Sync + 'static>(
        owner: &Arc<S>,
        metrics_of: fn(&S) -> &Metrics,
        telemetry: &Telemetry,
        name: &KeyValue,
        capacity: Option<usize>,
    ) {
        let mut observations = Vec::new();
        let errors = spec::SEND_OUTCOMES.iter().zip(spec::SEND_ERRORS);
        for (k, (outcome, error)) in errors.enumerate() {
            let weak: Weak<S> = Arc::downgrade(owner);
            let mut attrs = vec![name.clone(), KeyValue::new(names::ATTR_OUTCOME, *outcome)];
            if let Some(e) = error {
                attrs.push(KeyValue::new(names::ATTR_ERROR_TYPE, *e));
            }
            observations.push(telemetry.observable_counter(&spec::SENT, attrs, move || {
                Some(metrics_of(&*weak.upgrade()?).sends.get(k))
            }));
        }
        let weak: Weak<S> = Arc::downgrade(owner);
        observations.push(telemetry.observable_counter(
            &spec::RECEIVED,
            vec![name.clone()],
            move || Some(metrics_of(&*weak.upgrade()?).received_ok()),
        ));
        let weak: Weak<S> = Arc::downgrade(owner);
        observations.push(telemetry.observable_up_down_counter(
            &spec::SIZE,
            vec![name.clone()],
            move || {
                let owner = weak.upgrade()?;
                let len = (metrics_of(&owner).len.get()?)();
                Some(i64::try_from(len).unwrap_or(i64::MAX))
            },
        ));
        if let Some(cap) = capacity {
            let weak: Weak<S> = Arc::downgrade(owner);
            let cap = i64::try_from(cap).unwrap_or(i64::MAX);
            observations.push(telemetry.observable_up_down_counter(
                &spec::CAPACITY,
                vec![name.clone()],
                move || weak.upgrade().map(|_| cap),
            ));
        }
        let weak: Weak<S> = Arc::downgrade(owner);
        observations.push(telemetry.observable_gauge_f64(
            &spec::OLDEST_AGE,
            vec![name.clone()],
            move || Some(metrics_of(&*weak.upgrade()?).oldest_age()),
        ));
        let metrics = metrics_of(owner);
        let observed = observations.iter().any(Observation::observed);
        metrics.observed.store(observed, Ordering::Relaxed);
        metrics.sends.on.store(observed, Ordering::Relaxed);
        metrics.recvs.on.store(observed, Ordering::Relaxed);
        // Registered once, right after construction: a second call cannot happen.
        let _ = metrics.observations.set(observations);
    }

    /// Messages received so far: sent minus still queued. Every message that leaves
    /// the channel leaves through a receiver (the channel itself lives as long as this
    /// state), so this is exact when the channel is quiet; while messages move it can
    /// only lag (a send is counted just after its push, and `sent` is read before the
    /// size), never run ahead, and it is kept monotonic.
    fn received_ok(&self) -> u64 {
        let sent = self.sends.get(Outcome::Ok as usize);
        let estimate = sent.saturating_sub(self.queued());
        let last = self.received_ok.fetch_max(estimate, Ordering::Relaxed);
        last.max(estimate)
    }

    /// Seconds the oldest message still queued has waited, at least (see
    /// [`Backlog`]): the messages that entered are the sends counted `ok`.
    fn oldest_age(&self) -> f64 {
        let entered = self.sends.get(Outcome::Ok as usize);
        self.backlog.oldest_age(entered, self.queued())
    }

    /// Messages in the channel now (0 before [`set_len`](Self::set_len)).
    fn queued(&self) -> u64 {
        self.len.get().map_or(0, |len| len()) as u64
    }

    /// Whether an SDK reads these metrics (known once they are registered).
    #[inline]
    pub(super) fn is_observed(&self) -> bool {
        self.observed.load(Ordering::Relaxed)
    }

    /// Gives the size reading its channel: a receiver kept here (not counted as a
    /// `Receiver` handle), so it lives exactly as long as the handles do.
    pub(super) fn set_len<M: Send + 'static>(&self, rx: &async_channel::Receiver<M>) {
        let keep = rx.clone();
        // Set once, right after construction; a second call cannot happen.
        let _ = self.len.set(Box::new(move || keep.len()));
    }

    /// Records the queue time of a message in the sample, under the context it carried
    /// (if any), so that an SDK that collects exemplars links the point to its trace.
    #[cold]
    pub(super) fn record_queue_time(&self, waited: Duration, cx: Option<&opentelemetry::Context>) {
        let _current = cx.map(|cx| cx.clone().attach());
        self.queue_time.record(waited.as_secs_f64());
    }
}

/// Runs a blocking wait counted in `counts`, timing it into `histogram` when it is the
/// calling thread's sampled wait (one in 64).
pub(super) fn timed_blocking<R>(
    histogram: &Histogram,
    counts: &impl Side,
    wait: impl FnOnce() -> R,
) -> R {
    let start = counts.wait_start();
    let r = wait();
    record_wait(histogram, start);
    r
}

/// Records a sampled wait that started at `since` (nothing for a wait not sampled).
#[inline]
pub(super) fn record_wait(histogram: &Histogram, since: Option<Instant>) {
    if let Some(since) = since {
        histogram.record(since.elapsed().as_secs_f64());
    }
}

pin_project_lite::pin_project! {
    /// Runs a channel operation's future; if it has to wait (returns `Pending`), times
    /// the wait into `histogram` (one wait in 64 of each thread). Dropped while waiting, a
    /// send counts as `cancelled`, unless [`timed_out`](Self::timed_out) counted it
    /// first (receivers count no outcomes). A future that completes on its first poll
    /// costs no timestamp.
    pub(super) struct Waited<'a, F> {
        #[pin]
        fut: F,
        // Pending since a poll, and not completed since.
        waiting: bool,
        since: Option<Instant>,
        histogram: &'a Histogram,
        // A dynamic call, made only by an operation that waits.
        counts: &'a dyn Side,
    }

    impl<F> PinnedDrop for Waited<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting {
                this.counts.add(Outcome::Cancelled, 1);
            }
        }
    }
}

impl<'a, F> Waited<'a, F> {
    pub(super) fn new(fut: F, histogram: &'a Histogram, counts: &'a dyn Side) -> Self {
        Self {
            fut,
            waiting: false,
            since: None,
            histogram,
            counts,
        }
    }

    /// The caller gave up on this wait at its deadline: counts it as `timeout` (and
    /// not as `cancelled` when it is dropped).
    pub(super) fn timed_out(self: Pin<&mut Self>) {
        let this = self.project();
        if std::mem::take(this.waiting) {
            this.counts.add(Outcome::Timeout, 1);
        }
    }
}

impl<F: Future> Future for Waited<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Ready(v) => {
                *this.waiting = false;
                record_wait(this.histogram, *this.since);
                Poll::Ready(v)
            }
            Poll::Pending => {
                if !*this.waiting {
                    *this.waiting = true;
                    *this.since = this.counts.wait_start();
                }
                Poll::Pending
            }
        }
    }
}
