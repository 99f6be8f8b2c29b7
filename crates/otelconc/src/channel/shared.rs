//! State shared by every handle of one channel: telemetry, per-handle counts, and the
//! event that wakes senders waiting through `send_lossless`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;

use event_listener::Event;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::{self, channel as spec};
use crate::telemetry::{Histogram, Observation, Telemetry, record_error};
use crate::util::sync::lock;

/// One message in 256 per sender handle carries a send timestamp for the queue-time
/// histogram (plus every message sent inside a sampled trace).
pub(super) const SAMPLE_EVERY: u64 = 256;

/// One wait in 64 per handle is timed for the wait histograms: a timestamp costs 20 to
/// 100 ns here, as much as a whole channel operation, and in a busy channel nearly
/// every operation of the slower side waits briefly.
pub(super) const SAMPLE_WAITS: u64 = 64;

/// Outcome slots of [`Counts`], in the order of `SEND_OUTCOMES` / `RECV_OUTCOMES`.
pub(super) const OK: usize = 0;
/// `full` for sends, `empty` for receives.
pub(super) const REFUSED: usize = 1;
pub(super) const CLOSED: usize = 2;
pub(super) const TIMEOUT: usize = 3;
pub(super) const CANCELLED: usize = 4;

/// What travels beside a message only when it is sampled or traced.
pub(super) struct Meta {
    /// The sender's context, or its producer span's with `producer_spans` (`None` for a
    /// message sampled only for queue time).
    pub(super) cx: Option<Context>,
    pub(super) sent_at: Instant,
}

/// What the underlying channel carries: the message plus, for 1 in 256 messages and for
/// messages sent inside a sampled trace, a boxed [`Meta`]. One pointer wide beside `T`,
/// and `None` (no allocation) for every other message.
pub(super) struct Env<T> {
    pub(super) value: T,
    pub(super) meta: Option<Box<Meta>>,
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
/// or its task moved to another worker) adds into `by_outcome[OK]` atomically.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Counts {
    on: bool,
    /// Address of the owning thread's [`THREAD_MARK`], 0 while unowned.
    owner: AtomicUsize,
    ok_owned: AtomicU64,
    by_outcome: [AtomicU64; 5],
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
        self.on && self.get(OK).is_multiple_of(SAMPLE_EVERY)
    }

    #[inline]
    pub(super) fn add(&self, outcome: usize, n: u64) {
        if !self.on {
            return;
        }
        if outcome == OK && self.owned_here() {
            let c = &self.ok_owned;
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            self.by_outcome[outcome].fetch_add(n, Ordering::Relaxed);
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

    #[inline]
    pub(super) fn get(&self, outcome: usize) -> u64 {
        let shared = self.by_outcome[outcome].load(Ordering::Relaxed);
        if outcome == OK {
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
pub(super) struct Registry {
    live: Vec<Arc<Counts>>,
    retired: [u64; 5],
}

impl Registry {
    pub(super) fn register(&mut self, on: bool) -> Arc<Counts> {
        let c = Arc::new(Counts {
            on,
            ..Counts::default()
        });
        self.live.push(c.clone());
        c
    }

    pub(super) fn retire(&mut self, c: &Arc<Counts>) {
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

pub(super) struct Shared {
    pub(super) name: KeyValue,
    pub(super) telemetry: Telemetry,
    pub(super) send_wait: Histogram,
    pub(super) recv_wait: Histogram,
    pub(super) queue_time: Histogram,
    pub(super) senders: Mutex<Registry>,
    pub(super) receivers: Mutex<Registry>,
    /// Woken when space frees up or the channel closes, for `send_lossless` waiters.
    pub(super) space: Event,
    /// How many `send_lossless` futures are waiting on `space`.
    pub(super) space_waiters: AtomicUsize,
    /// Live `Receiver` handles; the last one to drop closes the channel.
    pub(super) receiver_handles: AtomicUsize,
    /// The last `received{outcome=ok}` reported, to keep the derived count monotonic.
    received_ok: AtomicU64,
    /// Whether the meter kept the metric callbacks, i.e. an SDK will read the counts.
    observed: AtomicBool,
    /// This channel's part in its observable instruments, for as long as it lives.
    observations: OnceLock<Vec<Observation>>,
    /// Whether the tracer builds real spans (see [`Telemetry::builds_spans`]); without one no
    /// context is captured or carried.
    traced: bool,
    /// Start an `otelconc.channel.send` span per traced send.
    pub(super) producer_spans: bool,
    /// Messages in the channel, for the depth gauge. It holds a receiver of the
    /// channel (not counted in `receiver_handles`), so it lives exactly as long as the
    /// handles do; the gauge callbacks hold only a `Weak<Shared>`, so a dropped channel
    /// is freed, queued messages included, even while the meter lives on.
    len: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
    capacity: Option<usize>,
}

impl Shared {
    pub(super) fn new(
        name: String,
        telemetry: Telemetry,
        producer_spans: bool,
        capacity: Option<usize>,
    ) -> Arc<Self> {
        // An `Arc<str>` value: cloning the attribute for a span allocates nothing.
        let name = KeyValue::new(names::ATTR_NAME, Arc::<str>::from(name));
        let traced = telemetry.builds_spans();
        let attrs = [name.clone()];
        Arc::new(Self {
            send_wait: telemetry.histogram(&spec::SEND_WAIT, &attrs),
            recv_wait: telemetry.histogram(&spec::RECV_WAIT, &attrs),
            queue_time: telemetry.histogram(&spec::QUEUE_TIME, &attrs),
            name,
            telemetry,
            senders: Mutex::default(),
            receivers: Mutex::default(),
            space: Event::new(),
            space_waiters: AtomicUsize::new(0),
            receiver_handles: AtomicUsize::new(1),
            observed: AtomicBool::new(false),
            observations: OnceLock::new(),
            received_ok: AtomicU64::new(0),
            traced,
            producer_spans,
            len: OnceLock::new(),
            capacity,
        })
    }

    /// Registers the observable instruments. Callbacks hold only weak references, so a
    /// dropped channel stops reporting.
    ///
    /// A meter without an SDK drops the callbacks at once ([`Observation::observed`]
    /// says so). Then handles count, sample and time nothing (`Counts::on`), so the
    /// channel costs what async-channel costs.
    pub(super) fn register_observers(self: &Arc<Self>) {
        let t = &self.telemetry;
        let mut observations = Vec::new();
        for (side, instrument, outcomes) in [
            (0, &spec::SENT, spec::SEND_OUTCOMES),
            (1, &spec::RECEIVED, spec::RECV_OUTCOMES),
        ] {
            for (k, outcome) in outcomes.iter().enumerate() {
                let weak: Weak<Self> = Arc::downgrade(self);
                let attrs = vec![
                    self.name.clone(),
                    KeyValue::new(names::ATTR_OUTCOME, *outcome),
                ];
                observations.push(t.observable_counter(instrument, attrs, move || {
                    let s = weak.upgrade()?;
                    Some(match (side, k) {
                        (1, OK) => s.received_ok(),
                        (0, _) => lock(&s.senders).total(k),
                        _ => lock(&s.receivers).total(k),
                    })
                }));
            }
        }
        let weak = Arc::downgrade(self);
        observations.push(
            t.observable_gauge(&spec::DEPTH, vec![self.name.clone()], move || {
                let len = (weak.upgrade()?.len.get()?)();
                Some(i64::try_from(len).unwrap_or(i64::MAX))
            }),
        );
        if let Some(cap) = self.capacity {
            let weak = Arc::downgrade(self);
            let cap = i64::try_from(cap).unwrap_or(i64::MAX);
            observations.push(t.observable_gauge(
                &spec::CAPACITY,
                vec![self.name.clone()],
                move || weak.upgrade().map(|_| cap),
            ));
        }
        self.observed.store(
            observations.iter().any(Observation::observed),
            Ordering::Relaxed,
        );
        // Registered once, right after construction: a second call cannot happen.
        let _ = self.observations.set(observations);
    }

    /// Messages received so far: sent minus still queued. Every message that leaves
    /// the channel leaves through a receiver (the channel itself lives as long as this
    /// state), so this is exact when the channel is quiet; while messages move it can
    /// only lag (a send is counted just after its push, and `sent` is read before the
    /// depth), never run ahead, and it is kept monotonic.
    fn received_ok(&self) -> u64 {
        let sent = lock(&self.senders).total(OK);
        let queued = self.len.get().map_or(0, |len| len()) as u64;
        let estimate = sent.saturating_sub(queued);
        let last = self.received_ok.fetch_max(estimate, Ordering::Relaxed);
        last.max(estimate)
    }

    /// Whether the channel must carry envelopes: an SDK reads its metrics (queue-time
    /// samples travel with the message) or its tracer makes spans (contexts travel).
    pub(super) fn is_observed(&self) -> bool {
        self.observed.load(Ordering::Relaxed) || self.traced
    }

    /// Gives the depth gauge its channel: a receiver kept here (not counted in
    /// `receiver_handles`), so it lives exactly as long as the handles do.
    pub(super) fn set_len<M: Send + 'static>(&self, rx: &async_channel::Receiver<M>) {
        let keep = rx.clone();
        // Set once, right after construction; a second call cannot happen.
        let _ = self.len.set(Box::new(move || keep.len()));
    }

    pub(super) fn send_counts(&self) -> Arc<Counts> {
        lock(&self.senders).register(self.observed.load(Ordering::Relaxed))
    }

    pub(super) fn recv_counts(&self) -> Arc<Counts> {
        lock(&self.receivers).register(self.observed.load(Ordering::Relaxed))
    }

    pub(super) fn retire_sender(&self, c: &Arc<Counts>) {
        lock(&self.senders).retire(c);
    }

    pub(super) fn retire_receiver(&self, c: &Arc<Counts>) {
        lock(&self.receivers).retire(c);
    }

    /// After `n` messages left the channel: wake as many `send_lossless` waiters.
    ///
    /// The load is `SeqCst` and the queue's pop is a `SeqCst` read-modify-write, while a
    /// waiter increments `space_waiters` (`SeqCst`) before it retries its push: either
    /// this load sees the waiter, or the waiter's retry sees the freed slot.
    #[inline]
    pub(super) fn freed(&self, n: usize) {
        if self.space_waiters.load(Ordering::SeqCst) != 0 {
            self.space.notify_additional(n);
        }
    }

    /// Wakes every `send_lossless` waiter: the channel closed.
    pub(super) fn closed(&self) {
        self.space.notify(usize::MAX);
    }

    /// The envelope of `value` sent from the handle owning `counts`: inside a
    /// sampled trace the sender's context (or its producer span's) and a timestamp; a
    /// timestamp for 1 in 256 (when metrics are observed); else nothing.
    #[inline]
    pub(super) fn envelope<T>(&self, value: T, counts: &Counts) -> Env<T> {
        let parent = if self.traced {
            self.telemetry.span_parent()
        } else {
            None
        };
        let meta = match parent {
            Some(parent) => Some(self.traced_meta(parent)),
            None if counts.sample_message() => Some(Box::new(Meta {
                cx: None,
                sent_at: Instant::now(),
            })),
            None => None,
        };
        Env { value, meta }
    }

    #[cold]
    fn traced_meta(&self, parent: Context) -> Box<Meta> {
        let cx = if self.producer_spans {
            self.telemetry
                .start_span(&spec::SEND_SPAN, &parent, vec![self.name.clone()])
        } else {
            parent
        };
        Box::new(Meta {
            cx: Some(cx),
            sent_at: Instant::now(),
        })
    }

    /// The context to end after the send, when this message has a producer span.
    #[inline]
    pub(super) fn producer_of<T>(&self, env: &Env<T>) -> Option<Context> {
        if self.producer_spans {
            env.meta.as_ref().and_then(|m| m.cx.clone())
        } else {
            None
        }
    }

    /// Queue time of a message that carried metadata; returns it for span attributes.
    #[cold]
    pub(super) fn arrived(&self, meta: &Meta) -> Duration {
        let waited = meta.sent_at.elapsed();
        self.queue_time.record(waited.as_secs_f64());
        waited
    }

    /// Starts the consumer span of a traced message, child of the context it carried.
    #[cold]
    pub(super) fn consumer_span(&self, producer: &Context, waited: Duration) -> Context {
        self.telemetry.start_span(
            &spec::RECEIVE_SPAN,
            producer,
            vec![
                self.name.clone(),
                KeyValue::new(names::ATTR_QUEUE_WAIT, waited.as_secs_f64()),
            ],
        )
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

/// Ends a producer span; a send that did not end in `OK` marks it as an error first,
/// of the kind its outcome is named in `SEND_OUTCOMES` (`full`, `closed`, ...).
#[cold]
pub(super) fn end_producer(cx: Context, outcome: usize) {
    if outcome != OK {
        let kind = spec::SEND_OUTCOMES[outcome];
        record_error(&cx, kind, format!("send failed: {kind}"));
    }
    cx.span().end();
}

pin_project_lite::pin_project! {
    /// Runs a channel operation's future; if it has to wait (returns `Pending`), times
    /// the wait into `histogram` (one wait in 64 per handle), and counts `dropped_as` if
    /// it is dropped while waiting. A future that completes on its first poll costs no
    /// timestamp.
    pub(super) struct Waited<'a, F> {
        #[pin]
        fut: F,
        // Pending since a poll, and not completed since.
        waiting: bool,
        since: Option<Instant>,
        histogram: &'a Histogram,
        counts: &'a Counts,
        dropped_as: &'a AtomicUsize,
    }

    impl<F> PinnedDrop for Waited<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting {
                this.counts.add(this.dropped_as.load(Ordering::Relaxed), 1);
            }
        }
    }
}

impl<'a, F> Waited<'a, F> {
    pub(super) fn new(
        fut: F,
        histogram: &'a Histogram,
        counts: &'a Counts,
        dropped_as: &'a AtomicUsize,
    ) -> Self {
        Self {
            fut,
            waiting: false,
            since: None,
            histogram,
            counts,
            dropped_as,
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

/// The outcome a plain dropped wait counts as.
pub(super) static AS_CANCELLED: AtomicUsize = AtomicUsize::new(CANCELLED);
