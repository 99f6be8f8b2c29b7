//! [`ResponseFuture`]: the inner service's response with the permits held until it is
//! done, a weighted request still waiting for its permits, or a refusal.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use otelconc::semaphore::{ExceedsTotal, OwnedSemaphorePermit};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::error::ConcurrencyLimited;
use crate::BoxError;

/// A wait for permits, boxed to be kept across polls.
pub(crate) type Acquire =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, ExceedsTotal>> + Send + Sync>>;

pin_project! {
    /// The response future of a [`ConcurrencyLimit`](super::ConcurrencyLimit) service.
    ///
    /// It holds the request's permits until the inner service's future completes; dropping
    /// it before then gives them back at once. For a weighted request still waiting for
    /// its permits, dropping it gives up its place in the queue (and takes nothing).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        kind: Kind<S, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req>
    where
        S: Service<Req>,
    {
        Called {
            #[pin]
            future: S::Future,
            permit: Option<OwnedSemaphorePermit>,
        },
        Waiting {
            call: Box<WaitingCall<S, Req>>,
        },
        Refused {
            error: Option<BoxError>,
        },
    }
}

/// A weighted call waiting for its permits (boxed: the rare path keeps the future small).
struct WaitingCall<S, Req> {
    acquire: Acquire,
    deadline: Option<Pin<Box<Sleep>>>,
    retry_after: Option<std::time::Duration>,
    service: Option<S>,
    request: Option<Req>,
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    #[inline]
    pub(crate) fn called(future: S::Future, permit: OwnedSemaphorePermit) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn waiting(
        acquire: Acquire,
        deadline: Option<Pin<Box<Sleep>>>,
        retry_after: Option<std::time::Duration>,
        service: S,
        request: Req,
    ) -> Self {
        Self {
            kind: Kind::Waiting {
                call: Box::new(WaitingCall {
                    acquire,
                    deadline,
                    retry_after,
                    service: Some(service),
                    request: Some(request),
                }),
            },
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            kind: Kind::Refused { error: Some(error) },
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Called { .. } => "ResponseFuture::Called",
            Kind::Waiting { .. } => "ResponseFuture::Waiting",
            Kind::Refused { .. } => "ResponseFuture::Refused",
        })
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        // The fast path, kept small enough to inline: a called service.
        if let KindProj::Called { future, permit } = kind.as_mut().project() {
            let out = ready!(future.poll(cx));
            drop(permit.take()); // the request is done: give its permits back now
            return Poll::Ready(out.map_err(Into::into));
        }
        poll_slow(kind, cx)
    }
}

/// A weighted call still waiting for its permits, or a refusal.
#[cold]
#[inline(never)]
fn poll_slow<S, Req>(
    mut kind: Pin<&mut Kind<S, Req>>,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Response, BoxError>>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    loop {
        match kind.as_mut().project() {
            KindProj::Called { future, permit } => {
                let out = ready!(future.poll(cx));
                drop(permit.take());
                return Poll::Ready(out.map_err(Into::into));
            }
            KindProj::Refused { error } => {
                return Poll::Ready(Err(error
                    .take()
                    .unwrap_or_else(|| "ResponseFuture polled after it completed".into())));
            }
            KindProj::Waiting { call } => {
                let WaitingCall {
                    acquire,
                    deadline,
                    retry_after,
                    service,
                    request,
                } = &mut **call;
                if let Poll::Ready(r) = acquire.as_mut().poll(cx) {
                    let next = match (r, service.take(), request.take()) {
                        (Ok(permit), Some(mut svc), Some(req)) => Kind::Called {
                            future: svc.call(req),
                            permit: Some(permit),
                        },
                        (Err(e), _, _) => Kind::Refused {
                            error: Some(Box::new(e)),
                        },
                        _ => Kind::Refused { error: None },
                    };
                    kind.set(next);
                    continue;
                }
                if let Some(d) = deadline
                    && d.as_mut().poll(cx).is_ready()
                {
                    let error = ConcurrencyLimited::new(*retry_after);
                    kind.set(Kind::Refused {
                        error: Some(Box::new(error)),
                    });
                    continue;
                }
                return Poll::Pending;
            }
        }
    }
}
