//! The one span that ends on every path ([`EndingSpan`]), and the one rule for how a
//! span records how its work ended ([`End`]).
//!
//! # The error rule (OpenTelemetry `recording-errors.md`)
//! - A failed operation's span gets status Error with the error's message as the status
//!   description, and `error.type` from a small closed set: `panic`, `timeout`,
//!   `queue_full`, `closed`, `would_block`, or the type name of the user's error. No `exception`
//!   span event (deprecated) is added.
//! - **Cancellation is not an error.** Work that ends because it was dropped, aborted or
//!   stopped before it finished (a sibling aborted because another task failed, a job
//!   cancelled at shutdown, an item dropped by a stop) ends with status Unset and
//!   `otelconc.outcome = cancelled`; one failing task in a group of 100 is one error.

use std::borrow::Cow;
use std::fmt;

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};

use super::names::{ATTR_ERROR_TYPE, ATTR_OUTCOME};

/// How a span's work ended.
#[derive(Debug)]
pub(crate) enum End {
    /// It finished.
    Ok,
    /// It failed: `error.type` and the message for the status description.
    Failed(&'static str, Cow<'static, str>),
    /// It was dropped, aborted or stopped before it finished.
    Cancelled,
}

/// The `error.type` of a user error of type `E`: its type name.
pub(crate) fn error_type<E: ?Sized>() -> &'static str {
    std::any::type_name::<E>()
}

impl End {
    /// A user error: `error.type` is its type name ([`error_type`]).
    pub(crate) fn error<E: fmt::Display + ?Sized>(error: &E) -> Self {
        Self::Failed(error_type::<E>(), error.to_string().into())
    }

    /// A panic with `message`.
    pub(crate) fn panic(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Failed("panic", message.into())
    }
}

/// Records on `cx`'s span how its work ended (see the module docs). Does not end it.
pub(crate) fn record_end(cx: &Context, end: End) {
    let span = cx.span();
    match end {
        End::Ok => {}
        End::Failed(error_type, message) => {
            span.set_attribute(KeyValue::new(ATTR_ERROR_TYPE, error_type));
            span.set_status(Status::error(message));
        }
        End::Cancelled => span.set_attribute(KeyValue::new(ATTR_OUTCOME, "cancelled")),
    }
}

/// The context a piece of work runs under, and the span (if the work has one) that ends
/// exactly once: by [`finish`](Self::finish) with the work's outcome, or as cancelled
/// when it is dropped first.
///
/// The context is the work's span's when it has one, else the context its producer
/// carried (unsampled, or baggage only), which is attached but never ended.
#[derive(Debug, Default)]
pub(crate) struct EndingSpan {
    cx: Option<Context>,
    /// Whether `cx` is a span this value ends.
    owned: bool,
}

impl EndingSpan {
    /// Neither a span nor a context.
    #[inline]
    pub(crate) const fn none() -> Self {
        Self {
            cx: None,
            owned: false,
        }
    }

    /// The work's own span when one was started (`span`), else the producer's carried
    /// context (`carried`), attached without being ended.
    #[inline]
    pub(crate) fn new(span: Option<Context>, carried: Option<&Context>) -> Self {
        match span {
            Some(cx) => Self {
                cx: Some(cx),
                owned: true,
            },
            None => Self {
                cx: carried.cloned(),
                owned: false,
            },
        }
    }

    /// The context to run the work under, while the span has not ended.
    #[inline]
    pub(crate) fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    /// Whether this ends a span of its own.
    #[inline]
    pub(crate) fn has_span(&self) -> bool {
        self.owned && self.cx.is_some()
    }

    /// Ends the span with how the work ended. Later calls, and the drop, do nothing.
    #[inline]
    pub(crate) fn finish(&mut self, end: End) {
        if let Some(cx) = self.cx.take()
            && self.owned
        {
            record_end(&cx, end);
            cx.span().end();
        }
    }

    /// Hands the context over without ending the span (the caller now ends it): the
    /// context, and whether it is a span to end.
    pub(crate) fn into_parts(mut self) -> (Option<Context>, bool) {
        (self.cx.take(), self.owned)
    }
}

impl Drop for EndingSpan {
    #[inline]
    fn drop(&mut self) {
        if self.cx.is_some() {
            self.finish(End::Cancelled);
        }
    }
}
