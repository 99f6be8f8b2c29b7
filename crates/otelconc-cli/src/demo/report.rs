//! The closing report: where every accepted event ended, the end-to-end latency, and a
//! table per primitive, all from the metrics the exporter was sent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use otelconc::telemetry::names::{self, InstrumentKind};

use super::summary::{Snapshot, bar_chart, dur};
use super::workload::{Accounting, FailKind, Report};

/// Instances shown per primitive (the store's acknowledgement channels are one per
/// writer).
const MAX_INSTANCES: usize = 8;

/// The primitives, in the order an event meets them.
const PRIMITIVES: &[&str] = &[
    "channel",
    "pipeline",
    "group",
    "semaphore",
    "rate",
    "pool",
    "fan_out",
    "fan_in",
];

pub(crate) fn render(acct: &Accounting, run: &Report, snap: &Snapshot) -> String {
    let mut out = String::new();
    let secs = run.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let accepted = get(&acct.accepted);
    let succeeded = get(&acct.succeeded);
    let failed = acct.failed();
    let cancelled = accepted.saturating_sub(succeeded + failed);
    let _ = writeln!(
        out,
        "\n== events ({:.2} s{})",
        secs,
        if run.aborted { ", aborted" } else { "" }
    );
    let _ = writeln!(
        out,
        "  accepted         {accepted:>9}   {:>10.0} events/s",
        accepted as f64 / secs
    );
    let _ = writeln!(out, "  succeeded        {succeeded:>9}");
    let _ = writeln!(out, "  failed           {failed:>9}");
    for kind in FailKind::ALL {
        let _ = writeln!(
            out,
            "    {:<15}{:>9}",
            kind.label(),
            get(acct.failures(kind))
        );
    }
    let _ = writeln!(out, "  cancelled        {cancelled:>9}");
    let _ = writeln!(
        out,
        "  accepted = succeeded + failed + cancelled: {accepted} = {succeeded} + {failed} + {cancelled}"
    );
    let _ = writeln!(out, "  writes retried   {:>9}", get(&acct.write_retried));

    if snap.sums.is_empty() && snap.hists.is_empty() {
        let _ = writeln!(out, "\n(no metrics were collected: telemetry is disabled)");
        return out;
    }
    if let Some(h) = snap.hist("otelconc.demo.event.duration", &[("demo.outcome", "ok")]) {
        let q = |p| h.quantile(p).map_or("-".to_owned(), dur);
        let _ = writeln!(
            out,
            "\n== end-to-end latency of written events: p50 {}  p90 {}  p99 {}  max {}",
            q(0.5),
            q(0.9),
            q(0.99),
            h.max.map_or("-".to_owned(), dur)
        );
        out.push_str(&bar_chart(&h, 40));
    }
    for prim in PRIMITIVES {
        out.push_str(&primitive(snap, prim, secs));
    }
    out
}

/// The block of one primitive: per instance, every counter by its closed attributes,
/// every histogram's count, p50 and p99, and every gauge's peak.
fn primitive(snap: &Snapshot, prim: &str, secs: f64) -> String {
    let prefix = format!("otelconc.{prim}.");
    let mut out = String::new();
    let specs: Vec<_> = names::instruments()
        .filter(|i| i.name.starts_with(&prefix))
        .collect();
    // Busiest first: the sum of an instance's counters.
    let activity = |instance: &str| -> f64 {
        specs
            .iter()
            .filter(|s| {
                matches!(
                    s.kind,
                    InstrumentKind::Counter | InstrumentKind::ObservableCounter
                )
            })
            .map(|s| snap.total(s.name, &[(names::ATTR_NAME, instance)]))
            .sum()
    };
    let mut instances = snap.values_of(&prefix, names::ATTR_NAME);
    instances.sort_by(|a, b| activity(b).total_cmp(&activity(a)).then(a.cmp(b)));
    if instances.len() > MAX_INSTANCES {
        let _ = writeln!(
            out,
            "\n== {prim}: {} instances; the {MAX_INSTANCES} busiest",
            instances.len()
        );
    }
    for instance in instances.into_iter().take(MAX_INSTANCES) {
        let _ = writeln!(out, "\n== {prim} \"{instance}\"");
        let me = [(names::ATTR_NAME, instance.as_str())];
        for spec in &specs {
            let measure = spec.name.trim_start_matches(&prefix);
            match spec.kind {
                InstrumentKind::Counter | InstrumentKind::ObservableCounter => {
                    let total = snap.total(spec.name, &me);
                    if total == 0.0 {
                        continue;
                    }
                    // Seconds (busy time) keep two decimals; counts are whole.
                    let prec = if spec.unit == "s" { 2 } else { 0 };
                    let by = breakdown(snap, spec.name, &instance, prec);
                    let _ = writeln!(
                        out,
                        "  {measure:<22} {total:>10.prec$}  {:>9.prec$}/s  {by}",
                        total / secs
                    );
                }
                InstrumentKind::Histogram => {
                    let Some(h) = snap.hist(spec.name, &me) else {
                        continue;
                    };
                    if h.count == 0 {
                        continue;
                    }
                    let q = |p| match h.quantile(p) {
                        Some(v) if spec.unit == "s" => dur(v),
                        Some(v) => format!("{v:.1}"),
                        None => "-".to_owned(),
                    };
                    let _ = writeln!(
                        out,
                        "  {measure:<22} {:>10}  p50 {:>9}  p99 {:>9}",
                        h.count,
                        q(0.5),
                        q(0.99)
                    );
                }
                _ => {
                    if let Some(peak) = snap.peak(spec.name, &me) {
                        let peak = if spec.unit == "s" {
                            dur(peak)
                        } else {
                            format!("{peak:.0}")
                        };
                        let _ = writeln!(out, "  {measure:<22} peak {peak:>9}");
                    }
                }
            }
        }
        out.push_str(&queues(snap, &specs, &prefix, &instance, secs));
    }
    out
}

/// Saturation and backlog of every queue of one instance (per stage for a pipeline):
/// the peak size against the capacity, the peak age of the oldest item queued, and the
/// workers' utilization (busy time over the window and the worker limit).
fn queues(
    snap: &Snapshot,
    specs: &[&names::InstrumentSpec],
    prefix: &str,
    instance: &str,
    secs: f64,
) -> String {
    let mut out = String::new();
    let stages = snap.values_of(prefix, names::pipeline::ATTR_STAGE);
    let parts: Vec<Option<&str>> = if stages.is_empty() {
        vec![None]
    } else {
        stages.iter().map(|s| Some(s.as_str())).collect()
    };
    for part in parts {
        let mut me = vec![(names::ATTR_NAME, instance)];
        if let Some(stage) = part {
            me.push((names::pipeline::ATTR_STAGE, stage));
        }
        let label = part.map_or(String::new(), |s| format!(" [{s}]"));
        for size in specs.iter().filter(|s| s.name.ends_with(".size")) {
            let base = size.name.trim_end_matches("size");
            let (Some(peak), Some(cap)) = (
                snap.peak(size.name, &me),
                snap.peak(&format!("{base}capacity"), &me),
            ) else {
                continue;
            };
            let age = snap
                .peak(&format!("{base}oldest.age"), &me)
                .map_or("-".to_owned(), dur);
            let queue = base.trim_start_matches(prefix).trim_end_matches('.');
            let queue = if queue.is_empty() { "queue" } else { queue };
            let _ = writeln!(
                out,
                "  saturation{label} {queue}: peak {peak:.0}/{cap:.0} ({:.0}%), oldest item peak {age}",
                100.0 * peak / cap.max(1.0)
            );
        }
        for busy in specs.iter().filter(|s| s.name.ends_with(".busy.time")) {
            let base = busy.name.trim_end_matches("busy.time");
            let limit = snap
                .peak(&format!("{base}worker.limit"), &me)
                .or_else(|| snap.peak(&format!("{prefix}worker.limit"), &me));
            let time = snap.total(busy.name, &me);
            if let Some(limit) = limit.filter(|l| *l > 0.0) {
                let _ = writeln!(
                    out,
                    "  utilization{label}: {:.0}% (busy {time:.2} s over {secs:.2} s x {limit:.0} workers)",
                    100.0 * time / (secs * limit)
                );
            }
        }
    }
    out
}

/// `outcome=ok 10, outcome=full 2`: a counter's points of one instance by their other
/// attributes, with `prec` decimals.
fn breakdown(snap: &Snapshot, metric: &str, instance: &str, prec: usize) -> String {
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    for (attrs, v) in snap.sums.get(metric).into_iter().flatten() {
        if !attrs
            .iter()
            .any(|(k, val)| k == names::ATTR_NAME && val == instance)
        {
            continue;
        }
        let label: Vec<String> = attrs
            .iter()
            .filter(|(k, _)| k != names::ATTR_NAME)
            .map(|(k, v)| {
                // Our own keys by their last part; OpenTelemetry's in full.
                let short = match k.strip_prefix("otelconc.") {
                    Some(_) => k.rsplit('.').next().unwrap_or(k),
                    None => k.as_str(),
                };
                format!("{short}={v}")
            })
            .collect();
        *by.entry(label.join(",")).or_default() += v;
    }
    if by.len() <= 1 && by.keys().all(String::is_empty) {
        return String::new();
    }
    by.iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {v:.prec$}"))
        .collect::<Vec<_>>()
        .join(", ")
}
