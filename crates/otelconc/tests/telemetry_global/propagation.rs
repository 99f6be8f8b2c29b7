//! `telemetry::inject` and `telemetry::extract` over the global propagator: the W3C
//! context across a process boundary, and bad headers that must not fail or panic.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use otelconc::telemetry::{extract, inject};

use crate::GLOBALS;

/// The propagators otelconc-setup installs: W3C trace context and W3C baggage.
fn install_w3c() {
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

fn headers(traceparent: &str) -> HashMap<String, String> {
    HashMap::from([("traceparent".to_owned(), traceparent.to_owned())])
}

fn upstream(flags: TraceFlags) -> Context {
    let sc = SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
        SpanId::from(0xb7ad_6b71_6920_3331_u64),
        flags,
        false,
        TraceState::from_key_value([("vendor", "v1")]).expect("tracestate"),
    );
    Context::new()
        .with_remote_span_context(sc)
        .with_baggage([KeyValue::new("tenant", "acme")])
}

#[tokio::test]
async fn a_context_round_trips_through_headers_sampled_or_not() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
        let cx = upstream(flags);
        let mut h = HashMap::new();
        inject(&cx, &mut h);
        let flag = if flags.is_sampled() { "01" } else { "00" };
        assert_eq!(
            h.get("traceparent").map(String::as_str),
            Some(format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flag}").as_str())
        );
        assert_eq!(h.get("tracestate").map(String::as_str), Some("vendor=v1"));
        let back = extract(&h);
        let sc = back.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(sc.trace_id(), cx.span().span_context().trace_id());
        assert_eq!(sc.span_id(), cx.span().span_context().span_id());
        assert_eq!(sc.is_sampled(), flags.is_sampled());
        assert_eq!(sc.trace_state().get("vendor"), Some("v1"));
        assert_eq!(
            back.baggage().get("tenant").map(|v| v.as_str().to_string()),
            Some("acme".to_owned())
        );
    }
}

#[tokio::test]
async fn malformed_traceparents_extract_to_a_context_without_a_span() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    let bad = [
        "",
        "garbage",
        // Version ff is forbidden; version 00 must have exactly four parts.
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        // Bad hex, wrong lengths, upper case.
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz",
        // Short ids, which the SDK's parser alone would pad.
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        "00-1-2-01",
        // All-zero ids.
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    ];
    for tp in bad {
        let cx = extract(&headers(tp));
        assert!(
            !cx.span().span_context().is_valid(),
            "{tp:?} gave a valid span context"
        );
    }
}

#[tokio::test]
async fn a_later_version_may_add_fields_after_the_flags() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    for tp in [
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more",
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ] {
        let sc = extract(&headers(tp)).span().span_context().clone();
        assert!(sc.is_valid(), "{tp:?} was refused");
        assert_eq!(sc.span_id(), SpanId::from(0xb7ad_6b71_6920_3331_u64));
    }
    // But not glued to the flags.
    let glued = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01more";
    assert!(!extract(&headers(glued)).span().span_context().is_valid());
}

#[tokio::test]
async fn nothing_of_the_callers_context_leaks_into_an_extracted_one() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    // Extracting inside a sampled span with baggage, say in a request handler that
    // reads messages from a broker.
    let _attached = upstream(TraceFlags::SAMPLED).attach();
    for carrier in [HashMap::new(), headers("garbage")] {
        let cx = extract(&carrier);
        assert!(
            !cx.span().span_context().is_valid(),
            "{carrier:?} extracted to the caller's span"
        );
        assert!(
            cx.baggage().is_empty(),
            "{carrier:?} extracted the caller's baggage"
        );
    }
    // A carrier with a trace gets its own, and only its own baggage.
    let mut h = headers("00-11111111111111111111111111111111-2222222222222222-01");
    h.insert("baggage".to_owned(), "region=eu".to_owned());
    let cx = extract(&h);
    assert_eq!(
        cx.span().span_context().trace_id(),
        TraceId::from(0x1111_1111_1111_1111_1111_1111_1111_1111_u128)
    );
    assert!(cx.baggage().get("tenant").is_none());
    assert_eq!(
        cx.baggage().get("region").map(|v| v.as_str().to_string()),
        Some("eu".to_owned())
    );
}

/// A carrier with repeated headers, as HTTP allows.
struct Repeated(Vec<(&'static str, &'static str)>);

impl opentelemetry::propagation::Extractor for Repeated {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

/// A propagator that reads every value of a header: it puts the values it saw in the
/// context, one string per value, joined with `|`.
#[derive(Debug)]
struct ReadsAll(&'static str);

#[derive(Debug, PartialEq)]
struct Seen(String);

impl opentelemetry::propagation::TextMapPropagator for ReadsAll {
    fn inject_context(&self, _: &Context, _: &mut dyn opentelemetry::propagation::Injector) {}

    fn extract_with_context(
        &self,
        cx: &Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> Context {
        let all = extractor.get_all(self.0).unwrap_or_default();
        cx.with_value(Seen(all.join("|")))
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&[])
    }
}

#[tokio::test]
async fn a_propagator_reading_repeated_headers_gets_them_all_but_bad_traceparents() {
    let _g = GLOBALS.lock().await;
    let good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let carrier = Repeated(vec![
        ("baggage", "a=1"),
        ("baggage", "b=2"),
        ("traceparent", "garbage"),
        ("traceparent", good),
    ]);
    for (header, want) in [("baggage", "a=1|b=2"), ("traceparent", good)] {
        global::set_text_map_propagator(ReadsAll(header));
        let cx = extract(&carrier);
        assert_eq!(cx.get::<Seen>(), Some(&Seen(want.to_owned())), "{header}");
    }
    install_w3c();
}

#[tokio::test]
async fn an_oversized_tracestate_keeps_its_first_32_members() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    let mut h = headers("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let members: Vec<String> = (0..40).map(|i| format!("k{i}=v{i}")).collect();
    h.insert("tracestate".to_owned(), members.join(","));
    let cx = extract(&h);
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid());
    let ts = sc.trace_state();
    assert_eq!(ts.get("k0"), Some("v0"));
    assert_eq!(ts.get("k31"), Some("v31"));
    assert_eq!(ts.get("k32"), None);
    assert_eq!(ts.header().split(',').count(), 32);
}

#[tokio::test]
async fn baggage_is_bounded_by_the_w3c_limits() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    // Over 8192 bytes: dropped whole, before any entry is parsed.
    let huge: Vec<String> = (0..20_000).map(|i| format!("key{i}=value{i}")).collect();
    let h = HashMap::from([("baggage".to_owned(), huge.join(","))]);
    assert!(extract(&h).baggage().is_empty());
    // Within 8192 bytes but with 200 entries: at most 64 kept.
    let many: Vec<String> = (0..200).map(|i| format!("k{i}=v{i}")).collect();
    let header = many.join(",");
    assert!(header.len() < 8192);
    let h = HashMap::from([("baggage".to_owned(), header)]);
    let cx = extract(&h);
    let baggage = cx.baggage();
    assert!(!baggage.is_empty());
    assert!(baggage.len() <= 64, "{} entries kept", baggage.len());
    assert_eq!(
        baggage.get("k0").map(|v| v.as_str().to_string()),
        Some("v0".to_owned())
    );
}

#[tokio::test]
async fn without_a_propagator_nothing_is_written_or_read() {
    let _g = GLOBALS.lock().await;
    global::set_text_map_propagator(opentelemetry::propagation::TextMapCompositePropagator::new(
        vec![],
    ));
    let mut h = HashMap::new();
    inject(&upstream(TraceFlags::SAMPLED), &mut h);
    assert!(h.is_empty());
    let cx = extract(&headers(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ));
    assert!(!cx.span().span_context().is_valid());
    install_w3c();
}

/// A context extracted from a `traceparent` header, with W3C baggage.
fn remote(sampled: bool) -> Context {
    let flags = if sampled { "01" } else { "00" };
    let h = HashMap::from([
        (
            "traceparent".to_owned(),
            format!(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flag}",
                flag = flags
            ),
        ),
        ("baggage".to_owned(), "tenant=acme".to_owned()),
    ]);
    extract(&h)
}

const REMOTE_TRACE: u128 = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c;
const REMOTE_SPAN: u64 = 0xb7ad_6b71_6920_3331;

#[tokio::test]
async fn a_message_sent_with_an_extracted_sampled_context_is_received_in_its_trace() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    let tt = otelconc_testkit::TestTelemetry::new();
    let (tx, rx) = otelconc::channel::builder("bridge")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    // The bridge task runs outside any trace; the message's trace comes from its headers.
    tx.send_with_context(7, &remote(true)).await.unwrap();
    let msg = rx.recv_traced().await.unwrap();
    assert!(msg.has_span());
    drop(msg);
    let span = tt
        .spans_named("otelconc.channel.receive")
        .pop()
        .expect("receive span");
    assert_eq!(span.span_context.trace_id(), TraceId::from(REMOTE_TRACE));
    assert_eq!(span.parent_span_id, SpanId::from(REMOTE_SPAN));
    assert!(span.parent_span_is_remote);
    assert_eq!(span.links.links.len(), 1);
    assert_eq!(
        span.links.links[0].span_context.span_id(),
        SpanId::from(REMOTE_SPAN)
    );
}

#[tokio::test]
async fn a_job_submitted_with_an_extracted_context_runs_in_its_trace_sampled_or_not() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    for sampled in [true, false] {
        let tt = Arc::new(otelconc_testkit::TestTelemetry::parent_based());
        let pool = otelconc::pool::WorkerPool::builder("bridge")
            .telemetry(tt.telemetry())
            .workers(1)
            .build()
            .unwrap();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let job_tt = tt.clone();
        pool.submit_with_context(
            move || async move {
                job_tt.start_user_span("user.work");
                let _ = seen_tx.send(otelconc_testkit::seen_context());
            },
            &remote(sampled),
        )
        .await
        .unwrap();
        let (trace, baggage) = seen_rx.await.unwrap();
        pool.graceful_shutdown().await;
        // The job ran inside the remote trace, with its baggage.
        assert_eq!(
            trace,
            Some(TraceId::from(REMOTE_TRACE)),
            "sampled={sampled}"
        );
        assert_eq!(baggage.as_deref(), Some("acme"));
        let user = tt.spans_named("user.work");
        if sampled {
            let job = tt.spans_named("otelconc.pool.job").pop().expect("job span");
            assert_eq!(job.span_context.trace_id(), TraceId::from(REMOTE_TRACE));
            assert_eq!(job.parent_span_id, SpanId::from(REMOTE_SPAN));
            assert_eq!(user.len(), 1);
            assert_eq!(user[0].parent_span_id, job.span_context.span_id());
        } else {
            // Unsampled upstream: no span of ours, and the job's own span is dropped
            // with its parent instead of becoming an exported root.
            assert!(tt.spans().is_empty(), "{:?}", tt.spans());
        }
    }
}

#[tokio::test]
async fn a_pipeline_item_sent_with_an_extracted_context_runs_its_stages_in_that_trace() {
    let _g = GLOBALS.lock().await;
    install_w3c();
    let tt = otelconc_testkit::TestTelemetry::new();
    let p = otelconc::pipeline::Pipeline::builder("bridge")
        .stage("seen", 1, 4, |_: u8| async {
            Ok::<_, std::io::Error>(otelconc_testkit::seen_context())
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let (tx, mut out) = p.start();
    tx.send_with_context(1, &remote(true)).await.unwrap();
    drop(tx);
    let (trace, baggage) = futures::StreamExt::next(&mut out)
        .await
        .expect("one item")
        .expect("ok");
    assert_eq!(trace, Some(TraceId::from(REMOTE_TRACE)));
    assert_eq!(baggage.as_deref(), Some("acme"));
    out.stop().await;
    let stage = tt
        .spans_named("otelconc.pipeline.stage")
        .pop()
        .expect("stage span");
    assert_eq!(stage.span_context.trace_id(), TraceId::from(REMOTE_TRACE));
    assert_eq!(stage.parent_span_id, SpanId::from(REMOTE_SPAN));
}
