//! [`Mutex`], its [`MutexBuilder`] and its guards.

use std::fmt;
use std::sync::Arc;

use super::error::{BuildError, TryLockError};
use super::lock::{Build, fmt_lock, only, only_mut};
use super::metrics::{Hold, Holder, Side, itself};
use crate::telemetry::Telemetry;
use crate::telemetry::names::sync::MODE_EXCLUSIVE;
use crate::util::counts::Owned;

/// The exclusive side's hold counts: written by the holder only.
type Exclusive = Side<Owned<2>>;

/// An asynchronous mutual-exclusion lock with telemetry: `tokio::sync::Mutex` with
/// its waits, holds and contention counted, timed and traced (see the
/// [module docs](super)).
///
/// Fair: callers get the lock in the order they asked for it, and
/// [`try_lock`](Mutex::try_lock) fails while calls are queued.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use otelconc::sync::Mutex;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hits = Arc::new(Mutex::new("hits", 0u64)?);
/// let tasks: Vec<_> = (0..4)
///     .map(|_| {
///         let hits = hits.clone();
///         tokio::spawn(async move { *hits.lock().await += 1 })
///     })
///     .collect();
/// for t in tasks {
///     t.await?;
/// }
/// assert_eq!(*hits.lock().await, 4);
/// # Ok(())
/// # }
/// ```
pub struct Mutex<T: ?Sized> {
    side: Arc<Exclusive>,
    /// In an `Arc` of its own for tokio's owned guards. Every other handle on it
    /// belongs to an owned guard or a pending owned call, and each of those holds an
    /// `Arc` of this `Mutex` too: so with `&mut self` or `self` this one is the only
    /// handle (`get_mut`, `into_inner`).
    inner: Arc<tokio::sync::Mutex<T>>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_lock(f, "Mutex", &self.side.name, self.inner.try_lock())
    }
}

/// Builds a [`Mutex`] with options (the telemetry handle).
///
/// # Examples
/// ```
/// use otelconc::sync::Mutex;
/// use otelconc::telemetry::Telemetry;
/// let m = Mutex::builder("cache", Vec::<u8>::new())
///     .telemetry(Telemetry::global())
///     .build()?;
/// assert_eq!(m.name(), "cache");
/// # Ok::<(), otelconc::sync::BuildError>(())
/// ```
#[must_use = "a builder does nothing until .build()"]
pub struct MutexBuilder<T>(Build<T>);

impl<T> fmt::Debug for MutexBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f, "MutexBuilder")
    }
}

impl<T> MutexBuilder<T> {
    /// The meter and tracer to use (default: [`Telemetry::global`] at build time).
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// use otelconc::telemetry::Telemetry;
    /// let b = Mutex::builder("cache", 0).telemetry(Telemetry::global());
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.0.telemetry(telemetry);
        self
    }

    /// Builds the mutex, unlocked.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`] for an empty name.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// assert!(Mutex::builder("", 0).build().is_err());
    /// ```
    pub fn build(self) -> Result<Mutex<T>, BuildError> {
        let (name, value, t) = self.0.parts()?;
        let side = Arc::new_cyclic(|w| Side::new(&t, &name, MODE_EXCLUSIVE, w, itself));
        Ok(Mutex {
            side,
            inner: Arc::new(tokio::sync::Mutex::new(value)),
        })
    }
}

impl<T> Mutex<T> {
    /// A mutex named `name` (the `otelconc.name` of its metrics) holding `value`,
    /// unlocked, with [`Telemetry::global`].
    ///
    /// # Errors
    /// [`BuildError::EmptyName`] for an empty name.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// let m = Mutex::new("cache", 5)?;
    /// assert_eq!(m.into_inner(), 5);
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn new(name: impl Into<Arc<str>>, value: T) -> Result<Self, BuildError> {
        Self::builder(name, value).build()
    }

    /// A [`MutexBuilder`] for a mutex with more options.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// let m = Mutex::builder("cache", 0).build()?;
    /// # let _ = m;
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn builder(name: impl Into<Arc<str>>, value: T) -> MutexBuilder<T> {
        MutexBuilder(Build::new(name.into(), value))
    }

    /// Consumes the mutex and returns the value it protects.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// let m = Mutex::new("cache", vec![1])?;
    /// assert_eq!(m.into_inner(), vec![1]);
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn into_inner(self) -> T {
        only(self.inner).into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting (in FIFO order) while it is held, and returns a guard
    /// that unlocks it when dropped.
    ///
    /// Cost: tokio's `try_lock` and, when an SDK reads the metrics, one plain counter
    /// add; only a call that finds the mutex taken goes on to wait.
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute locks in the order they
    /// were requested. Cancelling a call to `lock` makes you lose your place in
    /// the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let m = Mutex::new("cache", 1)?;
    /// *m.lock().await += 1;
    /// assert_eq!(*m.lock().await, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        let guard = match self.inner.try_lock() {
            Ok(guard) => guard,
            Err(_) => self.side.waited(self.inner.lock()).await,
        };
        MutexGuard {
            hold: Hold::start(&*self.side),
            guard,
        }
    }

    /// Locks the mutex if it is free now and nobody waits for it.
    ///
    /// # Errors
    /// [`TryLockError`] when it is held or calls are queued for it (counted as a
    /// refusal).
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// let m = Mutex::new("cache", 1)?;
    /// let held = m.try_lock()?;
    /// assert!(m.try_lock().is_err());
    /// drop(held);
    /// assert_eq!(*m.try_lock()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        match self.inner.try_lock() {
            Ok(guard) => Ok(MutexGuard {
                hold: Hold::start(&*self.side),
                guard,
            }),
            Err(_) => Err(self.side.refused()),
        }
    }

    /// Like [`Mutex::lock`], with a guard that owns a handle on the mutex (`'static`,
    /// to move into a task).
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute locks in the order they
    /// were requested. Cancelling a call to `lock_owned` makes you lose your
    /// place in the queue.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::Mutex;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let m = Arc::new(Mutex::new("cache", 1)?);
    /// let mut guard = m.clone().lock_owned().await;
    /// tokio::spawn(async move { *guard += 1 }).await?;
    /// assert_eq!(*m.lock().await, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        let guard = match self.inner.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => self.side.waited(self.inner.clone().lock_owned()).await,
        };
        OwnedMutexGuard {
            hold: Hold::start(ByArc(self)),
            guard,
        }
    }

    /// Like [`Mutex::try_lock`], with a guard that owns a handle on the mutex.
    ///
    /// # Errors
    /// As [`Mutex::try_lock`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::Mutex;
    /// let m = Arc::new(Mutex::new("cache", 1)?);
    /// let guard = m.clone().try_lock_owned()?;
    /// assert!(m.clone().try_lock_owned().is_err());
    /// drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        match self.inner.clone().try_lock_owned() {
            Ok(guard) => Ok(OwnedMutexGuard {
                hold: Hold::start(ByArc(self)),
                guard,
            }),
            Err(_) => Err(self.side.refused()),
        }
    }

    /// A mutable reference to the value: the `&mut` borrow proves no guard exists, so
    /// no locking (and no telemetry) takes place.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// let mut m = Mutex::new("cache", 1)?;
    /// *m.get_mut() = 2;
    /// assert_eq!(m.into_inner(), 2);
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        only_mut(&mut self.inner).get_mut()
    }

    /// The name given at construction.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::Mutex;
    /// assert_eq!(Mutex::new("cache", ())?.name(), "cache");
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.side.name
    }
}

/// How an owned guard reaches the mutex's telemetry: through the `Arc` of the mutex it
/// keeps, which is also what makes `get_mut` and `into_inner` sound.
struct ByArc<T: ?Sized>(Arc<Mutex<T>>);

impl<T: ?Sized> Holder for ByArc<T> {
    type Holds = Owned<2>;
    #[inline]
    fn side(&self) -> &Exclusive {
        &self.0.side
    }
}

/// A locked [`Mutex`]; unlocks it when dropped.
///
/// # Examples
/// ```
/// use otelconc::sync::Mutex;
/// let m = Mutex::new("cache", 1)?;
/// {
///     let mut g = m.try_lock()?;
///     *g = 2;
/// } // unlocked here
/// assert_eq!(*m.try_lock()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the mutex unlocks as soon as the guard drops"]
pub struct MutexGuard<'a, T: ?Sized> {
    // Before `guard`: a hold ends while the lock is still held.
    hold: Hold<&'a Exclusive>,
    guard: tokio::sync::MutexGuard<'a, T>,
}

guard_traits!(mut MutexGuard<'a, T> => T);

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// A guard of a part of the locked value, made by `f`; the mutex stays locked
    /// until it drops. An associated function (`MutexGuard::map(guard, f)`), so that
    /// it does not hide a method of the value.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{MappedMutexGuard, Mutex, MutexGuard};
    /// let m = Mutex::new("pair", (1, 2))?;
    /// let mut second: MappedMutexGuard<'_, i32> = MutexGuard::map(m.try_lock()?, |p| &mut p.1);
    /// *second = 5;
    /// drop(second);
    /// assert_eq!(*m.try_lock()?, (1, 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        map_guard!(this, f, MutexGuard, MappedMutexGuard)
    }

    /// Like [`MutexGuard::map`], when `f` may find no part to lend: then the original
    /// guard comes back.
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{Mutex, MutexGuard};
    /// let m = Mutex::new("opt", None::<u32>)?;
    /// let g = MutexGuard::try_map(m.try_lock()?, |o| o.as_mut());
    /// assert!(g.is_err()); // nothing inside; the guard is handed back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        map_guard!(try this, f, MutexGuard, MappedMutexGuard)
    }
}

/// A guard of a part of a locked [`Mutex`], made by [`MutexGuard::map`]; unlocks the
/// mutex when dropped.
///
/// # Examples
/// ```
/// use otelconc::sync::{Mutex, MutexGuard};
/// let m = Mutex::new("pair", (1, 2))?;
/// let first = MutexGuard::map(m.try_lock()?, |p| &mut p.0);
/// assert_eq!(*first, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the mutex unlocks as soon as the guard drops"]
pub struct MappedMutexGuard<'a, T: ?Sized> {
    hold: Hold<&'a Exclusive>,
    guard: tokio::sync::MappedMutexGuard<'a, T>,
}

guard_traits!(mut MappedMutexGuard<'a, T> => T);

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Narrows the guard further, as [`MutexGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{MappedMutexGuard, Mutex, MutexGuard};
    /// let m = Mutex::new("nested", ((1, 2), 3))?;
    /// let inner = MutexGuard::map(m.try_lock()?, |p| &mut p.0);
    /// let two = MappedMutexGuard::map(inner, |p| &mut p.1);
    /// assert_eq!(*two, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U, F>(this: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        map_guard!(this, f, MappedMutexGuard, MappedMutexGuard)
    }

    /// Narrows the guard further if `f` finds a part, as [`MutexGuard::try_map`].
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{MappedMutexGuard, Mutex, MutexGuard};
    /// let m = Mutex::new("nested", (Some(1), 3))?;
    /// let inner = MutexGuard::map(m.try_lock()?, |p| &mut p.0);
    /// assert!(MappedMutexGuard::try_map(inner, |o| o.as_mut()).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U, F>(this: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        map_guard!(try this, f, MappedMutexGuard, MappedMutexGuard)
    }
}

/// A locked [`Mutex`] from [`Mutex::lock_owned`]: `'static`, it keeps the mutex alive
/// and unlocks it when dropped.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use otelconc::sync::Mutex;
/// let m = Arc::new(Mutex::new("cache", 1)?);
/// let g = m.clone().try_lock_owned()?;
/// assert_eq!(*g, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the mutex unlocks as soon as the guard drops"]
pub struct OwnedMutexGuard<T: ?Sized> {
    hold: Hold<ByArc<T>>,
    guard: tokio::sync::OwnedMutexGuard<T>,
}

guard_traits!(mut OwnedMutexGuard<T> => T);

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// A guard of a part of the locked value, as [`MutexGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{Mutex, OwnedMutexGuard};
    /// let m = Arc::new(Mutex::new("pair", (1, 2))?);
    /// let second = OwnedMutexGuard::map(m.clone().try_lock_owned()?, |p| &mut p.1);
    /// assert_eq!(*second, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> OwnedMappedMutexGuard<T, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        map_guard!(this, f, OwnedMutexGuard, OwnedMappedMutexGuard)
    }

    /// Like [`OwnedMutexGuard::map`], when `f` may find no part to lend.
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{Mutex, OwnedMutexGuard};
    /// let m = Arc::new(Mutex::new("opt", Some(1))?);
    /// let one = OwnedMutexGuard::try_map(m.clone().try_lock_owned()?, |o| o.as_mut());
    /// assert_eq!(one.map(|g| *g).ok(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<OwnedMappedMutexGuard<T, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        map_guard!(try this, f, OwnedMutexGuard, OwnedMappedMutexGuard)
    }

    /// The mutex this guard locks.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{Mutex, OwnedMutexGuard};
    /// let m = Arc::new(Mutex::new("cache", 1)?);
    /// let g = m.clone().try_lock_owned()?;
    /// assert!(Arc::ptr_eq(OwnedMutexGuard::mutex(&g), &m));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.hold.holder().0
    }
}

/// A guard of a part of a locked [`Mutex`], made by [`OwnedMutexGuard::map`]:
/// `'static`, it keeps the mutex alive and unlocks it when dropped.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use otelconc::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
/// let m = Arc::new(Mutex::new("pair", (1, 2))?);
/// let first: OwnedMappedMutexGuard<(i32, i32), i32> =
///     OwnedMutexGuard::map(m.clone().try_lock_owned()?, |p| &mut p.0);
/// assert_eq!(*first, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the mutex unlocks as soon as the guard drops"]
pub struct OwnedMappedMutexGuard<T: ?Sized, U: ?Sized = T> {
    hold: Hold<ByArc<T>>,
    guard: tokio::sync::OwnedMappedMutexGuard<T, U>,
}

guard_traits!(mut OwnedMappedMutexGuard<T, U> => U);

impl<T: ?Sized, U: ?Sized> OwnedMappedMutexGuard<T, U> {
    /// Narrows the guard further, as [`MutexGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
    /// let m = Arc::new(Mutex::new("nested", ((1, 2), 3))?);
    /// let inner = OwnedMutexGuard::map(m.clone().try_lock_owned()?, |p| &mut p.0);
    /// assert_eq!(*OwnedMappedMutexGuard::map(inner, |p| &mut p.1), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<S, F>(this: Self, f: F) -> OwnedMappedMutexGuard<T, S>
    where
        F: FnOnce(&mut U) -> &mut S,
    {
        map_guard!(this, f, OwnedMappedMutexGuard, OwnedMappedMutexGuard)
    }

    /// Narrows the guard further if `f` finds a part, as [`MutexGuard::try_map`].
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
    /// let m = Arc::new(Mutex::new("nested", (None::<u8>, 3))?);
    /// let inner = OwnedMutexGuard::map(m.clone().try_lock_owned()?, |p| &mut p.0);
    /// assert!(OwnedMappedMutexGuard::try_map(inner, |o| o.as_mut()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<S, F>(this: Self, f: F) -> Result<OwnedMappedMutexGuard<T, S>, Self>
    where
        F: FnOnce(&mut U) -> Option<&mut S>,
    {
        map_guard!(try this, f, OwnedMappedMutexGuard, OwnedMappedMutexGuard)
    }

    /// The mutex this guard locks.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
    /// let m = Arc::new(Mutex::new("pair", (1, 2))?);
    /// let g = OwnedMutexGuard::map(m.clone().try_lock_owned()?, |p| &mut p.0);
    /// assert!(Arc::ptr_eq(OwnedMappedMutexGuard::mutex(&g), &m));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.hold.holder().0
    }
}
