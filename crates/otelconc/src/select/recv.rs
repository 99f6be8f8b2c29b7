//! One boxed receive future per input.

use std::future::Future;
use std::pin::Pin;

use crate::channel::Receiver;

pub(super) type RecvFut<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, crate::channel::RecvError>> + Send + 'a>>;

pub(super) fn recv_futures<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
) -> Vec<Option<RecvFut<'a, T>>> {
    inputs
        .into_iter()
        .map(|r| Some(Box::pin(r.recv()) as RecvFut<'a, T>))
        .collect()
}
