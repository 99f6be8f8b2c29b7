//! [`ResponseFuture`]: the inner service's response, or the refusal.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::BoxError;

pin_project! {
    /// The response future of a [`RateLimit`](super::RateLimit) service: the inner
    /// service's future, or a refusal that resolves at once.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Refused { error: Option<BoxError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(future: F) -> Self {
        Self {
            kind: Kind::Called { future },
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            kind: Kind::Refused { error: Some(error) },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Called { .. } => "ResponseFuture::Called",
            Kind::Refused { .. } => "ResponseFuture::Refused",
        })
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { future } => Poll::Ready(ready!(future.poll(cx)).map_err(Into::into)),
            KindProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "ResponseFuture polled after it completed".into()))),
        }
    }
}
