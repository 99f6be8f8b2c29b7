//! What [`Mutex`](super::Mutex) and [`RwLock`](super::RwLock) share beyond their
//! telemetry (`metrics.rs`), written once: the body of their builders, the handle on
//! tokio's lock that `get_mut` and `into_inner` reach, their `Debug`, and their guards'
//! traits and the bodies of their `map` and `try_map`, which carry the hold across the
//! user's function.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::error::BuildError;
use super::metrics::{Hold, Holder};
use crate::telemetry::Telemetry;

/// Implements `Deref` and `Debug` (the value's) for a guard, and `DerefMut` for a
/// `mut` one.
macro_rules! guard_traits {
    ($guard:ident <$($lt:lifetime,)? $($p:ident),*> => $target:ident) => {
        impl<$($lt,)? $($p: ?Sized),*> std::ops::Deref for $guard<$($lt,)? $($p),*> {
            type Target = $target;
            #[inline]
            fn deref(&self) -> &$target {
                &self.guard
            }
        }

        impl<$($lt,)? $($p: ?Sized),*> std::fmt::Debug for $guard<$($lt,)? $($p),*>
        where
            $target: std::fmt::Debug,
        {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&**self, f)
            }
        }
    };
    (mut $guard:ident <$($lt:lifetime,)? $($p:ident),*> => $target:ident) => {
        guard_traits!($guard<$($lt,)? $($p),*> => $target);

        impl<$($lt,)? $($p: ?Sized),*> std::ops::DerefMut for $guard<$($lt,)? $($p),*> {
            #[inline]
            fn deref_mut(&mut self) -> &mut $target {
                &mut self.guard
            }
        }
    };
}

/// The body of a guard's `map`: `map_guard!(this, f, Tokio, Guard)` narrows tokio's
/// guard with `tokio::sync::Tokio::map`, the hold carried across `f` (see [`carry`]),
/// into a guard of type `Guard` with the same hold. `map_guard!(try this, f, Tokio,
/// Guard)` is the body of a `try_map`, with `tokio::sync::Tokio::try_map`: when `f`
/// finds no part, the guard comes back as it was.
macro_rules! map_guard {
    ($this:ident, $f:ident, $tokio:ident, $to:ident) => {{
        let (hold, guard) = map_guard!(@carry $this, $f, $tokio::map);
        $to { hold, guard }
    }};
    (try $this:ident, $f:ident, $tokio:ident, $to:ident) => {{
        let (hold, mapped) = map_guard!(@carry $this, $f, $tokio::try_map);
        match mapped {
            Ok(guard) => Ok($to { hold, guard }),
            Err(guard) => Err(Self { hold, guard }),
        }
    }};
    // The hold, and what tokio's function made of the guard.
    (@carry $this:ident, $f:ident, $tokio:ident::$map:ident) => {{
        let Self { hold, guard } = $this;
        let mut hold = Some(hold);
        let mapped =
            tokio::sync::$tokio::$map(guard, |v| $crate::sync::lock::carry(&mut hold, v, $f));
        ($crate::sync::lock::carried(hold), mapped)
    }};
}

/// Calls `f(a)` with the hold taken out of `slot` and puts it back afterwards, for a
/// guard's `map`: if `f` panics, the hold ends inside it, while the lock is still held
/// (the lock's own guard is released only as the panic unwinds out of its `map`), so
/// the single-writer counts stay exact.
pub(super) fn carry<S: Holder, A, B>(
    slot: &mut Option<Hold<S>>,
    a: A,
    f: impl FnOnce(A) -> B,
) -> B {
    let hold = slot.take();
    let b = f(a);
    *slot = hold;
    b
}

/// The hold [`carry`] put back.
pub(super) fn carried<S: Holder>(slot: Option<Hold<S>>) -> Hold<S> {
    match slot {
        Some(hold) => hold,
        // `carry` puts it back whenever `f` returns, and a guard's `map` calls `f`
        // exactly once before it returns.
        None => unreachable!("a guard's map returned without calling its function"),
    }
}

/// What a lock's builder holds (the public builders wrap it): the name, the value and
/// the telemetry handle, if one was given.
pub(super) struct Build<T> {
    name: Arc<str>,
    value: T,
    telemetry: Option<Telemetry>,
}

impl<T> Build<T> {
    pub(super) fn new(name: Arc<str>, value: T) -> Self {
        Self {
            name,
            value,
            telemetry: None,
        }
    }

    /// Sets the telemetry handle.
    pub(super) fn telemetry(&mut self, telemetry: Telemetry) {
        self.telemetry = Some(telemetry);
    }

    /// The builder's `Debug`, named `type_name`: the name only.
    pub(super) fn fmt(&self, f: &mut fmt::Formatter<'_>, type_name: &str) -> fmt::Result {
        f.debug_struct(type_name)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }

    /// The name, the value and the telemetry handle ([`Telemetry::global`] at this
    /// call unless one was given), for a valid configuration.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`] for an empty name.
    pub(super) fn parts(self) -> Result<(Arc<str>, T, Telemetry), BuildError> {
        if self.name.is_empty() {
            return Err(BuildError::EmptyName);
        }
        let t = self.telemetry.unwrap_or_else(Telemetry::global);
        Ok((self.name, self.value, t))
    }
}

/// A lock's `Debug`, named `type_name`: its name, and its value if `peek` (tokio's own
/// `try_` call: a look at the value is not an acquisition) got it.
pub(super) fn fmt_lock<V: ?Sized + fmt::Debug, E>(
    f: &mut fmt::Formatter<'_>,
    type_name: &str,
    name: &str,
    peek: Result<impl Deref<Target = V>, E>,
) -> fmt::Result {
    let mut d = f.debug_struct(type_name);
    d.field("name", &name);
    match peek {
        Ok(value) => d.field("data", &&*value),
        Err(_) => d.field("data", &format_args!("<locked>")),
    };
    d.finish()
}

// A lock keeps tokio's lock in an `Arc` of its own for tokio's owned guards. Every
// other handle on it belongs to an owned guard or a pending owned call, and each of
// those holds an `Arc` of the lock too: so with `&mut` or by value, the lock's handle is
// the only one. The two functions below rely on that.

/// Tokio's lock out of the lock's only handle, for `into_inner`.
pub(super) fn only<L>(inner: Arc<L>) -> L {
    match Arc::try_unwrap(inner) {
        Ok(inner) => inner,
        // See above: no owned guard or owned call can outlive the lock.
        Err(_) => unreachable!("an owned guard outlived its lock"),
    }
}

/// Tokio's lock through the lock's only handle, for `get_mut`.
pub(super) fn only_mut<L: ?Sized>(inner: &mut Arc<L>) -> &mut L {
    match Arc::get_mut(inner) {
        Some(inner) => inner,
        // See above: no owned guard or owned call can outlive a borrow of the lock.
        None => unreachable!("an owned guard outlived a borrow of its lock"),
    }
}
