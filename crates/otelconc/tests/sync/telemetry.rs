//! The locks' metrics, oldest-hold gauge and wait spans, as an exporter receives them.

use std::sync::Arc;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Status, TraceContextExt};
use otelconc::sync::{Mutex, RwLock};
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_OUTCOME};
use otelconc_testkit::{SpanData, TestTelemetry, attr};
use tokio::sync::oneshot;

use crate::{settle, side};

#[tokio::test]
async fn acquisitions_refusals_contention_and_waiters_by_mode() {
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("db", 0)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let l = Arc::new(
        RwLock::builder("cfg", 0)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let held = m.lock().await; // no wait
    assert!(m.try_lock().is_err()); // refused
    let w = l.write().await;
    assert!(l.try_read().is_err());
    assert!(l.try_write().is_err());
    assert!(l.clone().try_read_owned().is_err());

    // Waiters: one for the mutex, one reader, one writer (queued behind it).
    let waiter = tokio::spawn({
        let m = m.clone();
        async move { *m.lock().await += 1 }
    });
    let reader = tokio::spawn({
        let l = l.clone();
        async move { *l.read().await }
    });
    settle().await;
    let writer = tokio::spawn({
        let l = l.clone();
        async move { *l.write().await += 1 }
    });
    let cancelled = tokio::spawn({
        let m = m.clone();
        async move { drop(m.lock().await) }
    });
    settle().await;
    let metrics = tt.metrics();
    let waiters = |name, mode| metrics.value("otelconc.lock.waiter.count", &side(name, mode, None));
    assert_eq!(waiters("db", "exclusive"), Some(2.0));
    assert_eq!(waiters("cfg", "shared"), Some(1.0));
    assert_eq!(waiters("cfg", "exclusive"), Some(1.0));

    cancelled.abort();
    assert!(cancelled.await.is_err());
    drop(held);
    drop(w);
    waiter.await.expect("no panic");
    assert_eq!(reader.await.expect("no panic"), 0);
    writer.await.expect("no panic");

    let metrics = tt.metrics();
    let count = |name, mode, outcome| {
        metrics.value(
            "otelconc.lock.acquisitions",
            &side(name, mode, Some(outcome)),
        )
    };
    assert_eq!(count("db", "exclusive", "ok"), Some(2.0));
    assert_eq!(count("db", "exclusive", "refused"), Some(1.0));
    assert_eq!(count("db", "exclusive", "cancelled"), Some(1.0));
    assert_eq!(count("cfg", "exclusive", "ok"), Some(2.0));
    assert_eq!(count("cfg", "exclusive", "refused"), Some(1.0));
    assert_eq!(count("cfg", "exclusive", "cancelled"), Some(0.0));
    assert_eq!(count("cfg", "shared", "ok"), Some(1.0));
    assert_eq!(count("cfg", "shared", "refused"), Some(2.0));
    // Refusals carry error.type; nothing else does.
    let mut refused = side("db", "exclusive", Some("refused"));
    refused.push(attr(ATTR_ERROR_TYPE, "would_block"));
    assert_eq!(
        metrics.value("otelconc.lock.acquisitions", &refused),
        Some(1.0)
    );
    let with_error: Vec<_> = metrics
        .attribute_sets("otelconc.lock.acquisitions")
        .into_iter()
        .filter(|a| a.iter().any(|kv| kv.key.as_str() == ATTR_ERROR_TYPE))
        .collect();
    assert!(
        with_error
            .iter()
            .all(|a| a.contains(&attr(ATTR_OUTCOME, "refused"))),
        "{with_error:?}"
    );
    let contended = |name, mode| metrics.value("otelconc.lock.contended", &side(name, mode, None));
    assert_eq!(contended("db", "exclusive"), Some(2.0));
    assert_eq!(contended("cfg", "exclusive"), Some(1.0));
    assert_eq!(contended("cfg", "shared"), Some(1.0));
    for (name, mode) in [("db", "exclusive"), ("cfg", "exclusive"), ("cfg", "shared")] {
        assert_eq!(
            metrics.value("otelconc.lock.waiter.count", &side(name, mode, None)),
            Some(0.0)
        );
    }
    tt.assert_all_cataloged();
    drop((m, l));
    // Dropped locks stop reporting.
    assert_eq!(tt.metrics().value("otelconc.lock.acquisitions", &[]), None);
}

/// Collected twice while a guard is held across an `.await` (the gauge reads the real
/// clock at collection; tokio's clock plays no part): the first collection marks the
/// hold, the second reports it older than 0; once released, 0 again.
#[tokio::test]
async fn a_guard_held_across_an_await_shows_in_the_oldest_hold_gauge() {
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("slow", ())
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let l = Arc::new(
        RwLock::builder("slow-rw", ())
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let age = |name, mode| {
        tt.metrics()
            .value("otelconc.lock.hold.oldest.age", &side(name, mode, None))
            .expect("reported")
    };
    // Nothing held: 0 at every collection.
    assert_eq!(age("slow", "exclusive"), 0.0);
    assert_eq!(age("slow", "exclusive"), 0.0);

    let (release, released) = oneshot::channel::<()>();
    let holder = tokio::spawn({
        let (m, l) = (m.clone(), l.clone());
        async move {
            let _g = m.lock().await;
            let _r = l.read().await;
            let _ = released.await; // held across an .await
        }
    });
    settle().await;
    let metrics = tt.metrics();
    let first = |name, mode| {
        metrics
            .value("otelconc.lock.hold.oldest.age", &side(name, mode, None))
            .expect("reported")
    };
    assert_eq!(first("slow", "exclusive"), 0.0, "first seen now");
    assert_eq!(first("slow-rw", "shared"), 0.0, "first seen now");
    assert!(age("slow", "exclusive") > 0.0);
    assert!(age("slow-rw", "shared") > 0.0);
    assert_eq!(age("slow-rw", "exclusive"), 0.0, "no writer");

    release.send(()).expect("holder waits");
    holder.await.expect("no panic");
    assert_eq!(age("slow", "exclusive"), 0.0);
    assert_eq!(age("slow-rw", "shared"), 0.0);

    // A write guard across an await, then a later one: only the current hold counts.
    let w = l.write().await;
    let _ = age("slow-rw", "exclusive");
    assert!(age("slow-rw", "exclusive") > 0.0);
    drop(w);
    let w = l.write().await;
    assert_eq!(
        age("slow-rw", "exclusive"),
        0.0,
        "a new hold, first seen now"
    );
    drop(w);
    assert_eq!(age("slow-rw", "exclusive"), 0.0);
}

/// 1 in 16 holds and 1 in 16 waits is timed: every 16th, never the first.
#[tokio::test]
async fn hold_and_wait_durations_are_a_fixed_1_in_16_sample() {
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("sampled", ())
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let l = RwLock::builder("sampled-rw", ())
        .telemetry(tt.telemetry())
        .build()
        .expect("valid");
    let hist = |name: &str, mode, outcome: (&'static str, Option<&'static str>)| {
        tt.metrics()
            .histogram(name, &side(mode, outcome.0, outcome.1))
            .map_or(0, |(count, _)| count)
    };
    drop(m.lock().await);
    assert_eq!(
        hist(
            "otelconc.lock.hold.duration",
            "sampled",
            ("exclusive", None)
        ),
        0,
        "the first is not timed"
    );
    for _ in 1..32 {
        drop(m.lock().await);
        drop(l.read().await);
    }
    drop(l.read().await);
    assert_eq!(
        hist(
            "otelconc.lock.hold.duration",
            "sampled",
            ("exclusive", None)
        ),
        2
    );
    assert_eq!(
        hist(
            "otelconc.lock.hold.duration",
            "sampled-rw",
            ("shared", None)
        ),
        2
    );
    assert_eq!(
        hist(
            "otelconc.lock.hold.duration",
            "sampled-rw",
            ("exclusive", None)
        ),
        0
    );

    for _ in 0..16 {
        let held = m.lock().await;
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { drop(m.lock().await) }
        });
        settle().await;
        drop(held);
        waiter.await.expect("no panic");
    }
    assert_eq!(
        hist(
            "otelconc.lock.wait.duration",
            "sampled",
            ("exclusive", Some("ok"))
        ),
        1
    );
}

fn outcome(s: &SpanData) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == ATTR_OUTCOME)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn wait_spans_only_inside_a_sampled_trace_as_children_of_the_caller() {
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("traced", ())
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let root = tt.root("caller");
    let root_id = root.span().span_context().span_id();

    // No wait inside the trace: no span.
    let held = m.lock().with_context(root.clone()).await;
    // Waits outside any trace and under an unsampled parent: no span.
    let outside = tokio::spawn({
        let m = m.clone();
        async move { drop(m.lock().await) }
    });
    let unsampled = tokio::spawn({
        let m = m.clone();
        async move {
            drop(
                m.lock()
                    .with_context(TestTelemetry::unsampled_parent())
                    .await,
            )
        }
    });
    // A wait inside the trace: a span, child of the caller.
    let inside = tokio::spawn({
        let (m, root) = (m.clone(), root.clone());
        async move { drop(m.lock().with_context(root).await) }
    });
    // A cancelled wait inside the trace: its span ends too, cancelled, not an error.
    let cancelled = tokio::spawn({
        let (m, root) = (m.clone(), root.clone());
        async move { drop(m.lock().with_context(root).await) }
    });
    settle().await;
    cancelled.abort();
    assert!(cancelled.await.is_err());
    drop(held);
    for t in [outside, unsampled, inside] {
        t.await.expect("no panic");
    }
    root.span().end();

    let spans = tt.spans_named("otelconc.lock.wait");
    assert_eq!(spans.len(), 2, "{spans:?}");
    let mut outcomes: Vec<_> = spans.iter().filter_map(outcome).collect();
    outcomes.sort();
    assert_eq!(outcomes, vec!["cancelled", "ok"]);
    for s in &spans {
        assert_eq!(s.parent_span_id, root_id);
        assert_eq!(s.status, Status::Unset, "{s:?}");
        assert!(s.attributes.iter().any(
            |kv| kv.key.as_str() == "otelconc.lock.mode" && kv.value.to_string() == "exclusive"
        ));
    }
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn rwlock_wait_spans_carry_the_mode() {
    let tt = TestTelemetry::new();
    let l = Arc::new(
        RwLock::builder("traced-rw", ())
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let root = tt.root("caller");
    let w = l.write().await;
    let reader = tokio::spawn({
        let (l, root) = (l.clone(), root.clone());
        async move { drop(l.read().with_context(root).await) }
    });
    settle().await;
    drop(w);
    reader.await.expect("no panic");
    let r = l.read().await;
    let writer = tokio::spawn({
        let (l, root) = (l.clone(), root.clone());
        async move { drop(l.write().with_context(root).await) }
    });
    settle().await;
    drop(r);
    writer.await.expect("no panic");
    let modes: Vec<String> = tt
        .spans_named("otelconc.lock.wait")
        .iter()
        .filter_map(|s| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "otelconc.lock.mode")
                .map(|kv| kv.value.to_string())
        })
        .collect();
    assert_eq!(modes, vec!["shared", "exclusive"]);
}

/// A write guard's downgrade counts as a shared acquisition (the docs' table), and it
/// ends the exclusive hold: once the read guard drops too, neither side reports a hold
/// still going.
#[tokio::test]
async fn a_downgrade_counts_as_a_shared_acquisition_and_ends_the_exclusive_hold() {
    let tt = TestTelemetry::new();
    let l = Arc::new(
        RwLock::builder("cfg", 0)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let r = l.write().await.downgrade();
    assert!(l.try_read().is_ok(), "shared now");
    let metrics = tt.metrics();
    let ok = |mode| metrics.value("otelconc.lock.acquisitions", &side("cfg", mode, Some("ok")));
    assert_eq!(ok("exclusive"), Some(1.0));
    assert_eq!(ok("shared"), Some(2.0), "the downgrade and the try_read");
    drop(r);
    let r = l.clone().write_owned().await.downgrade();
    drop(r);
    for _ in 0..2 {
        let metrics = tt.metrics();
        for mode in ["exclusive", "shared"] {
            assert_eq!(
                metrics.value("otelconc.lock.hold.oldest.age", &side("cfg", mode, None)),
                Some(0.0),
                "{mode}"
            );
        }
    }
}
