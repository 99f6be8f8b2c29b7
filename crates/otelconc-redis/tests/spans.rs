//! One trace per job: the `send` span in the submitter's trace, the `process` span its
//! child (and linked to it). This binary installs the global tracer provider and
//! propagator (a queue connected without a handle uses the globals), so it holds the
//! only test that does.

mod support;

use opentelemetry::global;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use otelconc_redis::{JobContext, Queue, Worker};
use otelconc_testkit::TestTelemetry;
use redis::AsyncCommands;
use support::{Server, run_until_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_one_trace_from_submit_to_process_and_unsampled_entries_get_no_span() {
    // Always-on sampling: every span the code starts is exported.
    let tt = TestTelemetry::new();
    global::set_tracer_provider(tt.tracer_provider().clone());
    global::set_text_map_propagator(TraceContextPropagator::new());
    let server = Server::start();
    let q = Queue::<u64>::connect(&server.url(), "s").await.unwrap();

    let root = tt.root("request");
    let one = q.submit_with_context(&1, &root).await.unwrap();
    let batch = {
        let _guard = root.clone().attach();
        q.submit_many(&[2, 3]).await.unwrap()
    };
    root.span().end();
    // Entries from producers with no SDK (no context) or outside a sampled trace (an
    // unsampled context): they run, without a span, though this consumer's sampler
    // would keep any span.
    let mut c = server.conn().await;
    let unsampled: String = c
        .xadd(
            q.stream_key(),
            "*",
            &[
                ("job", "4"),
                (
                    "traceparent",
                    "00-0123456789abcdef0123456789abcdef-0000000000005eed-00",
                ),
            ],
        )
        .await
        .unwrap();
    let bare: String = c.xadd(q.stream_key(), "*", &[("job", "5")]).await.unwrap();

    let report = run_until_empty(
        Worker::builder(q.clone(), |_n: u64, _cx: JobContext| async {
            Ok::<(), String>(())
        }),
        &q,
    )
    .await;
    assert_eq!(report.completed, 5, "{report:?}");

    let root_span = &tt.spans_named("request")[0];
    let trace = root_span.span_context.trace_id();
    let sends = tt.spans_named("send s");
    // The single submit and the batch, in the root's trace.
    assert_eq!(sends.len(), 2, "{sends:?}");
    for s in &sends {
        assert_eq!(s.span_kind, SpanKind::Producer);
        assert_eq!(s.span_context.trace_id(), trace);
        assert_eq!(s.parent_span_id, root_span.span_context.span_id());
    }
    let processes = tt.spans_named("process s");
    assert_eq!(processes.len(), 3, "one per sampled job: {processes:?}");
    for p in &processes {
        assert_eq!(p.span_kind, SpanKind::Consumer);
        assert_eq!(p.span_context.trace_id(), trace);
        let id = p
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "messaging.message.id")
            .map(|kv| kv.value.to_string())
            .unwrap();
        assert!(id == one || batch.contains(&id), "{id}");
        assert!(id != unsampled && id != bare, "{id}");
        let send = sends
            .iter()
            .find(|s| s.span_context.span_id() == p.parent_span_id)
            .expect("the process span's parent is a send span");
        assert_eq!(
            p.links.links[0].span_context.span_id(),
            send.span_context.span_id(),
            "and it links to it"
        );
    }
    // Two spans per job: the pool builds no `otelconc.pool.job` span under `process`.
    assert!(tt.spans_named("otelconc.pool.job").is_empty());
}
