//! Synchronous instruments with their attributes resolved once per primitive instance.
//!
//! A [`Telemetry`](super::Telemetry) handle that may bind (see
//! [`Telemetry::with_bound_instruments`](super::Telemetry::with_bound_instruments)) keeps
//! the SDK's bound instruments, so a measurement skips the attribute lookup entirely.
//! Otherwise the attributes are kept in one shared slice and passed as is: no allocation
//! per measurement either way. Which of the two an instrument is was decided when it was
//! built; recording is one predictable branch.

use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics;

macro_rules! bound_instrument {
    ($(#[$m:meta])* $name:ident, $inner:ident, $bound:ident, $t:ty, $method:ident) => {
        $(#[$m])*
        #[derive(Clone)]
        pub(crate) enum $name {
            /// Bound by the SDK: the attributes were resolved once, at bind time.
            Bound(metrics::$bound<$t>),
            /// The instrument and its attributes, passed with every measurement.
            Unbound(metrics::$inner<$t>, Arc<[KeyValue]>),
        }

        impl $name {
            /// `inner` with `attrs`, bound when `bind` says the meter provider
            /// records through bound instruments.
            pub(crate) fn new(inner: metrics::$inner<$t>, attrs: &[KeyValue], bind: bool) -> Self {
                if bind {
                    Self::Bound(inner.bind(attrs))
                } else {
                    Self::Unbound(inner, Arc::from(attrs))
                }
            }

            #[inline]
            pub(crate) fn $method(&self, value: $t) {
                match self {
                    Self::Bound(b) => b.$method(value),
                    Self::Unbound(i, attrs) => i.$method(value, attrs),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let how = match self {
                    Self::Bound(_) => "bound",
                    Self::Unbound(..) => "unbound",
                };
                write!(f, "{}({how})", stringify!($name))
            }
        }
    };
}

bound_instrument!(
    /// A `u64` counter with fixed attributes.
    Counter, Counter, BoundCounter, u64, add
);
bound_instrument!(
    /// An `i64` up-down counter with fixed attributes.
    UpDownCounter, UpDownCounter, BoundUpDownCounter, i64, add
);
bound_instrument!(
    /// An `f64` histogram with fixed attributes.
    Histogram, Histogram, BoundHistogram, f64, record
);
