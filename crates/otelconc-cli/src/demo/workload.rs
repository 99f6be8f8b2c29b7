//! The event-ingestion workload: every otelconc primitive on one event's path.
//!
//! ```text
//! intake ─▶ channel "ingest" ─▶ router ─▶ pipeline shard 0 ┐
//!                                      └▶ pipeline shard 1 ┴▶ fan-in "results" ─▶ channel "writes" ─▶ sink workers
//! pipeline stages: parse ─▶ enrich (task group: 3 lookups, each an HTTP GET to the
//!                  downstream server on loopback through the tower layers of semaphore
//!                  "downstream-connections" and rate limiter "downstream-quota", see
//!                  `downstream`) ─▶ process (a CPU job on worker pool "cpu")
//! sink worker: a write to a simulated store, awaited with timeout(select::first) on its
//!              acknowledgement channel; a timed-out write is retried once, then counted
//! ```
//!
//! Every event gets a root span `demo.event` (sampled per the tracer provider's
//! sampler); the primitives carry its context across every hand-over, so one sampled
//! event's trace holds the ingest channel, each pipeline stage, the three lookups with
//! their semaphore and limiter waits and their HTTP CLIENT spans, each with the
//! downstream server's SERVER span as its child (the context crosses the hop in the
//! request's `traceparent`), the pool job, the fan-in and the sink write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::BoundHistogram;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use otelconc::channel::{self, Receiver, Sender};
use otelconc::fan::{FanIn, Traced};
use otelconc::group::TaskGroup;
use otelconc::pipeline::{ErrorPolicy, Pipeline, PipelineStream};
use otelconc::pool::{JobError, WorkerPool};
use otelconc::rate::{Quota, RateLimiter};
use otelconc::select;
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::Telemetry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::downstream::{self, Downstream, Server};
use super::events::{self, Event, RawEvent};
use super::faults::Faults;

/// The knobs of one run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    /// The downstream API quota (`--rate`).
    pub(crate) quota: Quota,
    pub(crate) concurrency: usize,
    /// Sink workers, and connections of the simulated store.
    pub(crate) writers: usize,
    pub(crate) faults: Faults,
    pub(crate) write_timeout: Duration,
    pub(crate) drain_deadline: Duration,
}

/// How many events ended which way. `accepted` counts events the ingest channel took;
/// every one of them ends as exactly one of the others.
#[derive(Debug, Default)]
pub(crate) struct Accounting {
    pub(crate) accepted: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) lookup_failed: AtomicU64,
    pub(crate) job_panicked: AtomicU64,
    pub(crate) job_failed: AtomicU64,
    pub(crate) write_timed_out: AtomicU64,
    pub(crate) write_retried: AtomicU64,
}

impl Accounting {
    /// Events that ended, one way or another.
    pub(crate) fn finished(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed) + self.failed()
    }

    /// Events that failed, all kinds.
    pub(crate) fn failed(&self) -> u64 {
        FailKind::ALL
            .iter()
            .map(|&k| self.failures(k).load(Ordering::Relaxed))
            .sum()
    }

    /// The count of events that failed as `kind`.
    pub(crate) fn failures(&self, kind: FailKind) -> &AtomicU64 {
        match kind {
            FailKind::Malformed => &self.malformed,
            FailKind::Lookup => &self.lookup_failed,
            FailKind::Panicked => &self.job_panicked,
            FailKind::JobFailed => &self.job_failed,
            FailKind::WriteTimeout => &self.write_timed_out,
        }
    }
}

/// Why an event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailKind {
    Malformed,
    Lookup,
    Panicked,
    JobFailed,
    WriteTimeout,
}

impl FailKind {
    /// Every kind, in the report's order.
    pub(crate) const ALL: [Self; 5] = [
        Self::Malformed,
        Self::Lookup,
        Self::Panicked,
        Self::JobFailed,
        Self::WriteTimeout,
    ];

    /// How the report names the kind.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Lookup => "lookup failed",
            Self::Panicked => "job panicked",
            Self::JobFailed => "job failed",
            Self::WriteTimeout => "write timed out",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Lookup => "lookup_failed",
            Self::Panicked => "job_panicked",
            Self::JobFailed => "job_failed",
            Self::WriteTimeout => "write_timeout",
        }
    }
}

/// The error a pipeline stage fails an item with (already accounted for).
#[derive(Debug)]
pub(crate) struct Failed(FailKind);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl std::error::Error for Failed {}

/// The demo's own instruments and tracer.
struct Instruments {
    tracer: BoxedTracer,
    /// `otelconc.demo.event.duration`, bound once per outcome.
    latency_ok: BoundHistogram<f64>,
    latency_failed: BoundHistogram<f64>,
}

/// What flows through the pipeline: the event and what it needs to end its trace.
struct Item<T> {
    value: T,
    seq: u64,
    /// The context holding the event's root span.
    root: Context,
    started: Instant,
}

impl<T> Item<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Item<U> {
        Item {
            value: f(self.value),
            seq: self.seq,
            root: self.root,
            started: self.started,
        }
    }
}

/// Shared by every stage and task of a run.
struct Run {
    settings: Settings,
    acct: Arc<Accounting>,
    inst: Instruments,
    /// The client stack of the lookups (it holds semaphore "downstream-connections" and
    /// rate limiter "downstream-quota").
    downstream: Downstream,
    /// The downstream server; aborted when the run's primitives are dropped.
    server: Server,
    pool: WorkerPool,
    /// The handle every per-event task group is built with: made once, not per event.
    telemetry: Telemetry,
}

impl Run {
    /// Ends an event as failed: counted by kind, its root span closed with an error.
    fn fail<T>(&self, item: &Item<T>, kind: FailKind, message: String) -> Failed {
        let counter = self.acct.failures(kind);
        // The error rule otelconc's own spans follow: `error.type`, message as status.
        let root = item.root.span();
        root.set_attribute(KeyValue::new("error.type", kind.as_str()));
        root.set_status(Status::error(message));
        self.finish(item, counter, &self.inst.latency_failed, kind.as_str());
        Failed(kind)
    }

    /// Ends an event as written.
    fn succeed<T>(&self, item: &Item<T>) {
        self.finish(item, &self.acct.succeeded, &self.inst.latency_ok, "ok");
    }

    /// Counts an ended event, records its end-to-end time and ends its root span.
    fn finish<T>(
        &self,
        item: &Item<T>,
        counter: &AtomicU64,
        latency: &BoundHistogram<f64>,
        outcome: &'static str,
    ) {
        counter.fetch_add(1, Ordering::Relaxed);
        latency.record(item.started.elapsed().as_secs_f64());
        let span = item.root.span();
        span.set_attribute(KeyValue::new("demo.outcome", outcome));
        span.end();
    }
}

/// Where the run's events come from.
pub(crate) enum Source {
    Generated { events: u64 },
    File(std::path::PathBuf),
}

/// The run's primitives, alive after the work is done. An observable instrument of a
/// dropped primitive reports nothing, so they are dropped only after the exporter's
/// final collection (at telemetry shutdown).
pub(crate) struct Primitives {
    /// A receiver of each channel keeps it open.
    _ingest: Receiver<Item<RawEvent>>,
    _writes: Receiver<Item<u64>>,
    _store_requests: Receiver<WriteRequest>,
    _store_acks: Vec<Receiver<Ack>>,
    _shards: Vec<Pipeline<Item<RawEvent>, Item<u64>, Failed>>,
    /// The semaphore, rate limiter and worker pool.
    _run: Arc<Run>,
}

/// The result of a run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) elapsed: Duration,
    pub(crate) aborted: bool,
    pub(crate) input_error: Option<String>,
}

/// Runs the workload until the source is exhausted, `stop_intake` fires (then drains
/// within the deadline) or `abort` fires.
///
/// `done` is called (on a blocking thread) as soon as the work is done, to stop the
/// progress and take the summary's final collection. The primitives come back with the
/// report, alive, for the exporter's final collection.
pub(crate) async fn run(
    settings: Settings,
    source: Source,
    acct: Arc<Accounting>,
    stop_intake: CancellationToken,
    abort: CancellationToken,
    done: impl FnOnce() + Send + 'static,
) -> Result<(Report, Primitives), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let meter = opentelemetry::global::meter("otelconc-demo");
    let latency = meter
        .f64_histogram("otelconc.demo.event.duration")
        .with_unit("s")
        .with_description("End-to-end time of an event, intake to sink write, by outcome")
        .with_boundaries(otelconc::telemetry::SECONDS_BOUNDARIES.to_vec())
        .build();
    let inst = Instruments {
        tracer: opentelemetry::global::tracer("otelconc-demo"),
        latency_ok: latency.bind(&[KeyValue::new("demo.outcome", "ok")]),
        latency_failed: latency.bind(&[KeyValue::new("demo.outcome", "failed")]),
    };
    let connections = Semaphore::new("downstream-connections", settings.concurrency as u32)?;
    let quota = RateLimiter::new("downstream-quota", settings.quota);
    let run = Arc::new(Run {
        downstream: downstream::client(connections, quota),
        server: downstream::start(settings.faults).await?,
        pool: WorkerPool::builder("cpu")
            .workers(settings.workers)
            .queue_capacity(256)
            .job_timeout(Duration::from_secs(5))
            .build()?,
        telemetry: Telemetry::global(),
        settings,
        acct,
        inst,
    });

    let hard_stop = CancellationToken::new();
    let mut tasks = JoinSet::new();

    // The ingest channel and its router into the pipeline shards.
    let (ingest_tx, ingest_rx) = channel::bounded::<Item<RawEvent>>("ingest", 1024);
    let shards: Vec<_> = (0..2)
        .map(|i| pipeline(&run, i, &hard_stop))
        .collect::<Result<_, _>>()?;
    let mut senders = Vec::new();
    let mut outputs = Vec::new();
    for p in &shards {
        let (tx, out) = p.start();
        senders.push(tx);
        outputs.push(out);
    }
    // One receiver of each channel stays alive with the primitives.
    let keep_ingest = ingest_rx.clone();
    tasks.spawn(route(ingest_rx, senders));

    // Fan-in of the shards' results, into the sink.
    let mut fan = FanIn::builder("results");
    for (i, out) in outputs.into_iter().enumerate() {
        fan = fan.traced_input(format!("shard-{i}"), results(out));
    }
    let merged = fan.build()?;
    let (writes_tx, writes_rx) = channel::bounded::<Item<u64>>("writes", 256);
    tasks.spawn(forward(merged, writes_tx));
    let (device_tx, device_rx) = channel::bounded::<WriteRequest>("store-requests", 64);
    let (keep_writes, keep_requests) = (writes_rx.clone(), device_rx.clone());
    // One acknowledgement channel per writer; the store's connections answer on the
    // writer's own channel, through handles cloned here once.
    let (ack_txs, ack_rxs): (Vec<Sender<Ack>>, Vec<Receiver<Ack>>) = (0..run.settings.writers)
        .map(|w| channel::bounded::<Ack>(format!("store-acks-{w}"), 16))
        .unzip();
    let ack_txs: Arc<[Sender<Ack>]> = ack_txs.into();
    for _ in 0..run.settings.writers {
        tasks.spawn(device(run.clone(), device_rx.clone(), ack_txs.clone()));
    }
    drop(ack_txs);
    drop(device_rx);
    for (writer, acks) in ack_rxs.iter().enumerate() {
        tasks.spawn(sink_worker(
            run.clone(),
            writer,
            acks.clone(),
            writes_rx.clone(),
            device_tx.clone(),
        ));
    }
    drop((writes_rx, device_tx));

    // Intake: the only part that stops on the first Ctrl-C.
    let input_error = intake(&run, source, ingest_tx, &stop_intake).await;

    // Drain: everything downstream ends when its input closes, unless the drain
    // deadline passes after a stop (one that stopped intake, or one that came when the
    // input had already ended and the run was draining anyway) or a second Ctrl-C
    // aborts.
    let drained = async {
        while let Some(joined) = tasks.join_next().await {
            joined?;
        }
        Ok::<(), tokio::task::JoinError>(())
    };
    let deadline = async {
        stop_intake.cancelled().await;
        tokio::time::sleep(run.settings.drain_deadline).await;
    };
    let aborted = tokio::select! {
        r = drained => { r?; false }
        () = deadline => true,
        () = abort.cancelled() => true,
    };
    if aborted {
        hard_stop.cancel();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        run.pool.abort().await;
    } else {
        run.pool.shutdown(run.settings.drain_deadline).await;
    }
    let elapsed = started.elapsed();
    // Every primitive is still alive here: the final collection sees all of them.
    tokio::task::spawn_blocking(done).await?;
    let report = Report {
        elapsed,
        aborted,
        input_error,
    };
    let primitives = Primitives {
        _ingest: keep_ingest,
        _writes: keep_writes,
        _store_requests: keep_requests,
        _store_acks: ack_rxs,
        _shards: shards,
        _run: run,
    };
    Ok((report, primitives))
}

/// Reads the source into the ingest channel, one root span per event.
async fn intake(
    run: &Run,
    source: Source,
    tx: Sender<Item<RawEvent>>,
    stop: &CancellationToken,
) -> Option<String> {
    let mut lines: Box<dyn Iterator<Item = std::io::Result<RawEvent>> + Send> = match source {
        Source::Generated { events } => {
            Box::new(events::generate(events, run.settings.faults).map(Ok))
        }
        Source::File(path) => match events::read_file(&path) {
            Ok(it) => Box::new(it),
            Err(e) => return Some(e.to_string()),
        },
    };
    loop {
        if stop.is_cancelled() {
            return None;
        }
        let raw = match lines.next() {
            None => return None,
            Some(Ok(raw)) => raw,
            Some(Err(e)) => {
                return Some(format!(
                    "reading --input failed after {} events: {e}",
                    run.acct.accepted.load(Ordering::Relaxed)
                ));
            }
        };
        let span = run
            .inst
            .tracer
            .span_builder("demo.event")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("demo.event.seq", raw.seq as i64)])
            .start_with_context(&run.inst.tracer, &Context::new());
        let root = Context::new().with_span(span);
        let item = Item {
            seq: raw.seq,
            value: raw,
            root: root.clone(),
            started: Instant::now(),
        };
        let sent = tokio::select! {
            r = tx.send(item).with_context(root.clone()) => r,
            () = stop.cancelled() => {
                // Stopped, not failed: a cancellation is not an error.
                root.span().set_attribute(KeyValue::new("otelconc.outcome", "cancelled"));
                root.span().end();
                return None;
            }
        };
        match sent {
            Ok(()) => {
                run.acct.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let item = e.into_inner();
                item.root.span().end();
                return Some("the ingest channel closed unexpectedly".to_owned());
            }
        }
    }
}

/// Moves events from the ingest channel to the pipeline shards, each inside a
/// consumer span of the ingest channel so the trace runs on.
async fn route(
    rx: Receiver<Item<RawEvent>>,
    shards: Vec<otelconc::pipeline::PipelineSender<Item<RawEvent>>>,
) {
    while let Ok(received) = rx.recv_traced().await {
        let shard = &shards[(received.get_ref().seq % shards.len() as u64) as usize];
        let root = received.get_ref().root.clone();
        let delivered = received
            .in_span(|item| async move { shard.send(item).await })
            .with_context(root)
            .await;
        if let Err(e) = delivered {
            // A shard only refuses while the run is being torn down.
            let item = e.into_inner();
            item.root.span().end();
            return;
        }
    }
}

/// One pipeline shard: parse ─▶ enrich ─▶ process.
fn pipeline(
    run: &Arc<Run>,
    shard: usize,
    hard_stop: &CancellationToken,
) -> Result<Pipeline<Item<RawEvent>, Item<u64>, Failed>, otelconc::pipeline::BuildError> {
    let (r1, r2, r3) = (run.clone(), run.clone(), run.clone());
    Pipeline::builder(format!("ingest-shard-{shard}"))
        .stage("parse", 2, 256, move |item: Item<RawEvent>| {
            let run = r1.clone();
            async move {
                match events::parse(&item.value) {
                    Ok(ev) => Ok(item.map(|_| ev)),
                    Err(e) => Err(run.fail(&item, FailKind::Malformed, e.0)),
                }
            }
        })
        .stage(
            "enrich",
            run.settings.concurrency,
            256,
            move |item: Item<Event>| {
                let run = r2.clone();
                async move {
                    match enrich(&run, &item).await {
                        Ok(score) => Ok(item.map(|ev| (ev, score))),
                        Err(msg) => Err(run.fail(&item, FailKind::Lookup, msg)),
                    }
                }
            },
        )
        .stage(
            "process",
            run.settings.workers,
            256,
            move |mut item: Item<(Event, u64)>| {
                let run = r3.clone();
                async move {
                    let panics = run.settings.faults.job_panics(item.seq);
                    let (event, score) = std::mem::replace(&mut item.value, (Event::empty(), 0));
                    let job = move || async move { digest(&event, score, panics) };
                    let handle = match run.pool.submit_handle(job).await {
                        Ok(h) => h,
                        Err(_) => {
                            return Err(run.fail(
                                &item,
                                FailKind::JobFailed,
                                "the worker pool is closed".to_owned(),
                            ));
                        }
                    };
                    match handle.await {
                        Ok(hash) => Ok(item.map(|_| hash)),
                        Err(JobError::Panicked(msg)) => {
                            Err(run.fail(&item, FailKind::Panicked, msg))
                        }
                        Err(e) => Err(run.fail(&item, FailKind::JobFailed, e.to_string())),
                    }
                }
            },
        )
        .on_error(ErrorPolicy::Skip)
        .cancellation_token(hard_stop.child_token())
        .build()
}

/// The three downstream lookups of an event, concurrently in a task group; each holds a
/// connection permit and spends a quota token. Returns a score made of their answers.
async fn enrich(run: &Arc<Run>, item: &Item<Event>) -> Result<u64, String> {
    let mut group: TaskGroup<u64, String> = TaskGroup::builder()
        .name("lookups")
        .telemetry(run.telemetry.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let names = ["lookup users", "lookup geo", "lookup fraud"];
    for (which, name) in names.into_iter().enumerate() {
        let run = run.clone();
        let seq = item.seq;
        let token = group.token();
        let lookup = async move {
            // The lookup as the demo sees it; the HTTP CLIENT span of the request, its
            // permit and token waits are its children. An unsampled event's lookup has
            // no span and runs under the context the task group carried from the stage
            // (the event's own, unsampled), so its request still carries the event's
            // trace and the server's parent-based sampler drops its span too, instead
            // of starting a trace of its own.
            let span = DemoSpan::start(
                &run.inst.tracer,
                name,
                SpanKind::Internal,
                [KeyValue::new("demo.service", downstream::SERVICES[which])],
            );
            let service = downstream::SERVICES[which];
            let result = async {
                let call = downstream::lookup_score(run.downstream.clone(), run.server.addr, which, seq);
                tokio::select! {
                    r = call => r,
                    () = token.cancelled() => Err(format!("{service} lookup cancelled: a sibling failed")),
                }
            }
            .with_context(span.context())
            .await;
            if let Err(e) = &result {
                if token.is_cancelled() {
                    // A sibling failed first: this lookup was cancelled, not failed.
                    span.attribute(KeyValue::new("otelconc.outcome", "cancelled"));
                } else {
                    span.error("lookup_failed", e.clone());
                }
            }
            span.end();
            result
        };
        group
            .spawn(lookup)
            .await
            .map_err(|_| "lookup group cancelled".to_owned())?;
    }
    match group.wait().await {
        Ok(scores) => Ok(scores.into_iter().fold(0, u64::wrapping_add)),
        Err(e) => Err(e.first().to_string()),
    }
}

/// What every injected job panic says, so the demo's panic hook can keep them quiet
/// (the pool turns them into errors; the report counts them).
pub(crate) const INJECTED_PANIC: &str = "injected fault: corrupt record";

/// The CPU-bound job: a digest of the record (FNV-1a over its JSON, many rounds).
fn digest(event: &Event, score: u64, panics: bool) -> u64 {
    if panics {
        panic!("{INJECTED_PANIC} in event {}", event.id);
    }
    let text = serde_json::to_string(&event.fields).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ score;
    for _ in 0..64 {
        for b in event
            .id
            .bytes()
            .chain(event.user.bytes())
            .chain(event.kind.bytes())
            .chain(text.bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A shard's output as fan-in input: successful items with their root context (failed
/// ones were ended and counted where they failed).
fn results(
    out: PipelineStream<Item<u64>, Failed>,
) -> impl futures::Stream<Item = Traced<Item<u64>>> + Send {
    out.filter_map(|r| async move {
        r.ok().map(|item| {
            let cx = item.root.has_active_span().then(|| item.root.clone());
            let sampled = cx.filter(|c| c.span().span_context().is_sampled());
            Traced::with_context(item, sampled)
        })
    })
}

/// Moves merged results into the writes channel, each send inside its event's trace.
async fn forward(mut merged: FanIn<Item<u64>>, tx: Sender<Item<u64>>) {
    while let Some(m) = merged.next().await {
        let cx = m.context().cloned().unwrap_or_else(Context::new);
        let item = m.into_inner();
        if tx.send(item).with_context(cx).await.is_err() {
            return;
        }
    }
}

/// A store acknowledgement: (event sequence number, attempt).
type Ack = (u64, u64);

/// A client span of a simulated downstream call, built only when the event is in a
/// sampled trace: the rule the library itself follows, so an unsampled event pays for
/// no span at all. Without one, every method does nothing and work runs under the
/// current context.
struct DemoSpan(Option<Context>);

impl DemoSpan {
    fn start(
        tracer: &BoxedTracer,
        name: &'static str,
        kind: SpanKind,
        attributes: impl IntoIterator<Item = KeyValue>,
    ) -> Self {
        Self(otelconc::telemetry::sampled_context().map(|parent| {
            let span = tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            parent.with_span(span)
        }))
    }

    /// The context to run the call under.
    fn context(&self) -> Context {
        self.0.clone().unwrap_or_else(Context::current)
    }

    fn attribute(&self, kv: KeyValue) {
        if let Some(cx) = &self.0 {
            cx.span().set_attribute(kv);
        }
    }

    fn event(&self, name: &'static str, kv: KeyValue) {
        if let Some(cx) = &self.0 {
            cx.span().add_event(name, vec![kv]);
        }
    }

    /// Marks the span failed the way otelconc's spans are: `error.type` and the message
    /// as the status description.
    fn error(&self, error_type: &'static str, message: String) {
        if let Some(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(message));
        }
    }

    fn end(&self) {
        if let Some(cx) = &self.0 {
            cx.span().end();
        }
    }
}

/// A request to the simulated store: write event `seq` as attempt `attempt`, and
/// acknowledge to writer `writer`.
struct WriteRequest {
    seq: u64,
    attempt: u64,
    writer: usize,
}

/// One connection of the simulated store: writes take a few hundred microseconds, or
/// stall past the write timeout when the fault plan says so.
async fn device(run: Arc<Run>, rx: Receiver<WriteRequest>, acks: Arc<[Sender<Ack>]>) {
    while let Ok(req) = rx.recv().await {
        let stall = run.settings.faults.write_stalls(req.seq, req.attempt);
        let latency = if stall {
            run.settings.write_timeout * 3
        } else {
            Duration::from_secs_f64(run.settings.faults.latency(
                req.seq,
                7 + req.attempt,
                0.000_3,
                0.5,
            ))
        };
        tokio::time::sleep(latency).await;
        // The writer may have given up on this attempt; a late ack is dropped there.
        let _ = acks[req.writer].try_send((req.seq, req.attempt));
    }
}

/// A sink worker: writes each result, waiting for the store's acknowledgement with
/// `select::first` under `tokio::time::timeout`; a timed-out write is retried once, then counted.
async fn sink_worker(
    run: Arc<Run>,
    writer: usize,
    acks: Receiver<Ack>,
    rx: Receiver<Item<u64>>,
    store: Sender<WriteRequest>,
) {
    while let Ok(received) = rx.recv_traced().await {
        let root = received.get_ref().root.clone();
        let done = received
            .in_span(|item| write(&run, item, &store, writer, &acks))
            .with_context(root)
            .await;
        if done.is_err() {
            return;
        }
    }
}

/// Writes one item; `Err` when the store is gone (the run is being torn down).
async fn write(
    run: &Run,
    item: Item<u64>,
    store: &Sender<WriteRequest>,
    writer: usize,
    acks: &Receiver<Ack>,
) -> Result<(), ()> {
    let span = DemoSpan::start(&run.inst.tracer, "sink write", SpanKind::Client, []);
    let cx = span.context();
    for attempt in 0..2 {
        let req = WriteRequest {
            seq: item.seq,
            attempt,
            writer,
        };
        if store.send(req).with_context(cx.clone()).await.is_err() {
            span.end();
            return Err(());
        }
        let deadline = Instant::now() + run.settings.write_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, select::first([acks])).await {
                Ok(Ok(sel)) if sel.value == (item.seq, attempt) => {
                    span.attribute(KeyValue::new("demo.write.attempts", attempt as i64 + 1));
                    span.end();
                    run.succeed(&item);
                    return Ok(());
                }
                // A late acknowledgement of an earlier, timed-out write.
                Ok(Ok(_)) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        span.event(
            "write timed out",
            KeyValue::new("demo.write.attempt", attempt as i64),
        );
        if attempt == 0 {
            run.acct.write_retried.fetch_add(1, Ordering::Relaxed);
        }
    }
    span.error("timeout", "write timed out twice".to_owned());
    span.end();
    run.fail(
        &item,
        FailKind::WriteTimeout,
        format!("write of event {} timed out twice", item.seq),
    );
    Ok(())
}
