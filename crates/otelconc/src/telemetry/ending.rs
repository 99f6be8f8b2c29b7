//! A span that ends on every path: with the work's outcome when the work finishes, or
//! as cancelled when whatever owns it is dropped first (a run stopped, a task
//! aborted, a stream dropped mid-item).

use std::borrow::Cow;

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;

use super::record_error;

/// A span (if the work has one) that ends exactly once.
pub(crate) struct EndingSpan {
    cx: Option<Context>,
    /// The message of the `cancelled` error it ends with when dropped unfinished.
    dropped: &'static str,
}

impl EndingSpan {
    pub(crate) fn new(cx: Option<Context>, dropped: &'static str) -> Self {
        Self { cx, dropped }
    }

    /// The span's context, while it has not ended.
    pub(crate) fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    /// Ends the span, first marking it failed with `error` (kind, message) if given.
    /// Later calls, and the drop, do nothing.
    pub(crate) fn finish(&mut self, error: Option<(&'static str, Cow<'static, str>)>) {
        if let Some(cx) = self.cx.take() {
            if let Some((kind, message)) = error {
                record_error(&cx, kind, message);
            }
            cx.span().end();
        }
    }
}

impl Drop for EndingSpan {
    fn drop(&mut self) {
        if self.cx.is_some() {
            self.finish(Some(("cancelled", Cow::Borrowed(self.dropped))));
        }
    }
}
