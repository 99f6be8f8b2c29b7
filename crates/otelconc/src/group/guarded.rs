//! Polling user code under its span's context, with panics caught.

use std::borrow::Borrow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};

use opentelemetry::Context;
use pin_project_lite::pin_project;

use crate::util::panic_payload;

pin_project! {
    /// Polls `fut` with `cx` (when there is one) as the current OpenTelemetry context, so
    /// work nested in it is a child of its span, and turns a panic during a poll into
    /// `Err(message)`. Outside a sampled trace `cx` is `None` and a poll costs the inner
    /// poll plus an unwinding landing pad (free unless a panic happens). `cx` is owned
    /// or borrowed (`C` is `Context` or `&Context`).
    pub(crate) struct Guarded<F, C> {
        #[pin]
        fut: F,
        cx: Option<C>,
    }
}

impl<F, C> Guarded<F, C> {
    pub(crate) fn new(fut: F, cx: Option<C>) -> Self {
        Self { fut, cx }
    }
}

impl<F: Future, C: Borrow<Context>> Future for Guarded<F, C> {
    type Output = Result<F::Output, String>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let fut = this.fut;
        // The inner future is never polled again after it panicked: this future is
        // ready with the panic message and its owner drops it, so no broken invariant
        // of the inner future can be observed; asserting unwind safety is sound.
        let polled = match this.cx {
            Some(otel) => {
                let _attached = Borrow::<Context>::borrow(otel).clone().attach();
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
}
