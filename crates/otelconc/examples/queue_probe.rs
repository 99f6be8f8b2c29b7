//! One-off measurements behind the queue evaluation in `src/channel/queue.rs`:
//! crossfire against async-channel for the CPU a parked receiver burns while idle,
//! delivery latency at low load, 1p1c time and CPU per message, and time per message
//! with 1 and 4 producers and consumers (with a third, prototype queue: `gated`).
//! Numbers depend on the machine; run them back to back and compare.
//!
//! `cargo run --release -p otelconc --example queue_probe [idle|latency|throughput|mpmc]...`
//! (all four when none is named). Run it under `taskset -c 0` to see one core.

use std::time::{Duration, Instant};

/// Process CPU time (user + system) so far, from `/proc/self/stat` (clock ticks).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((field(11) + field(12)) * 10)
}

/// A prototype of "fewer wake-ups": async-channel's queue (concurrent-queue) with
/// wake-ups gated on a count of parked waiters, one fence per send or receive (after the
/// push or pop, before reading the count) where async-channel takes three (two
/// notifications per send, one per receive, each behind a full fence), and no stream
/// notification. Bounded, MPMC, closes when the last sender leaves. Not cancel-safe
/// beyond what event-listener gives (a notified, dropped listener passes its
/// notification on); a measurement only.
mod gated {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering, fence};

    use concurrent_queue::{ConcurrentQueue, PopError, PushError};
    use crossbeam_utils::CachePadded;
    use event_listener::{Event, IntoNotification};

    struct Chan<T> {
        q: ConcurrentQueue<T>,
        recv_ev: Event,
        send_ev: Event,
        recv_wait: CachePadded<AtomicUsize>,
        send_wait: CachePadded<AtomicUsize>,
        senders: AtomicUsize,
    }

    /// Counts a parked waiter until dropped.
    struct Parked<'a>(&'a AtomicUsize);

    impl<'a> Parked<'a> {
        fn new(n: &'a AtomicUsize) -> Self {
            n.fetch_add(1, Ordering::SeqCst);
            Self(n)
        }
    }

    impl Drop for Parked<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn wake(ev: &Event, waiting: &AtomicUsize) {
        fence(Ordering::SeqCst);
        if waiting.load(Ordering::Relaxed) != 0 {
            ev.notify(1.additional().relaxed());
        }
    }

    pub(crate) struct Sender<T>(Arc<Chan<T>>);
    pub(crate) struct Receiver<T>(Arc<Chan<T>>);

    pub(crate) fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
        let c = Arc::new(Chan {
            q: ConcurrentQueue::bounded(cap),
            recv_ev: Event::new(),
            send_ev: Event::new(),
            recv_wait: CachePadded::new(AtomicUsize::new(0)),
            send_wait: CachePadded::new(AtomicUsize::new(0)),
            senders: AtomicUsize::new(1),
        });
        (Sender(c.clone()), Receiver(c))
    }

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            self.0.senders.fetch_add(1, Ordering::Relaxed);
            Self(self.0.clone())
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.0.q.close();
                self.0.recv_ev.notify(usize::MAX);
                self.0.send_ev.notify(usize::MAX);
            }
        }
    }

    impl<T> Clone for Receiver<T> {
        fn clone(&self) -> Self {
            Self(self.0.clone())
        }
    }

    impl<T> Sender<T> {
        pub(crate) async fn send(&self, mut v: T) -> Result<(), T> {
            let c = &*self.0;
            loop {
                match c.q.push(v) {
                    Ok(()) => {
                        wake(&c.recv_ev, &c.recv_wait);
                        return Ok(());
                    }
                    Err(PushError::Closed(x)) => return Err(x),
                    Err(PushError::Full(x)) => v = x,
                }
                let listener = c.send_ev.listen();
                let parked = Parked::new(&c.send_wait);
                match c.q.push(v) {
                    Ok(()) => {
                        drop(parked);
                        wake(&c.recv_ev, &c.recv_wait);
                        return Ok(());
                    }
                    Err(PushError::Closed(x)) => return Err(x),
                    Err(PushError::Full(x)) => v = x,
                }
                listener.await;
                drop(parked);
            }
        }
    }

    impl<T> Receiver<T> {
        pub(crate) async fn recv(&self) -> Option<T> {
            let c = &*self.0;
            loop {
                match c.q.pop() {
                    Ok(v) => {
                        wake(&c.send_ev, &c.send_wait);
                        return Some(v);
                    }
                    Err(PopError::Closed) => return None,
                    Err(PopError::Empty) => {}
                }
                let listener = c.recv_ev.listen();
                let parked = Parked::new(&c.recv_wait);
                match c.q.pop() {
                    Ok(v) => {
                        drop(parked);
                        wake(&c.send_ev, &c.send_wait);
                        return Some(v);
                    }
                    Err(PopError::Closed) => return None,
                    Err(PopError::Empty) => {}
                }
                listener.await;
                drop(parked);
            }
        }
    }
}

/// A receive that ends with `None` when the channel is closed and empty.
trait RecvOpt {
    fn recv_opt(&self) -> impl Future<Output = Option<u64>> + Send;
}

impl RecvOpt for async_channel::Receiver<u64> {
    async fn recv_opt(&self) -> Option<u64> {
        self.recv().await.ok()
    }
}

impl RecvOpt for crossfire::MAsyncRx<crossfire::mpmc::Array<u64>> {
    async fn recv_opt(&self) -> Option<u64> {
        self.recv().await.ok()
    }
}

/// Time per message, `p` producers and `c` consumers, capacity 1024, 2-worker runtime.
fn mpmc(name: &str, p: u64, c: u64) -> f64 {
    const N: u64 = 2_000_000;
    let rt = runtime();
    macro_rules! run {
        ($make:expr, $send:ident, $recv:ident) => {{
            rt.block_on(async {
                let (tx, rx) = $make;
                let t0 = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..p {
                    let tx = tx.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0..N / p {
                            let _ = tx.$send(i).await;
                        }
                        0u64
                    }));
                }
                drop(tx);
                for _ in 0..c {
                    let rx = rx.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut n = 0u64;
                        while rx.$recv().await.is_some() {
                            n += 1;
                        }
                        n
                    }));
                }
                drop(rx);
                let mut n = 0;
                for t in tasks {
                    n += t.await.unwrap();
                }
                assert_eq!(n, N / p * p);
                t0.elapsed().as_nanos() as f64 / n as f64
            })
        }};
    }
    match name {
        "async-channel" => {
            run!(async_channel::bounded::<u64>(1024), send, recv_opt)
        }
        "crossfire" => run!(crossfire::mpmc::bounded_async::<u64>(1024), send, recv_opt),
        _ => run!(gated::bounded::<u64>(1024), send, recv),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn idle() {
    for name in ["async-channel", "crossfire"] {
        let rt = runtime();
        let before = cpu();
        macro_rules! run {
            ($make:expr) => {{
                let (tx, rx) = $make;
                let t = tokio::spawn(async move { rx.recv().await.is_ok() });
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(tx);
                t
            }};
        }
        rt.block_on(async {
            let task = if name == "crossfire" {
                run!(crossfire::mpmc::bounded_async::<u64>(1024))
            } else {
                run!(async_channel::bounded::<u64>(1024))
            };
            assert!(!task.await.unwrap());
        });
        println!(
            "idle {name}: process CPU over 10 s with a parked receiver: {:?}",
            cpu() - before
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency() {
    const N: usize = 3000;
    for name in ["async-channel", "crossfire"] {
        let rt = runtime();
        macro_rules! run {
            ($make:expr, $tick:ident) => {{
                let (tx, rx) = $make;
                let r = tokio::spawn(async move {
                    let mut v = Vec::with_capacity(N);
                    while let Ok(t) = rx.recv().await {
                        v.push(t.elapsed());
                    }
                    v
                });
                for _ in 0..N {
                    $tick.tick().await;
                    tx.send(Instant::now()).await.unwrap();
                }
                drop(tx);
                r.await.unwrap()
            }};
        }
        let mut lat: Vec<Duration> = rt.block_on(async {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            if name == "crossfire" {
                run!(crossfire::mpmc::bounded_async::<Instant>(1024), tick)
            } else {
                run!(async_channel::bounded::<Instant>(1024), tick)
            }
        });
        lat.sort();
        println!(
            "latency {name}: 1 msg/ms, {N} msgs: p50 {:?} p99 {:?} max {:?}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
}

fn throughput() {
    const N: u64 = 2_000_000;
    for name in ["async-channel", "crossfire"] {
        for cap in [1024usize, 16, 1] {
            let rt = runtime();
            let (c0, t0) = (cpu(), Instant::now());
            macro_rules! run {
                ($make:expr) => {{
                    let (tx, rx) = $make;
                    let p = tokio::spawn(async move {
                        for i in 0..N {
                            tx.send(i).await.unwrap();
                        }
                    });
                    let mut n = 0;
                    while rx.recv().await.is_ok() {
                        n += 1;
                    }
                    p.await.unwrap();
                    assert_eq!(n, N);
                }};
            }
            rt.block_on(async {
                if name == "crossfire" {
                    run!(crossfire::mpmc::bounded_async::<u64>(cap))
                } else {
                    run!(async_channel::bounded::<u64>(cap))
                }
            });
            let (wall, cpu_used) = (t0.elapsed(), cpu() - c0);
            println!(
                "1p1c {name} cap {cap}: {:.1} ns/msg, CPU {:.1} ns/msg",
                wall.as_nanos() as f64 / N as f64,
                cpu_used.as_nanos() as f64 / N as f64
            );
        }
    }
}

fn mpmc_all() {
    for (p, c) in [(1, 1), (4, 4)] {
        for name in ["async-channel", "crossfire", "gated"] {
            println!("{p}p{c}c {name}: {:.1} ns/msg", mpmc(name, p, c));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = args.is_empty();
    let want = |s: &str| all || args.iter().any(|a| a == s);
    if want("throughput") {
        throughput();
    }
    if want("mpmc") {
        mpmc_all();
    }
    if want("latency") {
        latency();
    }
    if want("idle") {
        idle();
    }
}
