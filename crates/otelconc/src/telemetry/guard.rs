//! The one way user code is run: under its context, with panics caught, and with its
//! span ended on every path ([`Guarded`], [`poll_guarded`]).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};

use opentelemetry::Context;
use pin_project_lite::pin_project;

use super::ending::EndingSpan;
use crate::util::panic_payload;

/// Polls `fut` once with `otel` (when there is one) as the current OpenTelemetry context,
/// so work nested in it is a child of its span (or stays in its producer's trace), and
/// turns a panic during the poll into `Err(message)`. Without a context a poll costs the
/// inner poll plus an unwinding landing pad (free unless a panic happens).
///
/// The caller must not poll `fut` again after it panicked (it is broken); [`Guarded`]
/// and every other caller drop it.
#[inline]
pub(crate) fn poll_guarded<F: Future + ?Sized>(
    fut: Pin<&mut F>,
    otel: Option<&Context>,
    cx: &mut TaskCx<'_>,
) -> Poll<Result<F::Output, String>> {
    // The future is never polled again after it panicked (see above), so no broken
    // invariant of it can be observed: asserting unwind safety is sound.
    let polled = match otel {
        Some(otel) => {
            let _attached = otel.clone().attach();
            catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        }
        None => catch_unwind(AssertUnwindSafe(|| fut.poll(cx))),
    };
    match polled {
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(payload) => Poll::Ready(Err(panic_payload::message(&*payload))),
    }
}

pin_project! {
    /// User code and its [`EndingSpan`]: each poll runs under the span's context with
    /// panics caught ([`poll_guarded`]); a panic makes it ready with `Err(message)`. The
    /// owner ends the span with the outcome through [`Guarded::span`]; if the guard is
    /// dropped first (the work aborted, timed out or stopped), the span ends as
    /// cancelled.
    pub(crate) struct Guarded<F> {
        #[pin]
        fut: F,
        span: EndingSpan,
        done: bool,
    }
}

impl<F> Guarded<F> {
    #[inline]
    pub(crate) fn new(fut: F, span: EndingSpan) -> Self {
        Self {
            fut,
            span,
            done: false,
        }
    }

    /// The work's span, to end with its outcome.
    #[inline]
    pub(crate) fn span(self: Pin<&mut Self>) -> &mut EndingSpan {
        self.project().span
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, String>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`Guarded` polled after it was ready");
        let out = poll_guarded(this.fut, this.span.context(), cx);
        if out.is_ready() {
            *this.done = true;
        }
        out
    }
}
