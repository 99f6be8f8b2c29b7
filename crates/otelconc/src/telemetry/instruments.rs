//! Synchronous instruments with their attributes resolved once per primitive instance.
//!
//! With the `bound-instruments` feature the SDK's bound instruments are used, so a
//! measurement skips the attribute lookup entirely. Without it the attributes are kept
//! in one shared slice and passed as is: no allocation per measurement either way.

use std::fmt;
#[cfg(not(feature = "bound-instruments"))]
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics;

macro_rules! bound_instrument {
    ($(#[$m:meta])* $name:ident, $inner:ident, $bound:ident, $t:ty, $method:ident) => {
        $(#[$m])*
        #[derive(Clone)]
        pub(crate) struct $name {
            #[cfg(feature = "bound-instruments")]
            bound: metrics::$bound<$t>,
            #[cfg(not(feature = "bound-instruments"))]
            unbound: (metrics::$inner<$t>, Arc<[KeyValue]>),
        }

        impl $name {
            pub(crate) fn new(inner: metrics::$inner<$t>, attrs: &[KeyValue]) -> Self {
                #[cfg(feature = "bound-instruments")]
                {
                    Self { bound: inner.bind(attrs) }
                }
                #[cfg(not(feature = "bound-instruments"))]
                {
                    Self { unbound: (inner, Arc::from(attrs)) }
                }
            }

            #[inline]
            pub(crate) fn $method(&self, value: $t) {
                #[cfg(feature = "bound-instruments")]
                self.bound.$method(value);
                #[cfg(not(feature = "bound-instruments"))]
                self.unbound.0.$method(value, &self.unbound.1);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($name))
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
