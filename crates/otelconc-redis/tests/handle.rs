//! A queue and worker given a `Telemetry` handle send their spans through its tracer
//! provider, as their metrics go through its meter provider: nothing reaches the global
//! one. This binary installs only the global propagator (the entries' context is written
//! with it), never a global tracer provider.

mod support;

use std::sync::{Arc, Mutex};

use opentelemetry::global;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use otelconc_redis::{JobContext, Queue, Worker};
use otelconc_testkit::TestTelemetry;
use support::{Server, run_until_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_through_the_handle_and_the_handler_runs_under_the_process_span() {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let tt = TestTelemetry::new();
    let server = Server::start();
    let q = Queue::<u64>::connect(&server.url(), "h")
        .await
        .unwrap()
        .with_telemetry(tt.telemetry());

    let root = tt.root("request");
    let one = q.submit_with_context(&1, &root).await.unwrap();
    root.span().end();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in_job = seen.clone();
    let report = run_until_empty(
        Worker::builder(q.clone(), move |_n: u64, _cx: JobContext| {
            let sc = opentelemetry::Context::current()
                .span()
                .span_context()
                .clone();
            seen_in_job.lock().unwrap().push(sc);
            async { Ok::<(), String>(()) }
        }),
        &q,
    )
    .await;
    assert_eq!(report.completed, 1, "{report:?}");

    let sends = tt.spans_named("send h");
    assert_eq!(
        sends.len(),
        1,
        "the send span reached the handle's provider"
    );
    assert_eq!(sends[0].span_kind, SpanKind::Producer);
    let processes = tt.spans_named("process h");
    assert_eq!(
        processes.len(),
        1,
        "the process span reached the handle's provider"
    );
    let p = &processes[0];
    assert_eq!(p.span_kind, SpanKind::Consumer);
    assert_eq!(p.parent_span_id, sends[0].span_context.span_id());
    assert!(
        p.attributes
            .iter()
            .any(|kv| kv.key.as_str() == "messaging.message.id" && kv.value.to_string() == one)
    );
    // Two spans per job: the process span is the job's span, the pool adds none.
    assert!(tt.spans_named("otelconc.pool.job").is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].span_id(),
        p.span_context.span_id(),
        "the handler runs under the process span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_with_span_policy_always_gives_an_entry_outside_any_trace_a_process_span() {
    use opentelemetry::trace::SpanId;
    use otelconc::telemetry::SpanPolicy;
    use redis::AsyncCommands;

    let tt = TestTelemetry::new();
    let server = Server::start();
    let q = Queue::<u64>::connect(&server.url(), "always")
        .await
        .unwrap()
        .with_telemetry(tt.telemetry());
    // An entry from a producer with no SDK: no trace context at all.
    let mut c = server.conn().await;
    let bare: String = c.xadd(q.stream_key(), "*", &[("job", "7")]).await.unwrap();

    let report = run_until_empty(
        Worker::builder(q.clone(), |_n: u64, _cx: JobContext| async {
            Ok::<(), String>(())
        })
        .telemetry(tt.telemetry().with_span_policy(SpanPolicy::Always)),
        &q,
    )
    .await;
    assert_eq!(report.completed, 1, "{report:?}");

    let processes = tt.spans_named("process always");
    assert_eq!(
        processes.len(),
        1,
        "SpanPolicy::Always asks for a span for every delivery"
    );
    let p = &processes[0];
    assert_eq!(
        p.parent_span_id,
        SpanId::INVALID,
        "a new root: no context came"
    );
    assert!(p.links.links.is_empty(), "nothing to link to");
    let id = p
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "messaging.message.id")
        .map(|kv| kv.value.to_string());
    assert_eq!(id.as_deref(), Some(bare.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_delivery_says_why_on_its_process_span() {
    use opentelemetry::trace::Status;

    global::set_text_map_propagator(TraceContextPropagator::new());
    let tt = TestTelemetry::new();
    let server = Server::start();
    let q = Queue::<u64>::connect(&server.url(), "fails")
        .await
        .unwrap()
        .with_telemetry(tt.telemetry());
    let root = tt.root("request");
    q.submit_with_context(&1, &root).await.unwrap();
    root.span().end();

    let report = run_until_empty(
        Worker::builder(q.clone(), |_n: u64, _cx: JobContext| async {
            Err::<(), String>("no".into())
        })
        .max_deliveries(1),
        &q,
    )
    .await;
    assert_eq!(report.dead_lettered, 1, "{report:?}");

    let processes = tt.spans_named("process fails");
    assert_eq!(processes.len(), 1, "{processes:?}");
    let p = &processes[0];
    let attr = |key: &str| {
        p.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("error.type").as_deref(), Some("job"));
    assert_eq!(attr("otelconc.job.dead_lettered").as_deref(), Some("true"));
    assert_eq!(p.status, Status::error("no"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_dead_lettered_before_it_runs_gets_no_process_span() {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let tt = TestTelemetry::new();
    let server = Server::start();
    // A producer of another job type, inside a sampled trace.
    let wrong = Queue::<String>::connect(&server.url(), "undecodable")
        .await
        .unwrap()
        .with_telemetry(tt.telemetry());
    let root = tt.root("request");
    wrong
        .submit_with_context(&"not a number".to_string(), &root)
        .await
        .unwrap();
    root.span().end();
    let q = Queue::<u64>::connect(&server.url(), "undecodable")
        .await
        .unwrap()
        .with_telemetry(tt.telemetry());
    let report = run_until_empty(
        Worker::builder(q.clone(), |_n: u64, _cx: JobContext| async {
            Ok::<(), String>(())
        }),
        &q,
    )
    .await;
    assert_eq!(report.decode_errors, 1, "{report:?}");
    assert_eq!(tt.spans_named("send undecodable").len(), 1);
    assert!(tt.spans_named("process undecodable").is_empty());
}
