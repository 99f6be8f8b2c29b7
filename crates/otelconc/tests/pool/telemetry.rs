//! `otelconc::pool` telemetry, as an in-memory exporter receives it.

use std::time::{Duration, SystemTime};

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Status, TraceContextExt};
use otelconc::pool::{JobError, Named, WorkerPool, with_token};
use otelconc::telemetry::names::{
    ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, ATTR_WORKER_STATE,
};
use otelconc_testkit::{SpanData, TestTelemetry, attr};

fn attr_of<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    attr_of(span, key).map(|v| v.as_str().into_owned())
}

/// The queue wait on a job's span is on the span's own timeline: the span starts when
/// the wait ends, so its start minus the wait is the instant the job was submitted, even
/// when tokio's clock was paused and moved on while the job was queued.
#[tokio::test(start_paused = true)]
async fn a_job_spans_queue_wait_ends_at_its_start() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("tel")
        .workers(1)
        .queue_capacity(8)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    // The only worker is busy until `release` fires: the traced job waits in the queue.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let busy = p
        .submit_handle(|| async move {
            let _ = held.await;
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let root = tt.root("submitter");
    let before = SystemTime::now();
    let traced = p
        .submit_handle(|| async { 1 })
        .with_context(root.clone())
        .await
        .unwrap();
    let after = SystemTime::now();
    tokio::time::advance(Duration::from_secs(60)).await;
    release.send(()).unwrap();
    busy.await.unwrap();
    assert_eq!(traced.await, Ok(1));
    let _ = p.shutdown(Duration::from_secs(5)).await;

    let jobs = tt.spans_named("otelconc.pool.job");
    assert_eq!(jobs.len(), 1, "only the traced job has a span");
    let Some(opentelemetry::Value::F64(waited)) = attr_of(&jobs[0], ATTR_QUEUE_WAIT) else {
        panic!("no queue wait on {:?}", jobs[0]);
    };
    let sent = jobs[0].start_time - Duration::from_secs_f64(*waited);
    // The f64 attribute rounds the wait to well under a microsecond.
    let slack = Duration::from_micros(1);
    assert!(
        before - slack <= sent && sent <= after + slack,
        "submitted at {sent:?}, not within the submit ({before:?} to {after:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn job_spans_are_children_of_the_submitter_and_counters_match_the_report() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("tel")
        .workers(2)
        .queue_capacity(8)
        .job_timeout(Duration::from_secs(1))
        .timing_sample(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();

    let root = tt.root("submitter");
    let (ok, panicked, timed_out) = async {
        let ok = p
            .submit_handle(Named::new("ok", || async { 1 }).with_id("id-1"))
            .await
            .unwrap();
        let panicked = p
            .submit_handle(Named::new("panics", || async { panic!("kaboom") }))
            .await
            .unwrap();
        let timed_out = p
            .submit_handle(|| tokio::time::sleep(Duration::from_secs(5)))
            .await
            .unwrap();
        (ok, panicked, timed_out)
    }
    .with_context(root.clone())
    .await;
    assert_eq!(ok.await, Ok(1));
    assert_eq!(panicked.await, Err(JobError::Panicked("kaboom".into())));
    assert_eq!(timed_out.await, Err(JobError::TimedOut));
    // Outside any trace: no span, still counted.
    for _ in 0..3 {
        p.submit(|| async {}).await.unwrap();
    }
    assert!(p.try_submit(|| async {}).is_ok());
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert!(p.submit(|| async {}).await.is_err());
    root.span().end();

    // One span per traced job, each a child of the submitter's span.
    let root_span = tt.spans_named("submitter").pop().expect("root ended");
    let jobs = tt.spans_named("otelconc.pool.job");
    assert_eq!(jobs.len(), 3);
    for s in &jobs {
        assert_eq!(s.parent_span_id, root_span.span_context.span_id());
        assert_eq!(s.span_context.trace_id(), root_span.span_context.trace_id());
        assert!(attr_of(s, ATTR_QUEUE_WAIT).is_some(), "queue wait on {s:?}");
        assert_eq!(
            attr_of(s, ATTR_NAME).map(|v| v.as_str()),
            Some("tel".into())
        );
    }
    let named = |n: &str| {
        jobs.iter()
            .find(|s| {
                attr_of(s, "otelconc.pool.job.name").map(|v| v.as_str().into_owned())
                    == Some(n.to_owned())
            })
            .unwrap_or_else(|| panic!("span of job {n}"))
    };
    let ok_span = named("ok");
    assert_eq!(
        attr_of(ok_span, "otelconc.pool.job.id").map(|v| v.as_str().into_owned()),
        Some("id-1".to_owned())
    );
    assert_eq!(ok_span.status, Status::Unset);
    assert_eq!(str_attr(ok_span, ATTR_ERROR_TYPE), None);
    // The error rule: a failure is status Error with the message and `error.type`, and
    // no `exception` event.
    let p_span = named("panics");
    assert!(matches!(&p_span.status, Status::Error { description } if description == "kaboom"));
    assert_eq!(str_attr(p_span, ATTR_ERROR_TYPE).as_deref(), Some("panic"));
    let t_span = jobs
        .iter()
        .find(|s| attr_of(s, "otelconc.pool.job.name").is_none())
        .unwrap();
    assert!(matches!(t_span.status, Status::Error { .. }));
    assert_eq!(
        str_attr(t_span, ATTR_ERROR_TYPE).as_deref(),
        Some("timeout")
    );
    for s in &jobs {
        assert!(s.events.iter().all(|e| e.name != "exception"), "{s:#?}");
        assert_eq!(str_attr(s, ATTR_OUTCOME), None, "no job was cancelled");
    }
    // No span lives as long as a worker or the pool: every otelconc span is a job span.
    assert!(
        tt.spans()
            .iter()
            .filter(|s| s.instrumentation_scope.name() == "otelconc")
            .all(|s| s.name == "otelconc.pool.job")
    );

    // Counters match the report.
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "tel");
    let count = |outcome: &'static str| {
        m.value(
            "otelconc.pool.jobs",
            &[name.clone(), attr(ATTR_OUTCOME, outcome)],
        )
        .unwrap_or(0.0) as u64
    };
    assert_eq!((report.completed, report.failed), (5, 2));
    assert_eq!(count("ok"), report.completed);
    assert_eq!((count("panic"), count("timeout")), (1, 1));
    assert_eq!(count("panic") + count("timeout"), report.failed);
    assert_eq!(count("cancelled"), report.cancelled);
    assert_eq!(count("not_started"), report.not_started);
    // Failures carry error.type; cancellations are not failures.
    let failed = [name.clone(), attr(ATTR_ERROR_TYPE, "panic")];
    assert_eq!(m.value("otelconc.pool.jobs", &failed), Some(1.0));
    let with_error: f64 = ["panic", "timeout", "queue_full", "closed"]
        .iter()
        .filter_map(|e| {
            m.value(
                "otelconc.pool.jobs",
                &[name.clone(), attr(ATTR_ERROR_TYPE, *e)],
            )
        })
        .sum();
    assert_eq!(with_error, report.failed as f64);
    assert_eq!(
        m.value(
            "otelconc.pool.submissions",
            &[name.clone(), attr(ATTR_OUTCOME, "ok")]
        ),
        Some(report.accepted() as f64)
    );
    assert_eq!(
        m.value(
            "otelconc.pool.submissions",
            &[
                name.clone(),
                attr(ATTR_OUTCOME, "refused"),
                attr(ATTR_ERROR_TYPE, "closed")
            ]
        ),
        Some(1.0)
    );
    // Every job is timed with timing_sample(1); the timed-out one ran 1 s.
    let (n, _) = m
        .histogram("otelconc.pool.job.duration", std::slice::from_ref(&name))
        .unwrap();
    assert_eq!(n, report.accepted());
    let (n, sum) = m
        .histogram(
            "otelconc.pool.job.duration",
            &[name.clone(), attr(ATTR_OUTCOME, "timeout")],
        )
        .unwrap();
    assert_eq!((n, sum), (1, 1.0));
    let (n, _) = m
        .histogram(
            "otelconc.pool.queue.wait.duration",
            std::slice::from_ref(&name),
        )
        .unwrap();
    assert_eq!(n, report.accepted());
    // No metric carries an id.
    for set in m.attribute_sets("otelconc.pool.jobs") {
        assert!(set.iter().all(|kv| !kv.key.as_str().ends_with(".id")));
    }
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn levels_show_busy_and_idle_workers_the_queue_and_the_stuck_job_age() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("gauges")
        .workers(2)
        .queue_capacity(4)
        .outcomes(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    p.submit(with_token(move |token| async move {
        let _ = started_tx.send(());
        token.cancelled().await;
    }))
    .await
    .unwrap();
    started_rx.await.unwrap();
    let name = [attr(ATTR_NAME, "gauges")];
    let m = tt.metrics();
    let state = |s| [attr(ATTR_NAME, "gauges"), attr(ATTR_WORKER_STATE, s)];
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("busy")),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("idle")),
        Some(1.0)
    );
    assert_eq!(m.value("otelconc.pool.worker.limit", &name), Some(2.0));
    assert_eq!(m.value("otelconc.pool.queue.size", &name), Some(0.0));
    assert_eq!(m.value("otelconc.pool.queue.capacity", &name), Some(4.0));
    assert_eq!(m.value("otelconc.pool.queue.oldest.age", &name), Some(0.0));
    // The age counts from the first collection that saw the job running, so after a
    // 20 ms pause it is at least 20 ms.
    std::thread::sleep(Duration::from_millis(20));
    let age = tt
        .metrics()
        .value("otelconc.pool.job.max_age", &name)
        .unwrap();
    assert!(age >= 0.02, "age {age}");
    // Outcomes nobody reads: the buffer holds one, the rest are counted as dropped.
    for _ in 0..3 {
        p.submit(|| async {}).await.unwrap();
    }
    let report = p.abort().await;
    assert_eq!(report.accepted(), 4);
    let m = tt.metrics();
    assert_eq!(m.value("otelconc.pool.outcomes.dropped", &name), Some(3.0));
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("busy")),
        Some(0.0)
    );
    assert_eq!(m.value("otelconc.pool.job.max_age", &name), Some(0.0));
}

/// A worker retiring after a shrink is busy while it finishes its job, and is not one of
/// the configured workers: `idle` counts the configured workers not running a job.
#[tokio::test]
async fn a_retiring_worker_is_busy_but_the_idle_count_is_the_configured_workers() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("shrunk")
        .workers(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    p.submit(move || async move {
        let _ = started_tx.send(());
        let _ = go_rx.await;
    })
    .await
    .unwrap();
    started_rx.await.unwrap();
    // A second worker joins, idle; the shrink then retires the first, still busy.
    p.resize(2).unwrap();
    p.resize(1).unwrap();
    let state = |s| [attr(ATTR_NAME, "shrunk"), attr(ATTR_WORKER_STATE, s)];
    let m = tt.metrics();
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("busy")),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("idle")),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.pool.worker.limit", &[attr(ATTR_NAME, "shrunk")]),
        Some(1.0)
    );
    go_tx.send(()).unwrap();
    assert_eq!(p.shutdown(Duration::from_secs(5)).await.completed, 1);
}

/// Busy time is exact: the sum of the stretches each worker spent between taking a job
/// and finding the queue empty, the one still going included. The oldest queued job's
/// age counts from the first collection after it was submitted.
#[tokio::test(start_paused = true)]
async fn busy_time_and_the_oldest_queued_job_age_follow_the_clock() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("backlog")
        .workers(1)
        .queue_capacity(8)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let name = [attr(ATTR_NAME, "backlog")];
    let value = |metric| tt.metrics().value(metric, &name);
    // The first job holds the only worker for 10 s; three more queue behind it.
    p.submit(|| tokio::time::sleep(Duration::from_secs(10)))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    for _ in 0..3 {
        p.submit(|| tokio::time::sleep(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    assert_eq!(value("otelconc.pool.queue.size"), Some(3.0));
    assert_eq!(value("otelconc.pool.queue.capacity"), Some(8.0));
    assert_eq!(value("otelconc.pool.worker.busy.time"), Some(0.0));
    // The collection above is the first after the three were submitted.
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(value("otelconc.pool.queue.oldest.age"), Some(4.0));
    assert_eq!(value("otelconc.pool.worker.busy.time"), Some(4.0));
    // At 10 s the worker takes the second job (without parking): two left, the oldest
    // of them queued since before the first collection.
    tokio::time::advance(Duration::from_secs(6)).await;
    tokio::task::yield_now().await;
    assert_eq!(value("otelconc.pool.queue.size"), Some(2.0));
    assert_eq!(value("otelconc.pool.queue.oldest.age"), Some(10.0));
    assert_eq!(value("otelconc.pool.worker.busy.time"), Some(10.0));
    // The queue drains at 13 s; the worker then parks, and busy time stops.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(value("otelconc.pool.queue.size"), Some(0.0));
    assert_eq!(value("otelconc.pool.queue.oldest.age"), Some(0.0));
    assert_eq!(value("otelconc.pool.worker.busy.time"), Some(13.0));
    let report = p.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.completed, 4);
    // The exited worker's busy time stays in the total.
    assert_eq!(value("otelconc.pool.worker.busy.time"), Some(13.0));
    tt.assert_all_cataloged();
}

/// Cancellation is not an error: the span of a job cut off by the shutdown deadline ends
/// with status Unset and `otelconc.outcome=cancelled`.
#[tokio::test(start_paused = true)]
async fn a_job_cancelled_by_the_shutdown_deadline_ends_its_span_unset_and_cancelled() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("cancel")
        .workers(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    let (running, queued) = async {
        let running = p.submit_handle(std::future::pending::<()>).await.unwrap();
        let queued = p.submit_handle(|| async {}).await.unwrap();
        (running, queued)
    }
    .with_context(root.clone())
    .await;
    tokio::task::yield_now().await;
    let report = p.shutdown(Duration::from_secs(1)).await;
    assert_eq!((report.cancelled, report.not_started), (1, 1));
    assert_eq!(running.await, Err(JobError::Cancelled));
    assert_eq!(queued.await, Err(JobError::NotStarted));
    // The running job's span ended, as cancelled; the queued job never started a span.
    let spans = tt.spans_named("otelconc.pool.job");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].status, Status::Unset);
    assert_eq!(
        str_attr(&spans[0], ATTR_OUTCOME).as_deref(),
        Some("cancelled")
    );
    assert_eq!(str_attr(&spans[0], ATTR_ERROR_TYPE), None);
    assert!(spans[0].events.iter().all(|e| e.name != "exception"));
    assert_eq!(
        spans[0].parent_span_id,
        root.span().span_context().span_id()
    );
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "cancel");
    assert_eq!(
        m.value(
            "otelconc.pool.jobs",
            &[name.clone(), attr(ATTR_OUTCOME, "cancelled")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "otelconc.pool.jobs",
            &[name, attr(ATTR_OUTCOME, "not_started")]
        ),
        Some(1.0)
    );
}

/// The histograms are a fixed 1-in-N sample of jobs: jobs submitted inside a sampled
/// trace get a span each, but only the ones in the sample are timed for the histograms.
#[tokio::test]
async fn traced_jobs_outside_the_timing_sample_skip_the_histograms() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("sampled")
        .workers(2)
        .timing_sample(16)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    async {
        for _ in 0..32 {
            p.submit(|| async {}).await.unwrap();
        }
    }
    .with_context(root)
    .await;
    p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(tt.spans_named("otelconc.pool.job").len(), 32);
    // Any 32 submits in a row on one thread hold exactly 2 of a 1-in-16 stride.
    let name = [attr(ATTR_NAME, "sampled")];
    let m = tt.metrics();
    assert_eq!(
        m.histogram("otelconc.pool.job.duration", &name).unwrap().0,
        2
    );
    assert_eq!(
        m.histogram("otelconc.pool.queue.wait.duration", &name)
            .unwrap()
            .0,
        2
    );
}

/// The worker limit follows `resize` and falls to 0 once the pool is shut down; idle
/// workers are the configured ones not running a job; a `try_submit` on a full queue is
/// refused with `queue_full`.
#[tokio::test(start_paused = true)]
async fn the_worker_limit_follows_resize_and_refusals_carry_their_error_type() {
    let tt = TestTelemetry::new();
    let p = WorkerPool::builder("sized")
        .workers(2)
        .queue_capacity(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let name = [attr(ATTR_NAME, "sized")];
    let state = |s| [attr(ATTR_NAME, "sized"), attr(ATTR_WORKER_STATE, s)];
    p.resize(5).unwrap();
    let m = tt.metrics();
    assert_eq!(m.value("otelconc.pool.worker.limit", &name), Some(5.0));
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("idle")),
        Some(5.0)
    );
    p.resize(1).unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let m = tt.metrics();
    assert_eq!(m.value("otelconc.pool.worker.limit", &name), Some(1.0));
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("idle")),
        Some(1.0)
    );
    p.submit(std::future::pending::<()>).await.unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    p.submit(|| async {}).await.unwrap(); // the queue is full
    assert!(p.try_submit(|| async {}).unwrap_err().is_full());
    let m = tt.metrics();
    assert_eq!(
        m.value(
            "otelconc.pool.submissions",
            &[
                attr(ATTR_NAME, "sized"),
                attr(ATTR_OUTCOME, "refused"),
                attr(ATTR_ERROR_TYPE, "queue_full")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.pool.worker.count", &state("busy")),
        Some(1.0)
    );
    p.shutdown(Duration::from_millis(10)).await;
    let m = tt.metrics();
    assert_eq!(m.value("otelconc.pool.worker.limit", &name), Some(0.0));
}
