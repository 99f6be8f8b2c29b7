//! Failure injection and simulated latency, reproducible from the seed.
//!
//! Every decision is a pure function of (seed, event sequence number, what is being
//! decided), so a run with the same `--seed` injects the same faults into the same
//! events whatever the scheduling.

/// The fault rates of a run and the seed they are drawn from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Faults {
    seed: u64,
    rate: f64,
}

const MALFORMED: u64 = 1;
const LOOKUP: u64 = 2;
const PANIC: u64 = 3;
const SLOW_WRITE: u64 = 4;
const LATENCY: u64 = 5;

impl Faults {
    /// `rate` is the probability of each kind of fault per event (per lookup for
    /// lookups, per attempt for slow writes).
    pub(crate) fn new(seed: u64, rate: f64) -> Self {
        Self { seed, rate }
    }

    /// A uniformly distributed 64-bit draw for (event, salt).
    pub(crate) fn draw(&self, seq: u64, salt: u64) -> u64 {
        splitmix64(self.seed ^ splitmix64(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt))
    }

    fn unit(&self, seq: u64, salt: u64) -> f64 {
        (self.draw(seq, salt) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn hit(&self, seq: u64, salt: u64) -> bool {
        self.unit(seq, salt) < self.rate
    }

    /// The event's line is broken JSON.
    pub(crate) fn malformed(&self, seq: u64) -> bool {
        self.hit(seq, MALFORMED)
    }

    /// Downstream lookup `which` (0..3) of the event fails.
    pub(crate) fn lookup_fails(&self, seq: u64, which: u64) -> bool {
        self.hit(seq, LOOKUP * 16 + which)
    }

    /// The event's CPU job panics.
    pub(crate) fn job_panics(&self, seq: u64) -> bool {
        self.hit(seq, PANIC)
    }

    /// Sink write `attempt` (0 or 1) of the event stalls past the write timeout.
    pub(crate) fn write_stalls(&self, seq: u64, attempt: u64) -> bool {
        // Stalls cluster: a stalled first attempt makes the retry stall a third of the
        // time, so some events exhaust their retry and show up as write timeouts.
        if attempt == 0 {
            self.hit(seq, SLOW_WRITE * 16)
        } else {
            self.unit(seq, SLOW_WRITE * 16 + 1) < 0.33
        }
    }

    /// Latency of a simulated downstream call, in seconds: log-normal with the given
    /// median and shape, the usual shape of RPC latencies (a long right tail).
    pub(crate) fn latency(&self, seq: u64, which: u64, median_s: f64, sigma: f64) -> f64 {
        // Box-Muller from two independent uniforms.
        let u1 = self
            .unit(seq, LATENCY * 64 + which * 2)
            .max(f64::MIN_POSITIVE);
        let u2 = self.unit(seq, LATENCY * 64 + which * 2 + 1);
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median_s * (sigma * z).exp()
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::Faults;

    #[test]
    fn rates_are_honoured_and_zero_means_none() {
        let f = Faults::new(11, 0.02);
        let n = 100_000;
        let hits = (0..n).filter(|&s| f.job_panics(s)).count() as f64 / n as f64;
        assert!((0.015..0.025).contains(&hits), "{hits}");
        let none = Faults::new(11, 0.0);
        assert!(
            (0..n).all(|s| !none.job_panics(s) && !none.malformed(s) && !none.write_stalls(s, 0))
        );
    }

    #[test]
    fn latency_median_is_close_to_the_asked_one() {
        let f = Faults::new(3, 0.0);
        let mut v: Vec<f64> = (0..20_001).map(|s| f.latency(s, 0, 0.002, 0.6)).collect();
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        assert!((0.0018..0.0022).contains(&median), "{median}");
        assert!(v[v.len() * 99 / 100] > 3.0 * median, "a long right tail");
    }
}
