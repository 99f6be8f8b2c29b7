//! [`RwLock`], its [`RwLockBuilder`] and its guards.

use std::fmt;
use std::sync::Arc;

use super::error::{BuildError, TryLockError};
use super::lock::{Build, fmt_lock, only, only_mut};
use super::metrics::{Hold, Holder, Side};
use crate::telemetry::Telemetry;
use crate::telemetry::names::sync::{MODE_EXCLUSIVE, MODE_SHARED};
use crate::util::counts::{Owned, Striped};

/// Both sides of a lock's telemetry.
struct Sides {
    /// Writers: hold counts written by the holder only.
    exclusive: Side<Owned<2>>,
    /// Readers: many holders at once, striped counts.
    shared: Side<Striped<2>>,
}

fn exclusive(s: &Sides) -> &Side<Owned<2>> {
    &s.exclusive
}

fn shared(s: &Sides) -> &Side<Striped<2>> {
    &s.shared
}

/// What a guard reaches the lock's telemetry through: a reference for borrowed guards,
/// the `Arc` of the lock for owned ones.
trait Locked {
    fn sides(&self) -> &Sides;
}

impl Locked for &Sides {
    #[inline]
    fn sides(&self) -> &Sides {
        self
    }
}

impl<T: ?Sized> Locked for Arc<RwLock<T>> {
    #[inline]
    fn sides(&self) -> &Sides {
        &self.sides
    }
}

/// A write hold, on the exclusive side.
struct Writer<P>(P);

impl<P: Locked> Holder for Writer<P> {
    type Holds = Owned<2>;
    #[inline]
    fn side(&self) -> &Side<Owned<2>> {
        &self.0.sides().exclusive
    }
}

/// A read hold, on the shared side.
struct Reader<P>(P);

impl<P: Locked> Holder for Reader<P> {
    type Holds = Striped<2>;
    #[inline]
    fn side(&self) -> &Side<Striped<2>> {
        &self.0.sides().shared
    }
}

/// An asynchronous reader-writer lock with telemetry: `tokio::sync::RwLock` with its
/// waits, holds and contention counted, timed and traced per side (see the
/// [module docs](super)).
///
/// Any number of readers or one writer at a time. Fair (write-preferring, as tokio's):
/// calls are served in the order they asked, so a read call queued behind a waiting
/// write call waits for that writer even while other readers hold the lock, and
/// readers cannot starve writers.
///
/// # Examples
/// ```
/// use otelconc::sync::RwLock;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RwLock::new("config", String::from("v1"))?;
/// {
///     let a = config.read().await;
///     let b = config.read().await; // readers share
///     assert_eq!((a.as_str(), b.as_str()), ("v1", "v1"));
/// }
/// config.write().await.push_str("-patched");
/// assert_eq!(*config.read().await, "v1-patched");
/// # Ok(())
/// # }
/// ```
pub struct RwLock<T: ?Sized> {
    sides: Arc<Sides>,
    /// In an `Arc` of its own for tokio's owned guards. Every other handle on it
    /// belongs to an owned guard or a pending owned call, and each of those holds an
    /// `Arc` of this `RwLock` too: so with `&mut self` or `self` this one is the only
    /// handle (`get_mut`, `into_inner`).
    inner: Arc<tokio::sync::RwLock<T>>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_lock(
            f,
            "RwLock",
            &self.sides.exclusive.name,
            self.inner.try_read(),
        )
    }
}

/// Builds an [`RwLock`] with options (the telemetry handle).
///
/// # Examples
/// ```
/// use otelconc::sync::RwLock;
/// use otelconc::telemetry::Telemetry;
/// let l = RwLock::builder("routes", 0).telemetry(Telemetry::global()).build()?;
/// assert_eq!(l.name(), "routes");
/// # Ok::<(), otelconc::sync::BuildError>(())
/// ```
#[must_use = "a builder does nothing until .build()"]
pub struct RwLockBuilder<T>(Build<T>);

impl<T> fmt::Debug for RwLockBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f, "RwLockBuilder")
    }
}

impl<T> RwLockBuilder<T> {
    /// The meter and tracer to use (default: [`Telemetry::global`] at build time).
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// use otelconc::telemetry::Telemetry;
    /// let b = RwLock::builder("routes", 0).telemetry(Telemetry::global());
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.0.telemetry(telemetry);
        self
    }

    /// Builds the lock, unlocked.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`] for an empty name.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// assert!(RwLock::builder("", 0).build().is_err());
    /// ```
    pub fn build(self) -> Result<RwLock<T>, BuildError> {
        let (name, value, t) = self.0.parts()?;
        let sides = Arc::new_cyclic(|w| Sides {
            exclusive: Side::new(&t, &name, MODE_EXCLUSIVE, w, exclusive),
            shared: Side::new(&t, &name, MODE_SHARED, w, shared),
        });
        Ok(RwLock {
            sides,
            inner: Arc::new(tokio::sync::RwLock::new(value)),
        })
    }
}

impl<T> RwLock<T> {
    /// A lock named `name` (the `otelconc.name` of its metrics) holding `value`,
    /// unlocked, with [`Telemetry::global`].
    ///
    /// # Errors
    /// [`BuildError::EmptyName`] for an empty name.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// let l = RwLock::new("routes", 5)?;
    /// assert_eq!(l.into_inner(), 5);
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn new(name: impl Into<Arc<str>>, value: T) -> Result<Self, BuildError> {
        Self::builder(name, value).build()
    }

    /// An [`RwLockBuilder`] for a lock with more options.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// let l = RwLock::builder("routes", 0).build()?;
    /// # let _ = l;
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn builder(name: impl Into<Arc<str>>, value: T) -> RwLockBuilder<T> {
        RwLockBuilder(Build::new(name.into(), value))
    }

    /// Consumes the lock and returns the value it protects.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// assert_eq!(RwLock::new("routes", vec![1])?.into_inner(), vec![1]);
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn into_inner(self) -> T {
        only(self.inner).into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Takes the lock for reading, waiting while a writer holds it or write calls
    /// queued earlier wait for it, and returns a guard that releases it when dropped.
    ///
    /// Cost: tokio's `try_read` and, when an SDK reads the metrics, one counter add on
    /// a per-thread stripe; only a call that finds the lock taken goes on to wait.
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute locks in the order they
    /// were requested. Cancelling a call to `read` makes you lose your place in
    /// the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let l = RwLock::new("routes", 1)?;
    /// let (a, b) = (l.read().await, l.read().await);
    /// assert_eq!(*a + *b, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        let guard = match self.inner.try_read() {
            Ok(guard) => guard,
            Err(_) => self.sides.shared.waited(self.inner.read()).await,
        };
        RwLockReadGuard {
            hold: Hold::start(Reader(&*self.sides)),
            guard,
        }
    }

    /// Takes the lock for reading if no writer holds it and no call waits for it.
    ///
    /// # Errors
    /// [`TryLockError`] when a writer holds it or calls are queued for it (counted as
    /// a refusal).
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// let l = RwLock::new("routes", 1)?;
    /// let r = l.try_read()?;
    /// assert!(l.try_read().is_ok()); // readers share
    /// assert!(l.try_write().is_err());
    /// drop(r);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        match self.inner.try_read() {
            Ok(guard) => Ok(RwLockReadGuard {
                hold: Hold::start(Reader(&*self.sides)),
                guard,
            }),
            Err(_) => Err(self.sides.shared.refused()),
        }
    }

    /// Like [`RwLock::read`], with a guard that owns a handle on the lock (`'static`,
    /// to move into a task).
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute locks in the order they
    /// were requested. Cancelling a call to `read_owned` makes you lose your
    /// place in the queue.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::RwLock;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// let r = l.clone().read_owned().await;
    /// assert_eq!(tokio::spawn(async move { *r }).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_owned(self: Arc<Self>) -> OwnedRwLockReadGuard<T> {
        let guard = match self.inner.clone().try_read_owned() {
            Ok(guard) => guard,
            Err(_) => {
                let read = self.inner.clone().read_owned();
                self.sides.shared.waited(read).await
            }
        };
        OwnedRwLockReadGuard {
            hold: Hold::start(Reader(self)),
            guard,
        }
    }

    /// Like [`RwLock::try_read`], with a guard that owns a handle on the lock.
    ///
    /// # Errors
    /// As [`RwLock::try_read`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::RwLock;
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// assert_eq!(*l.clone().try_read_owned()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_read_owned(self: Arc<Self>) -> Result<OwnedRwLockReadGuard<T>, TryLockError> {
        match self.inner.clone().try_read_owned() {
            Ok(guard) => Ok(OwnedRwLockReadGuard {
                hold: Hold::start(Reader(self)),
                guard,
            }),
            Err(_) => Err(self.sides.shared.refused()),
        }
    }

    /// Takes the lock for writing, waiting while anyone holds it or calls queued
    /// earlier wait for it, and returns a guard that releases it when dropped.
    ///
    /// Cost: tokio's `try_write` and, when an SDK reads the metrics, one plain counter
    /// add; only a call that finds the lock taken goes on to wait.
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute locks in the order they
    /// were requested. Cancelling a call to `write` makes you lose your place
    /// in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let l = RwLock::new("routes", 1)?;
    /// *l.write().await += 1;
    /// assert_eq!(*l.read().await, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        let guard = match self.inner.try_write() {
            Ok(guard) => guard,
            Err(_) => self.sides.exclusive.waited(self.inner.write()).await,
        };
        RwLockWriteGuard {
            hold: Hold::start(Writer(&*self.sides)),
            guard,
        }
    }

    /// Takes the lock for writing if nobody holds it and no call waits for it.
    ///
    /// # Errors
    /// [`TryLockError`] when it is held or calls are queued for it (counted as a
    /// refusal).
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// let l = RwLock::new("routes", 1)?;
    /// let w = l.try_write()?;
    /// assert!(l.try_read().is_err());
    /// drop(w);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        match self.inner.try_write() {
            Ok(guard) => Ok(RwLockWriteGuard {
                hold: Hold::start(Writer(&*self.sides)),
                guard,
            }),
            Err(_) => Err(self.sides.exclusive.refused()),
        }
    }

    /// Like [`RwLock::write`], with a guard that owns a handle on the lock (`'static`,
    /// to move into a task).
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute locks in the order they
    /// were requested. Cancelling a call to `write_owned` makes you lose your
    /// place in the queue.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::RwLock;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// let mut w = l.clone().write_owned().await;
    /// tokio::spawn(async move { *w = 2 }).await?;
    /// assert_eq!(*l.read().await, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_owned(self: Arc<Self>) -> OwnedRwLockWriteGuard<T> {
        let guard = match self.inner.clone().try_write_owned() {
            Ok(guard) => guard,
            Err(_) => {
                let write = self.inner.clone().write_owned();
                self.sides.exclusive.waited(write).await
            }
        };
        OwnedRwLockWriteGuard {
            hold: Hold::start(Writer(self)),
            guard,
        }
    }

    /// Like [`RwLock::try_write`], with a guard that owns a handle on the lock.
    ///
    /// # Errors
    /// As [`RwLock::try_write`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::RwLock;
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// let w = l.clone().try_write_owned()?;
    /// assert!(l.clone().try_write_owned().is_err());
    /// drop(w);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_write_owned(self: Arc<Self>) -> Result<OwnedRwLockWriteGuard<T>, TryLockError> {
        match self.inner.clone().try_write_owned() {
            Ok(guard) => Ok(OwnedRwLockWriteGuard {
                hold: Hold::start(Writer(self)),
                guard,
            }),
            Err(_) => Err(self.sides.exclusive.refused()),
        }
    }

    /// A mutable reference to the value: the `&mut` borrow proves no guard exists, so
    /// no locking (and no telemetry) takes place.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// let mut l = RwLock::new("routes", 1)?;
    /// *l.get_mut() = 2;
    /// assert_eq!(l.into_inner(), 2);
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        only_mut(&mut self.inner).get_mut()
    }

    /// The name given at construction.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// assert_eq!(RwLock::new("routes", ())?.name(), "routes");
    /// # Ok::<(), otelconc::sync::BuildError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.sides.exclusive.name
    }
}

/// A read hold on an [`RwLock`]; released when dropped.
///
/// # Examples
/// ```
/// use otelconc::sync::RwLock;
/// let l = RwLock::new("routes", 1)?;
/// let r = l.try_read()?;
/// assert_eq!(*r, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the read hold is released as soon as the guard drops"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    // Before `guard`: a hold ends while the lock is still held.
    hold: Hold<Reader<&'a Sides>>,
    guard: tokio::sync::RwLockReadGuard<'a, T>,
}

guard_traits!(RwLockReadGuard<'a, T> => T);

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// A read guard of a part of the value, made by `f`; the read hold goes on until
    /// it drops. An associated function, so that it does not hide a method of the
    /// value.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{RwLock, RwLockReadGuard};
    /// let l = RwLock::new("pair", (1, 2))?;
    /// let second = RwLockReadGuard::map(l.try_read()?, |p| &p.1);
    /// assert_eq!(*second, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> RwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        map_guard!(this, f, RwLockReadGuard, RwLockReadGuard)
    }

    /// Like [`RwLockReadGuard::map`], when `f` may find no part to lend: then the
    /// original guard comes back.
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{RwLock, RwLockReadGuard};
    /// let l = RwLock::new("opt", Some(3))?;
    /// let three = RwLockReadGuard::try_map(l.try_read()?, |o| o.as_ref());
    /// assert_eq!(three.map(|g| *g).ok(), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<RwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        map_guard!(try this, f, RwLockReadGuard, RwLockReadGuard)
    }
}

/// A write hold on an [`RwLock`]; released when dropped.
///
/// # Examples
/// ```
/// use otelconc::sync::RwLock;
/// let l = RwLock::new("routes", 1)?;
/// *l.try_write()? = 2;
/// assert_eq!(*l.try_read()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the write hold is released as soon as the guard drops"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    hold: Hold<Writer<&'a Sides>>,
    guard: tokio::sync::RwLockWriteGuard<'a, T>,
}

guard_traits!(mut RwLockWriteGuard<'a, T> => T);

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// A write guard of a part of the value, made by `f`; the write hold goes on until
    /// it drops.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{RwLock, RwLockWriteGuard};
    /// let l = RwLock::new("pair", (1, 2))?;
    /// *RwLockWriteGuard::map(l.try_write()?, |p| &mut p.0) = 7;
    /// assert_eq!(*l.try_read()?, (7, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> RwLockMappedWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        map_guard!(this, f, RwLockWriteGuard, RwLockMappedWriteGuard)
    }

    /// Like [`RwLockWriteGuard::map`], when `f` may find no part to lend: then the
    /// original guard comes back.
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{RwLock, RwLockWriteGuard};
    /// let l = RwLock::new("opt", None::<u8>)?;
    /// assert!(RwLockWriteGuard::try_map(l.try_write()?, |o| o.as_mut()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<RwLockMappedWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        map_guard!(try this, f, RwLockWriteGuard, RwLockMappedWriteGuard)
    }

    /// Turns the write hold into a read hold without letting another writer in
    /// between; readers waiting at the head of the queue may come in. In the metrics
    /// the write hold ends and a shared acquisition begins.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::RwLock;
    /// let l = RwLock::new("routes", 1)?;
    /// let mut w = l.try_write()?;
    /// *w = 2;
    /// let r = w.downgrade();
    /// assert!(l.try_read().is_ok());
    /// assert_eq!(*r, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let RwLockWriteGuard { hold, guard } = self;
        let sides = hold.holder().0;
        // The write hold ends while the lock is still exclusive.
        drop(hold);
        let guard = guard.downgrade();
        RwLockReadGuard {
            hold: Hold::start(Reader(sides)),
            guard,
        }
    }
}

/// A write guard of a part of an [`RwLock`]'s value, made by [`RwLockWriteGuard::map`];
/// released when dropped.
///
/// # Examples
/// ```
/// use otelconc::sync::{RwLock, RwLockWriteGuard};
/// let l = RwLock::new("pair", (1, 2))?;
/// let first = RwLockWriteGuard::map(l.try_write()?, |p| &mut p.0);
/// assert_eq!(*first, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the write hold is released as soon as the guard drops"]
pub struct RwLockMappedWriteGuard<'a, T: ?Sized> {
    hold: Hold<Writer<&'a Sides>>,
    guard: tokio::sync::RwLockMappedWriteGuard<'a, T>,
}

guard_traits!(mut RwLockMappedWriteGuard<'a, T> => T);

impl<'a, T: ?Sized> RwLockMappedWriteGuard<'a, T> {
    /// Narrows the guard further, as [`RwLockWriteGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{RwLock, RwLockMappedWriteGuard, RwLockWriteGuard};
    /// let l = RwLock::new("nested", ((1, 2), 3))?;
    /// let inner = RwLockWriteGuard::map(l.try_write()?, |p| &mut p.0);
    /// assert_eq!(*RwLockMappedWriteGuard::map(inner, |p| &mut p.1), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> RwLockMappedWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        map_guard!(this, f, RwLockMappedWriteGuard, RwLockMappedWriteGuard)
    }

    /// Narrows the guard further if `f` finds a part, as [`RwLockWriteGuard::try_map`].
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use otelconc::sync::{RwLock, RwLockMappedWriteGuard, RwLockWriteGuard};
    /// let l = RwLock::new("nested", (Some(1), 3))?;
    /// let inner = RwLockWriteGuard::map(l.try_write()?, |p| &mut p.0);
    /// assert!(RwLockMappedWriteGuard::try_map(inner, |o| o.as_mut()).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<RwLockMappedWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        map_guard!(try this, f, RwLockMappedWriteGuard, RwLockMappedWriteGuard)
    }
}

/// A read hold from [`RwLock::read_owned`]: `'static`, it keeps the lock alive and is
/// released when dropped.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use otelconc::sync::RwLock;
/// let l = Arc::new(RwLock::new("routes", 1)?);
/// let r = l.clone().try_read_owned()?;
/// assert_eq!(*r, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the read hold is released as soon as the guard drops"]
pub struct OwnedRwLockReadGuard<T: ?Sized, U: ?Sized = T> {
    hold: Hold<Reader<Arc<RwLock<T>>>>,
    guard: tokio::sync::OwnedRwLockReadGuard<T, U>,
}

guard_traits!(OwnedRwLockReadGuard<T, U> => U);

impl<T: ?Sized, U: ?Sized> OwnedRwLockReadGuard<T, U> {
    /// A read guard of a part of the value, as [`RwLockReadGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockReadGuard, RwLock};
    /// let l = Arc::new(RwLock::new("pair", (1, 2))?);
    /// let second = OwnedRwLockReadGuard::map(l.clone().try_read_owned()?, |p| &p.1);
    /// assert_eq!(*second, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<V: ?Sized, F>(this: Self, f: F) -> OwnedRwLockReadGuard<T, V>
    where
        F: FnOnce(&U) -> &V,
    {
        map_guard!(this, f, OwnedRwLockReadGuard, OwnedRwLockReadGuard)
    }

    /// Like [`OwnedRwLockReadGuard::map`], when `f` may find no part to lend.
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockReadGuard, RwLock};
    /// let l = Arc::new(RwLock::new("opt", None::<u8>)?);
    /// let r = OwnedRwLockReadGuard::try_map(l.clone().try_read_owned()?, |o| o.as_ref());
    /// assert!(r.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<V: ?Sized, F>(this: Self, f: F) -> Result<OwnedRwLockReadGuard<T, V>, Self>
    where
        F: FnOnce(&U) -> Option<&V>,
    {
        map_guard!(try this, f, OwnedRwLockReadGuard, OwnedRwLockReadGuard)
    }

    /// The lock this guard reads.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockReadGuard, RwLock};
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// let r = l.clone().try_read_owned()?;
    /// assert!(Arc::ptr_eq(OwnedRwLockReadGuard::rwlock(&r), &l));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.hold.holder().0
    }
}

/// A write hold from [`RwLock::write_owned`]: `'static`, it keeps the lock alive and is
/// released when dropped.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use otelconc::sync::RwLock;
/// let l = Arc::new(RwLock::new("routes", 1)?);
/// let mut w = l.clone().try_write_owned()?;
/// *w = 2;
/// drop(w);
/// assert_eq!(*l.try_read()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the write hold is released as soon as the guard drops"]
pub struct OwnedRwLockWriteGuard<T: ?Sized> {
    hold: Hold<Writer<Arc<RwLock<T>>>>,
    guard: tokio::sync::OwnedRwLockWriteGuard<T>,
}

guard_traits!(mut OwnedRwLockWriteGuard<T> => T);

impl<T: ?Sized> OwnedRwLockWriteGuard<T> {
    /// A write guard of a part of the value, as [`RwLockWriteGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockWriteGuard, RwLock};
    /// let l = Arc::new(RwLock::new("pair", (1, 2))?);
    /// *OwnedRwLockWriteGuard::map(l.clone().try_write_owned()?, |p| &mut p.1) = 5;
    /// assert_eq!(*l.try_read()?, (1, 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> OwnedRwLockMappedWriteGuard<T, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        map_guard!(this, f, OwnedRwLockWriteGuard, OwnedRwLockMappedWriteGuard)
    }

    /// Like [`OwnedRwLockWriteGuard::map`], when `f` may find no part to lend.
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockWriteGuard, RwLock};
    /// let l = Arc::new(RwLock::new("opt", Some(1))?);
    /// let w = OwnedRwLockWriteGuard::try_map(l.clone().try_write_owned()?, |o| o.as_mut());
    /// assert!(w.is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U: ?Sized, F>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockMappedWriteGuard<T, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        map_guard!(try this, f, OwnedRwLockWriteGuard, OwnedRwLockMappedWriteGuard)
    }

    /// Turns the write hold into a read hold without letting another writer in
    /// between, as [`RwLockWriteGuard::downgrade`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::RwLock;
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// let r = l.clone().try_write_owned()?.downgrade();
    /// assert!(l.try_read().is_ok());
    /// assert_eq!(*r, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn downgrade(self) -> OwnedRwLockReadGuard<T> {
        let OwnedRwLockWriteGuard { hold, guard } = self;
        let lock = hold.holder().0.clone();
        // The write hold ends while the lock is still exclusive.
        drop(hold);
        let guard = guard.downgrade();
        OwnedRwLockReadGuard {
            hold: Hold::start(Reader(lock)),
            guard,
        }
    }

    /// The lock this guard writes.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockWriteGuard, RwLock};
    /// let l = Arc::new(RwLock::new("routes", 1)?);
    /// let w = l.clone().try_write_owned()?;
    /// assert!(Arc::ptr_eq(OwnedRwLockWriteGuard::rwlock(&w), &l));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.hold.holder().0
    }
}

/// A write guard of a part of an [`RwLock`]'s value, made by
/// [`OwnedRwLockWriteGuard::map`]: `'static`, it keeps the lock alive and is released
/// when dropped.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use otelconc::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockWriteGuard, RwLock};
/// let l = Arc::new(RwLock::new("pair", (1, 2))?);
/// let first: OwnedRwLockMappedWriteGuard<(i32, i32), i32> =
///     OwnedRwLockWriteGuard::map(l.clone().try_write_owned()?, |p| &mut p.0);
/// assert_eq!(*first, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the write hold is released as soon as the guard drops"]
pub struct OwnedRwLockMappedWriteGuard<T: ?Sized, U: ?Sized = T> {
    hold: Hold<Writer<Arc<RwLock<T>>>>,
    guard: tokio::sync::OwnedRwLockMappedWriteGuard<T, U>,
}

guard_traits!(mut OwnedRwLockMappedWriteGuard<T, U> => U);

impl<T: ?Sized, U: ?Sized> OwnedRwLockMappedWriteGuard<T, U> {
    /// Narrows the guard further, as [`RwLockWriteGuard::map`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockWriteGuard, RwLock};
    /// let l = Arc::new(RwLock::new("nested", ((1, 2), 3))?);
    /// let inner = OwnedRwLockWriteGuard::map(l.clone().try_write_owned()?, |p| &mut p.0);
    /// assert_eq!(*OwnedRwLockMappedWriteGuard::map(inner, |p| &mut p.1), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<V: ?Sized, F>(this: Self, f: F) -> OwnedRwLockMappedWriteGuard<T, V>
    where
        F: FnOnce(&mut U) -> &mut V,
    {
        map_guard!(
            this,
            f,
            OwnedRwLockMappedWriteGuard,
            OwnedRwLockMappedWriteGuard
        )
    }

    /// Narrows the guard further if `f` finds a part, as [`RwLockWriteGuard::try_map`].
    ///
    /// # Errors
    /// The guard itself, when `f` returns `None`.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockWriteGuard, RwLock};
    /// let l = Arc::new(RwLock::new("nested", (None::<u8>, 3))?);
    /// let inner = OwnedRwLockWriteGuard::map(l.clone().try_write_owned()?, |p| &mut p.0);
    /// assert!(OwnedRwLockMappedWriteGuard::try_map(inner, |o| o.as_mut()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<V: ?Sized, F>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockMappedWriteGuard<T, V>, Self>
    where
        F: FnOnce(&mut U) -> Option<&mut V>,
    {
        map_guard!(try this, f, OwnedRwLockMappedWriteGuard, OwnedRwLockMappedWriteGuard)
    }

    /// The lock this guard writes.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use otelconc::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockWriteGuard, RwLock};
    /// let l = Arc::new(RwLock::new("pair", (1, 2))?);
    /// let g = OwnedRwLockWriteGuard::map(l.clone().try_write_owned()?, |p| &mut p.0);
    /// assert!(Arc::ptr_eq(OwnedRwLockMappedWriteGuard::rwlock(&g), &l));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.hold.holder().0
    }
}
