//! The channel's instruments in one [`Metrics`] struct: per-handle counts by outcome,
//! the wait and queue-time histograms, the observable instruments that read them, and
//! [`Waited`], which times and counts one wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;

use opentelemetry::KeyValue;

use crate::telemetry::names::{self, channel as spec};
use crate::telemetry::{Histogram, Observation, Telemetry};
use crate::util::sync::lock;

/// One message in 256 per sender handle carries a send timestamp for the queue-time
/// histogram (plus every message sent inside a sampled trace).
pub(super) const SAMPLE_EVERY: u64 = 256;

/// One wait in 64 per handle is timed for the wait histograms: a timestamp costs 20 to
/// 100 ns here, as much as a whole channel operation, and in a busy channel nearly
/// every operation of the slower side waits briefly.
pub(super) const SAMPLE_WAITS: u64 = 64;

/// How a send or a receive ended; its position in `SEND_OUTCOMES` / `RECV_OUTCOMES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok = 0,
    /// `full` for sends, `empty` for receives.
    Refused = 1,
    Closed = 2,
    Timeout = 3,
    Cancelled = 4,
}

/// How many [`Outcome`]s there are.
const OUTCOMES: usize = 5;

impl Outcome {
    /// Its name among the send outcomes (`ok`, `full`, `closed`, ...).
    pub(super) fn send_name(self) -> &'static str {
        spec::SEND_OUTCOMES[self as usize]
    }
}

/// Counts of one handle, by outcome. Each handle owns one, padded to its own cache
/// lines, so producers and consumers on different threads never contend on a counter.
///
/// When nothing observes the channel's metrics (no SDK: the meter dropped the
/// callbacks), `on` is false and nothing is counted, sampled or timed.
///
/// The hot count (`ok`) avoids a locked add (~10 ns here, as much as a tenth of a
/// channel operation): the first thread to count on a handle becomes its owner and
/// counts into `ok_owned` with a plain load and store, which is exact because one
/// thread runs one add at a time; any other thread (the handle shared by reference,
/// or its task moved to another worker) adds into `by_outcome[Ok]` atomically.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Counts {
    on: bool,
    /// Address of the owning thread's [`THREAD_MARK`], 0 while unowned.
    owner: AtomicUsize,
    ok_owned: AtomicU64,
    by_outcome: [AtomicU64; OUTCOMES],
    /// Operations of this handle that had to wait, for the 1-in-64 wait sample.
    waits: AtomicU64,
}

impl Counts {
    /// Whether anything reads these counts.
    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// Notes one more wait; when it is the sampled one, the time it starts at (see
    /// [`record_wait`]).
    #[inline]
    pub(super) fn wait_start(&self) -> Option<Instant> {
        if !self.on {
            return None;
        }
        // Only picks which waits to time: a plain load and store (no locked add) is
        // enough, and if two threads share this handle a lost update only shifts the
        // sample.
        let n = self.waits.load(Ordering::Relaxed);
        self.waits.store(n.wrapping_add(1), Ordering::Relaxed);
        n.is_multiple_of(SAMPLE_WAITS).then(Instant::now)
    }

    /// Whether this is the sampled message of its 1 in [`SAMPLE_EVERY`].
    #[inline]
    pub(super) fn sample_message(&self) -> bool {
        self.on && self.get(Outcome::Ok as usize).is_multiple_of(SAMPLE_EVERY)
    }

    #[inline]
    pub(super) fn add(&self, outcome: Outcome, n: u64) {
        if !self.on {
            return;
        }
        if outcome == Outcome::Ok && self.owned_here() {
            let c = &self.ok_owned;
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            self.by_outcome[outcome as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Whether the current thread owns this handle's `ok_owned` (claiming it if free).
    #[inline]
    fn owned_here(&self) -> bool {
        let me = THREAD_MARK.with(|m| std::ptr::from_ref(m) as usize);
        let owner = self.owner.load(Ordering::Relaxed);
        owner == me
            || (owner == 0
                && self
                    .owner
                    .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
    }

    /// The count of the outcome at position `outcome`.
    #[inline]
    fn get(&self, outcome: usize) -> u64 {
        let shared = self.by_outcome[outcome].load(Ordering::Relaxed);
        if outcome == Outcome::Ok as usize {
            shared.wrapping_add(self.ok_owned.load(Ordering::Relaxed))
        } else {
            shared
        }
    }
}

thread_local! {
    /// A per-thread address: identifies the thread that owns a handle's `ok` count. A
    /// thread that exits may leave its address to a new thread, which then takes over
    /// a count its predecessor can no longer touch: still one writer at a time.
    static THREAD_MARK: u8 = const { 0 };
}

/// The live handles' counts plus the totals of handles already dropped.
#[derive(Default)]
struct Registry {
    live: Vec<Arc<Counts>>,
    retired: [u64; OUTCOMES],
}

impl Registry {
    fn register(&mut self, on: bool) -> Arc<Counts> {
        let c = Arc::new(Counts {
            on,
            ..Counts::default()
        });
        self.live.push(c.clone());
        c
    }

    fn retire(&mut self, c: &Arc<Counts>) {
        if let Some(i) = self.live.iter().position(|x| Arc::ptr_eq(x, c)) {
            self.live.swap_remove(i);
            for (k, r) in self.retired.iter_mut().enumerate() {
                *r += c.get(k);
            }
        }
    }

    fn total(&self, outcome: usize) -> u64 {
        self.retired[outcome] + self.live.iter().map(|c| c.get(outcome)).sum::<u64>()
    }
}

/// Every instrument of one channel, and the counts its observable instruments read.
pub(super) struct Metrics {
    pub(super) send_wait: Histogram,
    pub(super) recv_wait: Histogram,
    queue_time: Histogram,
    senders: Mutex<Registry>,
    receivers: Mutex<Registry>,
    /// The last `received{outcome=ok}` reported, to keep the derived count monotonic.
    received_ok: AtomicU64,
    /// Whether the meter kept the metric callbacks, i.e. an SDK will read the counts.
    observed: AtomicBool,
    /// This channel's part in its observable instruments, for as long as it lives.
    observations: OnceLock<Vec<Observation>>,
    /// Messages in the channel, for the depth gauge. It holds a receiver of the
    /// channel (not counted as a `Receiver` handle), so it lives exactly as long as the
    /// handles do; the gauge callbacks hold only a weak reference to the channel's
    /// state, so a dropped channel is freed, queued messages included, even while the
    /// meter lives on.
    len: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
}

impl Metrics {
    pub(super) fn new(telemetry: &Telemetry, name: &KeyValue) -> Self {
        let attrs = [name.clone()];
        Self {
            send_wait: telemetry.histogram(&spec::SEND_WAIT, &attrs),
            recv_wait: telemetry.histogram(&spec::RECV_WAIT, &attrs),
            queue_time: telemetry.histogram(&spec::QUEUE_TIME, &attrs),
            senders: Mutex::default(),
            receivers: Mutex::default(),
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
    /// says so). Then handles count, sample and time nothing (`Counts::on`), so the
    /// channel costs what async-channel costs.
    pub(super) fn register<S: Send + Sync + 'static>(
        owner: &Arc<S>,
        metrics_of: fn(&S) -> &Metrics,
        telemetry: &Telemetry,
        name: &KeyValue,
        capacity: Option<usize>,
    ) {
        let mut observations = Vec::new();
        for (receiving, instrument, outcomes) in [
            (false, &spec::SENT, spec::SEND_OUTCOMES),
            (true, &spec::RECEIVED, spec::RECV_OUTCOMES),
        ] {
            for (k, outcome) in outcomes.iter().enumerate() {
                let weak: Weak<S> = Arc::downgrade(owner);
                let attrs = vec![name.clone(), KeyValue::new(names::ATTR_OUTCOME, *outcome)];
                observations.push(telemetry.observable_counter(instrument, attrs, move || {
                    let owner = weak.upgrade()?;
                    let m = metrics_of(&owner);
                    Some(match (receiving, k) {
                        (true, k) if k == Outcome::Ok as usize => m.received_ok(),
                        (false, k) => lock(&m.senders).total(k),
                        (true, k) => lock(&m.receivers).total(k),
                    })
                }));
            }
        }
        let weak: Weak<S> = Arc::downgrade(owner);
        observations.push(telemetry.observable_gauge(
            &spec::DEPTH,
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
            observations.push(telemetry.observable_gauge(
                &spec::CAPACITY,
                vec![name.clone()],
                move || weak.upgrade().map(|_| cap),
            ));
        }
        let metrics = metrics_of(owner);
        metrics.observed.store(
            observations.iter().any(Observation::observed),
            Ordering::Relaxed,
        );
        // Registered once, right after construction: a second call cannot happen.
        let _ = metrics.observations.set(observations);
    }

    /// Messages received so far: sent minus still queued. Every message that leaves
    /// the channel leaves through a receiver (the channel itself lives as long as this
    /// state), so this is exact when the channel is quiet; while messages move it can
    /// only lag (a send is counted just after its push, and `sent` is read before the
    /// depth), never run ahead, and it is kept monotonic.
    fn received_ok(&self) -> u64 {
        let sent = lock(&self.senders).total(Outcome::Ok as usize);
        let queued = self.len.get().map_or(0, |len| len()) as u64;
        let estimate = sent.saturating_sub(queued);
        let last = self.received_ok.fetch_max(estimate, Ordering::Relaxed);
        last.max(estimate)
    }

    /// Whether an SDK reads these metrics (known once they are registered).
    pub(super) fn is_observed(&self) -> bool {
        self.observed.load(Ordering::Relaxed)
    }

    /// Gives the depth gauge its channel: a receiver kept here (not counted as a
    /// `Receiver` handle), so it lives exactly as long as the handles do.
    pub(super) fn set_len<M: Send + 'static>(&self, rx: &async_channel::Receiver<M>) {
        let keep = rx.clone();
        // Set once, right after construction; a second call cannot happen.
        let _ = self.len.set(Box::new(move || keep.len()));
    }

    /// The counts of a new sender handle.
    pub(super) fn send_counts(&self) -> Arc<Counts> {
        lock(&self.senders).register(self.is_observed())
    }

    /// The counts of a new receiver handle.
    pub(super) fn recv_counts(&self) -> Arc<Counts> {
        lock(&self.receivers).register(self.is_observed())
    }

    /// Keeps the counts of a dropped sender handle in the totals.
    pub(super) fn retire_sender(&self, c: &Arc<Counts>) {
        lock(&self.senders).retire(c);
    }

    /// Keeps the counts of a dropped receiver handle in the totals.
    pub(super) fn retire_receiver(&self, c: &Arc<Counts>) {
        lock(&self.receivers).retire(c);
    }

    /// Records the queue time of a message sent at `sent_at`; returns it for span
    /// attributes.
    #[cold]
    pub(super) fn queue_time(&self, sent_at: Instant) -> Duration {
        let waited = sent_at.elapsed();
        self.queue_time.record(waited.as_secs_f64());
        waited
    }
}

/// Runs a blocking wait of the handle owning `counts`, timing it into `histogram` when
/// it is that handle's sampled wait (one in 64).
pub(super) fn timed_blocking<R>(
    histogram: &Histogram,
    counts: &Counts,
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
    /// the wait into `histogram` (one wait in 64 per handle). Dropped while waiting, it
    /// counts the operation as `cancelled`, unless [`timed_out`](Self::timed_out)
    /// counted it first. A future that completes on its first poll costs no timestamp.
    pub(super) struct Waited<'a, F> {
        #[pin]
        fut: F,
        // Pending since a poll, and not completed since.
        waiting: bool,
        since: Option<Instant>,
        histogram: &'a Histogram,
        counts: &'a Counts,
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
    pub(super) fn new(fut: F, histogram: &'a Histogram, counts: &'a Counts) -> Self {
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
