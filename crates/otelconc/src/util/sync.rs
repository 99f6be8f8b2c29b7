//! The one way this crate takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the state over when a panic elsewhere poisoned the lock. Every
/// mutex in this crate guards state that each update leaves whole (a push, a removal,
/// a swap, additions), so a poisoned lock still holds consistent state, and a panic in
/// user code must not turn into a second panic in a primitive.
#[inline]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
