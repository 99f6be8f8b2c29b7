//! The context an item carries through the stages. Under an unsampled parent (what most
//! requests see under a ratio sampler) no stage span is built, yet every stage, and the
//! input stream of a run, runs inside the parent's trace with its baggage: spans the
//! stage code starts are dropped with their parent by a parent-based sampler (lost, they
//! would be exported roots), and its logs carry the parent's trace id.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, stream};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceId;
use opentelemetry::{Context, KeyValue};
use otelconc::pipeline::Pipeline;
use otelconc_testkit::{
    BAGGAGE_KEY, BAGGAGE_VALUE, TestTelemetry, UNSAMPLED_TRACE_ID, seen_context,
};

/// What code saw of its context: trace id and baggage value.
type Seen = Arc<Mutex<Vec<(Option<TraceId>, Option<String>)>>>;

fn record(seen: &Seen) {
    seen.lock().unwrap().push(seen_context());
}

/// Two stages that each record their context, start a span of their own, and record
/// their context again after an await (a later poll).
fn recording(
    tt: &Arc<TestTelemetry>,
    seen: &Seen,
    ordered: bool,
) -> Pipeline<u64, u64, Infallible> {
    let stage = |tt: Arc<TestTelemetry>, seen: Seen| {
        move |n: u64| {
            let (tt, seen) = (tt.clone(), seen.clone());
            async move {
                record(&seen);
                tt.start_user_span("stage-work");
                tokio::task::yield_now().await;
                record(&seen);
                Ok::<_, Infallible>(n)
            }
        }
    };
    Pipeline::builder("carried")
        .stage("a", 2, 2, stage(tt.clone(), seen.clone()))
        .stage("b", 1, 2, stage(tt.clone(), seen.clone()))
        .ordered(ordered)
        .telemetry(tt.telemetry())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_unsampled_parent_reaches_every_stage_and_the_input_and_no_span_is_exported() {
    let tt = Arc::new(TestTelemetry::parent_based());
    let want = (
        Some(TraceId::from(UNSAMPLED_TRACE_ID)),
        Some(BAGGAGE_VALUE.to_owned()),
    );
    for ordered in [false, true] {
        let seen = Seen::default();
        let pipeline = recording(&tt, &seen, ordered);

        // Fed by `run`: the input stream is pulled under the caller's context too.
        let (t, s) = (tt.clone(), seen.clone());
        let input = stream::iter(0..4_u64).map(move |n| {
            record(&s);
            t.start_user_span("input-work");
            n
        });
        let n = async { pipeline.run(input).count().await }
            .with_context(TestTelemetry::unsampled_parent())
            .await;
        assert_eq!(n, 4);

        // Fed through a sender.
        let (tx, out) = pipeline.start();
        for i in 0..4 {
            tx.send(i)
                .with_context(TestTelemetry::unsampled_parent())
                .await
                .unwrap();
        }
        drop(tx);
        assert_eq!(out.count().await, 4);

        let seen = seen.lock().unwrap().clone();
        // 4 reads of the input, 2 stages x 2 reads x 8 items.
        assert_eq!(seen.len(), 4 + 2 * 2 * 8, "ordered: {ordered}");
        assert!(
            seen.iter().all(|s| *s == want),
            "ordered: {ordered}: {seen:?}"
        );
    }
    assert!(
        tt.spans().is_empty(),
        "a span of the stage code lost its parent: {:#?}",
        tt.spans()
    );
}

#[tokio::test]
async fn baggage_alone_is_carried_to_every_stage() {
    let tt = Arc::new(TestTelemetry::parent_based());
    let seen = Seen::default();
    let pipeline = recording(&tt, &seen, false);
    let baggage = Context::new().with_baggage([KeyValue::new(BAGGAGE_KEY, BAGGAGE_VALUE)]);
    let (tx, out) = pipeline.start();
    tx.send(1).with_context(baggage).await.unwrap();
    drop(tx);
    assert_eq!(out.count().await, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|s| *s == (None, Some(BAGGAGE_VALUE.to_owned()))),
        "{seen:?}"
    );
}

/// A `tracing` event written in a stage carries the trace id of the `tracing` span that
/// fed the item, whose OpenTelemetry parent was not sampled.
#[cfg(feature = "tracing")]
#[tokio::test]
async fn a_stage_logs_in_the_unsampled_trace_of_the_tracing_span_that_fed_it() {
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let tt = TestTelemetry::parent_based();
    let (dispatch, events) = otelconc_testkit::log_capture(&tt);
    let _dispatch = tracing::dispatcher::set_default(&dispatch);
    let pipeline = Pipeline::builder("logged")
        .stage("log", 1, 2, |n: u64| async move {
            tracing::info!("stage saw an item");
            Ok::<_, Infallible>(n)
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let producer = tracing::info_span!("producer");
    producer
        .set_parent(TestTelemetry::unsampled_parent())
        .expect("the span is bridged");
    let out = producer.in_scope(|| pipeline.run(stream::iter(0..3_u64)));
    assert_eq!(out.count().await, 3);
    let logged = events.with_message("stage saw an item");
    assert_eq!(logged.len(), 3);
    for e in logged {
        assert_eq!(e.trace_id, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
        assert_eq!(e.baggage.as_deref(), Some(BAGGAGE_VALUE));
    }
    assert!(tt.spans().is_empty(), "{:#?}", tt.spans());
}
