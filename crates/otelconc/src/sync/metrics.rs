//! The locks' telemetry, one [`Side`] per side of a lock (a `Mutex` has the exclusive
//! side, an `RwLock` both): its counts, instruments and observers, the sampled hold and
//! wait timings ([`Hold`], [`Waited`]), the wait spans, and the oldest-hold tracker.
//!
//! Counting follows the crate's two schemes ([`crate::util::counts`]):
//! - hold starts and ends on the exclusive side are written by the holder only, which
//!   the lock itself orders (a start after acquiring, an end before releasing): plain
//!   single-writer counters ([`Owned`]), no locked instruction;
//! - the shared side has many holders at once: [`Striped`];
//! - refusals, waits and cancellations are off the fast path: [`Striped`]. Each count
//!   is one add on one stripe: a wait is counted once as it starts (`contended`) and
//!   once as it ends (`waited` or `cancelled`), and the calls waiting now are the
//!   difference, not a count of their own.
//!
//! With no SDK reading the metrics nothing is counted, timed or tracked: a hold costs
//! one predictable branch at its start and one at its end, and a call that waits
//! awaits tokio's own future behind one more branch per poll. The sampled work (clock
//! reads, histogram records, span ends) is out of line, so the fast path inlines
//! small.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::task::{Context as TaskContext, Poll};

use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;

use super::error::TryLockError;

use crate::telemetry::names::sync as names;
use crate::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use crate::telemetry::{Histogram, Observation, Telemetry, WaitSpans};
use crate::util::counts::{Owned, Striped};
use crate::util::sync::lock;

/// One in this many holds and waits is timed: a fixed stride (see [`Holds::start`] and
/// [`Side::wait`]), never the first, never picked by whether the call is traced. The
/// instruments' descriptions state it.
pub(super) const SAMPLE: u64 = 16;

/// Marks kept by the oldest-hold tracker (see [`Side::oldest_age`]).
const MARKS: usize = 64;

/// How a side counts its holds: starts (acquisitions, downgrades) and ends (guard
/// drops).
pub(super) trait Holds: Default + Send + Sync + 'static {
    /// Counts a hold starting and returns its place in the sequence that picks the
    /// timing sample.
    fn start(&self) -> u64;
    /// Counts a hold ending.
    fn end(&self);
    /// Holds started so far.
    fn started(&self) -> u64;
    /// Holds ended so far.
    fn ended(&self) -> u64;
}

/// The exclusive side: only the holder writes, one at a time, ordered by the lock (the
/// previous holder's writes happen before the lock is released to the next one).
impl Holds for Owned<2> {
    #[inline]
    fn start(&self) -> u64 {
        let seq = self.get(0);
        self.add(0, 1);
        seq
    }

    #[inline]
    fn end(&self) {
        self.add(1, 1);
    }

    fn started(&self) -> u64 {
        self.get(0)
    }

    fn ended(&self) -> u64 {
        self.get(1)
    }
}

/// The shared side: many holders at once, each thread on its own stripe; the sample
/// sequence is the thread's own.
impl Holds for Striped<2> {
    #[inline]
    fn start(&self) -> u64 {
        self.add_seq(0, 1)
    }

    #[inline]
    fn end(&self) {
        self.add(1, 1);
    }

    fn started(&self) -> u64 {
        self.get(0)
    }

    fn ended(&self) -> u64 {
        self.get(1)
    }
}

/// Indexes of [`Side::cold`]: `try_` calls refused; waits started (`contended`);
/// waits ended with the lock; waits ended by cancellation.
const REFUSED: usize = 0;
const CONTENDED: usize = 1;
const WAITED: usize = 2;
const CANCELLED: usize = 3;

/// One side of a lock: its counts, instruments and observers.
pub(super) struct Side<H> {
    /// First: on cache lines of its own, written by every hold.
    holds: H,
    /// The lock's name.
    pub(super) name: Arc<str>,
    /// Whether an SDK reads the metrics; if not, nothing is counted or timed.
    counting: bool,
    /// Whether a wait has anything to record: `counting`, or spans being made.
    watched: bool,
    /// Counts off the fast path (indexes above).
    cold: Striped<4>,
    hold_time: Histogram,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    /// (when, holds started by then), oldest first; see [`Side::oldest_age`].
    marks: StdMutex<VecDeque<(quanta::Instant, u64)>>,
    spans: Spans,
    _observers: [Observation; 6],
}

impl<H: Holds> Side<H> {
    /// The `mode` side of the lock named `name`, whose observers read `owner` (through
    /// `side`) for as long as it lives.
    pub(super) fn new<O: Send + Sync + 'static>(
        t: &Telemetry,
        name: &Arc<str>,
        mode: &'static str,
        owner: &Weak<O>,
        side: fn(&O) -> &Self,
    ) -> Self {
        let base = [
            KeyValue::new(ATTR_NAME, name.clone()),
            KeyValue::new(names::ATTR_MODE, mode),
        ];
        let with =
            |extra: &[KeyValue]| -> Vec<KeyValue> { base.iter().chain(extra).cloned().collect() };
        let outcome = |o: &'static str| KeyValue::new(ATTR_OUTCOME, o);
        let read = |f: fn(&Self) -> u64| {
            let w = owner.clone();
            move || w.upgrade().map(|o| f(side(&o)))
        };
        let acquired = |extra: &[KeyValue], f: fn(&Self) -> u64| {
            t.observable_counter(&names::ACQUISITIONS, with(extra), read(f))
        };
        let observers = [
            acquired(&[outcome(names::OUTCOME_OK)], |s| s.holds.started()),
            acquired(
                &[
                    outcome(names::OUTCOME_REFUSED),
                    KeyValue::new(ATTR_ERROR_TYPE, names::ERROR_WOULD_BLOCK),
                ],
                |s| s.cold.get(REFUSED),
            ),
            acquired(&[outcome(names::OUTCOME_CANCELLED)], |s| {
                s.cold.get(CANCELLED)
            }),
            t.observable_counter(
                &names::CONTENDED,
                with(&[]),
                read(|s| s.cold.get(CONTENDED)),
            ),
            {
                let w = owner.clone();
                t.observable_up_down_counter(&names::WAITER_COUNT, with(&[]), move || {
                    w.upgrade().map(|o| side(&o).waiters())
                })
            },
            {
                let w = owner.clone();
                t.observable_gauge_f64(&names::HOLD_OLDEST_AGE, with(&[]), move || {
                    w.upgrade().map(|o| side(&o).oldest_age())
                })
            },
        ];
        // A meter without an SDK drops the callbacks at once.
        let counting = observers[0].observed();
        let traced = t.builds_spans();
        Self {
            holds: H::default(),
            name: name.clone(),
            counting,
            watched: counting || traced,
            cold: Striped::default(),
            hold_time: t.histogram(&names::HOLD_DURATION, &base),
            wait_ok: t.histogram(&names::WAIT_DURATION, &with(&[outcome(names::OUTCOME_OK)])),
            wait_cancelled: t.histogram(
                &names::WAIT_DURATION,
                &with(&[outcome(names::OUTCOME_CANCELLED)]),
            ),
            marks: StdMutex::new(VecDeque::new()),
            spans: Spans {
                telemetry: t.clone(),
                traced,
                attrs: base,
            },
            _observers: observers,
        }
    }

    /// Counts a `try_` call that found the lock taken, and returns its error.
    #[inline]
    pub(super) fn refused(&self) -> TryLockError {
        if self.counting {
            self.cold.add(REFUSED, 1);
        }
        TryLockError(())
    }

    /// Starts a real wait (the lock was taken when the call looked): counts it (one
    /// add, whose value before picks the sample), times it if it falls in the sample,
    /// and traces it inside a sampled trace. [`Waited`] ends it with
    /// [`Side::end_wait`].
    #[cold]
    #[inline(never)]
    fn start_wait(&self) -> WaitStart {
        let start = if self.counting {
            // Every SAMPLE-th wait on this thread, the first never.
            let seq = self.cold.add_seq(CONTENDED, 1);
            (seq % SAMPLE == SAMPLE - 1).then(quanta::Instant::now)
        } else {
            None
        };
        WaitStart {
            start,
            span: self.spans.start(),
        }
    }

    /// Ends a wait started by [`Side::start_wait`]: with the lock (`acquired`) or
    /// cancelled.
    #[cold]
    #[inline(never)]
    fn end_wait(&self, wait: WaitStart, acquired: bool) {
        if self.counting {
            self.cold.add(if acquired { WAITED } else { CANCELLED }, 1);
            if let Some(start) = wait.start {
                let h = if acquired {
                    &self.wait_ok
                } else {
                    &self.wait_cancelled
                };
                record_since(h, start);
            }
        }
        let outcome = if acquired {
            names::OUTCOME_OK
        } else {
            names::OUTCOME_CANCELLED
        };
        WaitSpans::end(wait.span, outcome);
    }

    /// Awaits `acquire`, the lock's own future for a call whose fast path (`try_`)
    /// failed (see [`Waited`]).
    #[inline]
    pub(super) fn waited<F: Future>(&self, acquire: F) -> Waited<'_, H, F> {
        Waited {
            acquire,
            side: self,
            wait: None,
        }
    }

    /// Callers waiting now: counted out before counted in, so never below those still
    /// in (a waiter that entered on one thread may leave on another).
    fn waiters(&self) -> i64 {
        let left = self.cold.get(WAITED).wrapping_add(self.cold.get(CANCELLED));
        let entered = self.cold.get(CONTENDED);
        i64::try_from(entered.saturating_sub(left)).unwrap_or(i64::MAX)
    }

    /// A lower bound on the age of the oldest hold still going, in seconds, read at a
    /// collection with no cost to the holds.
    ///
    /// Each collection leaves a mark (now, holds started so far = S). A later one that
    /// finds E holds ended drops every mark with S <= E: each hold counted in S has
    /// ended, or was replaced by one that ended. If a mark stays, fewer than S holds
    /// ended, so one of the first S, all begun before the mark was made, is still
    /// going: the hold is at least as old as the mark. On the exclusive side the
    /// holds end in the order they began, so the oldest mark left dates the current
    /// hold to within one collection interval; on the shared side later readers that
    /// come and go can hide an older one. A mark is only made when some hold is going
    /// and the holds started since the last mark; marks are bounded, the oldest kept.
    fn oldest_age(&self) -> f64 {
        let started = self.holds.started();
        let now = quanta::Instant::now();
        let ended = self.holds.ended();
        let mut marks = lock(&self.marks);
        while marks.front().is_some_and(|&(_, s)| s <= ended) {
            marks.pop_front();
        }
        if started > ended && marks.len() < MARKS && marks.back().is_none_or(|&(_, s)| s < started)
        {
            marks.push_back((now, started));
        }
        marks.front().map_or(0.0, |&(at, _)| {
            now.saturating_duration_since(at).as_secs_f64()
        })
    }
}

/// What a hold uses to reach its side: a reference for borrowed guards, an `Arc` of
/// the lock for owned ones.
pub(super) trait Holder {
    type Holds: Holds;
    fn side(&self) -> &Side<Self::Holds>;
}

impl<H: Holds> Holder for &Side<H> {
    type Holds = H;
    #[inline]
    fn side(&self) -> &Side<H> {
        self
    }
}

/// The projection for a [`Side`] whose observers read the side itself (a `Mutex`'s).
pub(super) fn itself<H>(side: &Side<H>) -> &Side<H> {
    side
}

/// A hold in progress: counted when it starts, and when it drops, its end counted and,
/// if it falls in the sample, its duration recorded.
///
/// A guard declares it before the lock's own guard, so it drops first: its end is
/// counted while the lock is still held, which is what keeps the exclusive side's
/// counters single-writer.
pub(super) struct Hold<S: Holder> {
    holder: S,
    start: Option<quanta::Instant>,
}

impl<S: Holder> Hold<S> {
    /// Starts a hold, right after the lock was taken.
    #[inline]
    pub(super) fn start(holder: S) -> Self {
        let side = holder.side();
        // Every SAMPLE-th hold, the first never.
        let start = if side.counting && side.holds.start() % SAMPLE == SAMPLE - 1 {
            Some(sampled_now())
        } else {
            None
        };
        Self { holder, start }
    }
}

impl<S: Holder> Hold<S> {
    /// What the hold reaches its side through.
    pub(super) fn holder(&self) -> &S {
        &self.holder
    }
}

impl<S: Holder> Drop for Hold<S> {
    #[inline]
    fn drop(&mut self) {
        let side = self.holder.side();
        if side.counting {
            side.holds.end();
            if let Some(start) = self.start {
                record_since(&side.hold_time, start);
            }
        }
    }
}

/// The clock read of a sampled hold's start: out of line, so that the 15 holds in 16
/// that skip it carry no code for it.
#[cold]
#[inline(never)]
fn sampled_now() -> quanta::Instant {
    quanta::Instant::now()
}

/// Records the time since `start` in `h`: out of line, as [`sampled_now`].
#[cold]
#[inline(never)]
fn record_since(h: &Histogram, start: quanta::Instant) {
    h.record(start.elapsed().as_secs_f64());
}

/// What a wait in progress carries: its sampled start and its span.
pub(super) struct WaitStart {
    start: Option<quanta::Instant>,
    span: Option<Context>,
}

pin_project! {
    /// A call's wait for the lock: the lock's own future, polled once per wake-up as a
    /// plain `.await` would. If its first poll already gets the lock (released
    /// meanwhile), the call did not wait; otherwise the wait starts then
    /// ([`Side::start_wait`]) and ends as acquired or, if this future is dropped first,
    /// as cancelled. With nothing to record (no SDK, no spans) it is the lock's own
    /// future behind one branch per poll.
    pub(super) struct Waited<'a, H, F>
    where
        H: Holds,
    {
        #[pin]
        acquire: F,
        side: &'a Side<H>,
        wait: Option<WaitStart>,
    }

    impl<'a, H, F> PinnedDrop for Waited<'a, H, F>
    where
        H: Holds,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(wait) = this.wait.take() {
                this.side.end_wait(wait, false);
            }
        }
    }
}

impl<H: Holds, F: Future> Future for Waited<'_, H, F> {
    type Output = F::Output;

    /// Out of line: only a call that found the lock taken gets here, and keeping the
    /// wait out of the lock call's own poll keeps that poll small enough to inline
    /// into the caller's.
    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.acquire.poll(cx) {
            Poll::Ready(out) => {
                if let Some(wait) = this.wait.take() {
                    this.side.end_wait(wait, true);
                }
                Poll::Ready(out)
            }
            Poll::Pending => {
                if this.side.watched && this.wait.is_none() {
                    *this.wait = Some(this.side.start_wait());
                }
                Poll::Pending
            }
        }
    }
}

/// How a side starts its wait spans. (The other primitives' [`WaitSpans`] carries the
/// amount a call asked for; a lock call asks for no amount but a mode, so only its
/// ending is shared.)
struct Spans {
    telemetry: Telemetry,
    /// Whether the tracer makes spans at all; if not, a wait does not look for a parent.
    traced: bool,
    /// Name and mode.
    attrs: [KeyValue; 2],
}

impl Spans {
    /// The span of a wait, child of the caller's context, inside a sampled trace only.
    fn start(&self) -> Option<Context> {
        if !self.traced {
            return None;
        }
        let parent = self.telemetry.span_parent()?;
        Some(
            self.telemetry
                .start_span(&names::WAIT_SPAN, &parent, self.attrs.to_vec()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::SAMPLE;
    use crate::telemetry::names::sync as names;

    #[test]
    fn the_sampled_histograms_state_the_rate() {
        let rate = format!("1 in {SAMPLE} ");
        for spec in [names::WAIT_DURATION, names::HOLD_DURATION] {
            assert!(spec.description.contains(&rate), "{}", spec.name);
        }
    }
}
