//! The context work carries through fan-out and fan-in. Under an unsampled parent (what
//! most requests see under a ratio sampler) no span of otelconc's is built, yet every
//! item, worker and merged item runs inside the parent's trace with its baggage: spans
//! the work starts are dropped with their parent by a parent-based sampler (lost, they
//! would be exported roots), and its logs carry the parent's trace id.

use std::sync::{Arc, Mutex};

use futures::{StreamExt, stream};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceId;
use otelconc::fan::{FanIn, FanOut, Traced};
use otelconc_testkit::{BAGGAGE_VALUE, TestTelemetry, UNSAMPLED_TRACE_ID, seen_context};

/// What work saw of its context: trace id and baggage value.
type Seen = Arc<Mutex<Vec<(Option<TraceId>, Option<String>)>>>;

fn record(seen: &Seen) {
    seen.lock().unwrap().push(seen_context());
}

fn unsampled_seen() -> (Option<TraceId>, Option<String>) {
    (
        Some(TraceId::from(UNSAMPLED_TRACE_ID)),
        Some(BAGGAGE_VALUE.to_owned()),
    )
}

#[tokio::test]
async fn items_and_workers_run_in_the_unsampled_callers_trace_and_no_span_is_exported() {
    let tt = Arc::new(TestTelemetry::parent_based());
    let fan = FanOut::builder("ctx").telemetry(tt.telemetry()).build();
    let seen = Seen::default();
    // The items are handed over under the parent, and run where the stream is polled,
    // outside it: they get the parent from the call, not from the poller.
    let (t, s) = (tt.clone(), seen.clone());
    let items = {
        let _parent = TestTelemetry::unsampled_parent().attach();
        fan.items_unordered(0..4u32, 2, move |i| {
            record(&s); // building the item's future
            let (t, s) = (t.clone(), s.clone());
            async move {
                t.start_user_span("item-work");
                tokio::task::yield_now().await;
                record(&s);
                Ok::<_, String>(i)
            }
        })
        .unwrap()
    };
    assert_eq!(items.count().await, 4);

    // The workers of `fan_out` run in tasks of their own.
    let (t, s) = (tt.clone(), seen.clone());
    let out = fan
        .run((), 3, move |(), i, _| {
            let (t, s) = (t.clone(), s.clone());
            async move {
                t.start_user_span("worker-work");
                record(&s);
                Ok::<_, String>(i)
            }
        })
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    assert_eq!(out, [0, 1, 2]);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4 * 2 + 3);
    assert!(seen.iter().all(|s| *s == unsampled_seen()), "{seen:?}");
    assert!(tt.spans().is_empty(), "{:#?}", tt.spans());
}

#[tokio::test]
async fn a_fan_in_consumer_works_in_each_unsampled_producers_trace_and_no_span_is_exported() {
    let tt = TestTelemetry::parent_based();
    let (traced, plain) = {
        let _parent = TestTelemetry::unsampled_parent().attach();
        (
            stream::iter(vec![Traced::new(1), Traced::new(2)]),
            FanIn::builder("merge").input("plain", stream::iter(vec![3, 4])),
        )
    };
    let mut out = plain
        .telemetry(tt.telemetry())
        .traced_input("traced", traced)
        .input("untraced", stream::iter(vec![5]))
        .build()
        .unwrap();
    let mut carried = 0;
    while let Some(m) = out.next().await {
        if m.input() == 2 {
            // An input added with no context: its items carry nothing.
            assert!(m.producer_context().is_none());
            assert!(m.context().is_none());
            continue;
        }
        assert!(!m.has_span());
        let _cx = m
            .context()
            .expect("the producer's context")
            .clone()
            .attach();
        tt.start_user_span("consumer-work");
        assert_eq!(seen_context(), unsampled_seen());
        carried += 1;
    }
    assert_eq!(carried, 4);
    assert!(tt.spans().is_empty(), "{:#?}", tt.spans());
}

/// A `tracing` event written in a fan-out item, and in a fan-in consumer under the
/// item's context, carries the trace id of the `tracing` span that handed it over,
/// whose OpenTelemetry parent was not sampled.
#[cfg(feature = "tracing")]
#[tokio::test]
async fn items_log_in_the_unsampled_trace_of_the_tracing_span_that_handed_them_over() {
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let tt = TestTelemetry::parent_based();
    let (dispatch, events) = otelconc_testkit::log_capture(&tt);
    let _dispatch = tracing::dispatcher::set_default(&dispatch);
    let fan = FanOut::builder("logged").telemetry(tt.telemetry()).build();
    let producer = tracing::info_span!("producer");
    producer
        .set_parent(TestTelemetry::unsampled_parent())
        .expect("the span is bridged");
    let (items, merged) = producer.in_scope(|| {
        let items = fan
            .items(0..2u32, 2, |i| async move {
                tracing::info!("item ran");
                Ok::<_, String>(i)
            })
            .unwrap();
        (items, Traced::new(7))
    });
    assert_eq!(items.count().await, 2);
    let mut out = FanIn::builder("logged")
        .telemetry(tt.telemetry())
        .traced_input("a", stream::iter([merged]))
        .build()
        .unwrap();
    let m = out.next().await.unwrap();
    {
        let _cx = m.context().expect("carried").clone().attach();
        tracing::info!("consumer ran");
    }
    let logged = [
        events.with_message("item ran"),
        events.with_message("consumer ran"),
    ]
    .concat();
    assert_eq!(logged.len(), 3);
    for e in logged {
        assert_eq!(e.trace_id, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
        assert_eq!(e.baggage.as_deref(), Some(BAGGAGE_VALUE));
    }
    assert!(tt.spans().is_empty(), "{:#?}", tt.spans());
}
