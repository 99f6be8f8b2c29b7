//! The end-of-run summary, computed from the same metrics the exporter sends.
//!
//! [`SummaryReader`] is a second metric exporter on the application's meter provider,
//! beside the OTLP (or file) one: the SDK aggregates once and hands both the same data,
//! so what the screen says is what the collector received. It keeps the latest
//! cumulative snapshot, and the peak of every gauge and up-down counter across
//! collections (queue depths, busy workers) for the "peak" columns.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

/// Attributes of one data point, as sorted (key, value) strings.
pub(crate) type Attrs = Vec<(String, String)>;

/// One histogram data point.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hist {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) bounds: Vec<f64>,
    pub(crate) counts: Vec<u64>,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl Hist {
    /// The `q` quantile, interpolated inside its bucket (clamped to the observed
    /// min and max).
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = q * self.count as f64;
        let mut seen = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if seen + c as f64 >= target {
                let lo = if i == 0 {
                    self.min.unwrap_or(0.0)
                } else {
                    self.bounds[i - 1]
                };
                let hi = self.bounds.get(i).copied().or(self.max).unwrap_or(lo);
                let frac = ((target - seen) / c as f64).clamp(0.0, 1.0);
                let v = lo + (hi - lo) * frac;
                let v = self.min.map_or(v, |m| v.max(m));
                return Some(self.max.map_or(v, |m| v.min(m)));
            }
            seen += c as f64;
        }
        self.max
    }
}

/// The data points of one metric, by their attributes.
pub(crate) type Series<V> = BTreeMap<Attrs, V>;

/// Every collection so far, flattened: metric name -> data points.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) sums: BTreeMap<String, Series<f64>>,
    pub(crate) gauges: BTreeMap<String, Series<f64>>,
    pub(crate) hists: BTreeMap<String, Series<Hist>>,
    /// Highest value seen across collections, per gauge / up-down counter point.
    pub(crate) peaks: BTreeMap<(String, Attrs), f64>,
}

fn attrs<'a>(it: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attrs {
    let mut v: Attrs = it
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    v.sort();
    v
}

impl Snapshot {
    /// Takes in one collection. A series (metric and attributes) keeps the last value it
    /// was seen with: a primitive that was dropped stops reporting, and its final counts
    /// must not vanish from the summary.
    fn absorb(&mut self, rm: &ResourceMetrics) {
        for m in rm.scope_metrics().flat_map(|s| s.metrics()) {
            let name = m.name().to_owned();
            match m.data() {
                AggregatedMetrics::F64(d) => self.absorb_data(&name, d, |v| v),
                AggregatedMetrics::U64(d) => self.absorb_data(&name, d, |v| v as f64),
                AggregatedMetrics::I64(d) => self.absorb_data(&name, d, |v| v as f64),
            }
        }
    }

    fn absorb_data<T: Copy>(&mut self, name: &str, d: &MetricData<T>, f: fn(T) -> f64) {
        match d {
            MetricData::Sum(s) => {
                let pts: Vec<(Attrs, f64)> = s
                    .data_points()
                    .map(|p| (attrs(p.attributes()), f(p.value())))
                    .collect();
                if !s.is_monotonic() {
                    self.note_peaks(name, &pts);
                }
                // A point seen again replaces the earlier one.
                self.sums.entry(name.to_owned()).or_default().extend(pts);
            }
            MetricData::Gauge(g) => {
                let pts: Vec<(Attrs, f64)> = g
                    .data_points()
                    .map(|p| (attrs(p.attributes()), f(p.value())))
                    .collect();
                self.note_peaks(name, &pts);
                self.gauges.entry(name.to_owned()).or_default().extend(pts);
            }
            MetricData::Histogram(h) => {
                let pts = h
                    .data_points()
                    .map(|p| {
                        (
                            attrs(p.attributes()),
                            Hist {
                                count: p.count(),
                                sum: f(p.sum()),
                                bounds: p.bounds().collect(),
                                counts: p.bucket_counts().collect(),
                                min: p.min().map(f),
                                max: p.max().map(f),
                            },
                        )
                    })
                    .collect::<Vec<_>>();
                self.hists.entry(name.to_owned()).or_default().extend(pts);
            }
            MetricData::ExponentialHistogram(_) => {}
        }
    }

    fn note_peaks(&mut self, name: &str, pts: &[(Attrs, f64)]) {
        for (a, v) in pts {
            let e = self.peaks.entry((name.to_owned(), a.clone())).or_insert(*v);
            *e = e.max(*v);
        }
    }

    /// Sum of the counter `name` over the points matching every `(key, value)` in `want`.
    pub(crate) fn total(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.sums
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(a, _)| matches(a, want))
            .map(|(_, v)| v)
            .sum()
    }

    /// The histogram `name` merged over the points matching `want`.
    pub(crate) fn hist(&self, name: &str, want: &[(&str, &str)]) -> Option<Hist> {
        let mut out: Option<Hist> = None;
        for (_, h) in self
            .hists
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(a, _)| matches(a, want))
        {
            match &mut out {
                None => out = Some(h.clone()),
                Some(o) if o.bounds == h.bounds => {
                    o.count += h.count;
                    o.sum += h.sum;
                    for (a, b) in o.counts.iter_mut().zip(&h.counts) {
                        *a += b;
                    }
                    o.min = match (o.min, h.min) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    o.max = match (o.max, h.max) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                Some(_) => {}
            }
        }
        out
    }

    /// The highest value the gauge or up-down counter `name` reached, over the points
    /// matching `want`.
    pub(crate) fn peak(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.peaks
            .iter()
            .filter(|((n, a), _)| n == name && matches(a, want))
            .map(|(_, v)| *v)
            .reduce(f64::max)
    }

    /// Every value of attribute `key` among the points of metrics whose name starts
    /// with `prefix`.
    pub(crate) fn values_of(&self, prefix: &str, key: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .sums
            .iter()
            .map(|(n, p)| (n, p.keys().collect::<Vec<_>>()))
            .chain(self.gauges.iter().map(|(n, p)| (n, p.keys().collect())))
            .chain(self.hists.iter().map(|(n, p)| (n, p.keys().collect())))
            .filter(|(n, _)| n.starts_with(prefix))
            .flat_map(|(_, attrs)| attrs)
            .flat_map(|a| a.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn matches(a: &Attrs, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| a.iter().any(|(ak, av)| ak == k && av == v))
}

/// A metric exporter that keeps what it is sent, for the summary.
#[derive(Debug, Clone, Default)]
pub(crate) struct SummaryReader {
    state: Arc<Mutex<Snapshot>>,
}

impl SummaryReader {
    /// The latest snapshot (with peaks over every collection so far).
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl PushMetricExporter for SummaryReader {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if let Ok(mut s) = self.state.lock() {
            s.absorb(metrics);
        }
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Seconds as a short human duration.
pub(crate) fn dur(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// A horizontal bar chart of a latency histogram: one row per non-empty bucket.
pub(crate) fn bar_chart(h: &Hist, width: usize) -> String {
    let mut out = String::new();
    let peak = h.counts.iter().copied().max().unwrap_or(0).max(1);
    let first = h.counts.iter().position(|&c| c > 0);
    let last = h.counts.iter().rposition(|&c| c > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return "  (no data)\n".to_owned();
    };
    for i in first..=last {
        let label = match (i.checked_sub(1).map(|j| h.bounds[j]), h.bounds.get(i)) {
            (None, Some(hi)) => format!("≤ {}", dur(*hi)),
            (Some(lo), Some(hi)) => format!("{}–{}", dur(lo), dur(*hi)),
            (Some(lo), None) => format!("> {}", dur(lo)),
            (None, None) => "all".to_owned(),
        };
        let c = h.counts[i];
        let n = (c as f64 / peak as f64 * width as f64).ceil() as usize;
        let _ = writeln!(
            out,
            "  {label:>18} │{:<width$} {c}",
            "█".repeat(n),
            width = width
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = Hist {
            count: 100,
            sum: 0.0,
            bounds: vec![0.001, 0.01, 0.1],
            counts: vec![50, 40, 10, 0],
            min: Some(0.0005),
            max: Some(0.09),
        };
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 0.001).abs() < 1e-12, "{p50}");
        let p90 = h.quantile(0.9).unwrap();
        assert!((p90 - 0.01).abs() < 1e-12, "{p90}");
        let p99 = h.quantile(0.99).unwrap();
        assert!(p99 > 0.01 && p99 <= 0.09, "{p99}");
        assert_eq!(Hist::default().quantile(0.5), None);
    }

    #[test]
    fn bar_chart_has_a_row_per_bucket_between_first_and_last() {
        let h = Hist {
            count: 6,
            bounds: vec![0.001, 0.01, 0.1],
            counts: vec![0, 4, 0, 2],
            ..Hist::default()
        };
        let chart = bar_chart(&h, 10);
        assert_eq!(chart.lines().count(), 3, "{chart}");
        assert!(chart.contains("> 100.0 ms"), "{chart}");
    }
}
