//! Live instances that share a name share their observable instruments: what each
//! reports at collection time adds up (or, for ratios and maxima, averages or takes
//! the largest), counters stay monotonic while any instance of the name lives, and
//! nothing is left reporting once the last one is dropped.

use std::time::Duration;

use otelconc::channel;
use otelconc::pool::WorkerPool;
use otelconc::rate::{Rate, RateLimiter};
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::names::semaphore::ATTR_PERMIT_STATE;
use otelconc::telemetry::names::{self, ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};
use tokio::sync::oneshot;

fn semaphore(tt: &TestTelemetry, name: &'static str, permits: u32) -> Semaphore {
    Semaphore::builder(name, permits)
        .telemetry(tt.telemetry())
        .build()
        .expect("valid")
}

fn limiter(tt: &TestTelemetry, name: &'static str) -> RateLimiter {
    RateLimiter::builder(name, Rate::per_second(1e9).burst(1_000).expect("valid"))
        .telemetry(tt.telemetry())
        .build()
}

#[tokio::test]
async fn same_named_semaphores_add_up_instead_of_overwriting_each_other() {
    let tt = TestTelemetry::new();
    let a = semaphore(&tt, "db", 3);
    let b = semaphore(&tt, "db", 4);
    let other = semaphore(&tt, "cache", 10);
    let _a1 = a.try_acquire_many(2).expect("free");
    let _b1 = b.try_acquire().expect("free");
    let _o1 = other.try_acquire_many(5).expect("free");

    let m = tt.metrics();
    let db = [attr(ATTR_NAME, "db")];
    let state = |s: &'static str| [db[0].clone(), attr(ATTR_PERMIT_STATE, s)];
    assert_eq!(m.value("otelconc.semaphore.permit.limit", &db), Some(7.0));
    assert_eq!(
        m.value("otelconc.semaphore.permit.count", &state("used")),
        Some(3.0)
    );
    assert_eq!(
        m.value("otelconc.semaphore.permit.count", &state("free")),
        Some(4.0)
    );
    assert_eq!(m.value("otelconc.semaphore.permits", &db), Some(3.0));
    assert_eq!(m.value("otelconc.semaphore.acquisitions", &db), Some(2.0));
    // One data point per attribute set, not one per instance.
    assert_eq!(m.attribute_sets("otelconc.semaphore.permit.limit").len(), 2);
    let cache = [attr(ATTR_NAME, "cache")];
    assert_eq!(
        m.value("otelconc.semaphore.permit.limit", &cache),
        Some(10.0)
    );
}

#[tokio::test]
async fn a_counter_stays_monotonic_while_any_instance_of_its_name_lives() {
    let tt = TestTelemetry::new();
    let api = [attr(ATTR_NAME, "api"), attr(ATTR_OUTCOME, "ok")];
    let admitted = |tt: &TestTelemetry| tt.metrics().value("otelconc.rate.acquisitions", &api);

    let a = limiter(&tt, "api");
    let b = limiter(&tt, "api");
    for _ in 0..5 {
        a.try_acquire().expect("unlimited");
    }
    for _ in 0..2 {
        b.try_acquire().expect("unlimited");
    }
    assert_eq!(admitted(&tt), Some(7.0));

    // `a` goes: its count, as last collected, stays in the total.
    drop(a);
    assert_eq!(admitted(&tt), Some(7.0));
    b.try_acquire().expect("unlimited");
    assert_eq!(admitted(&tt), Some(8.0));

    // The last one goes: the counter stops reporting, as a single instance's does.
    drop(b);
    assert_eq!(admitted(&tt), None);

    // A new instance of the name starts afresh, and a rebuilt instance reuses the
    // instrument: still one data point per outcome (ok, two refusals, cancelled).
    let c = limiter(&tt, "api");
    c.try_acquire().expect("unlimited");
    assert_eq!(admitted(&tt), Some(1.0));
    assert_eq!(
        tt.metrics()
            .attribute_sets("otelconc.rate.acquisitions")
            .len(),
        4
    );
}

#[tokio::test]
async fn same_named_channels_add_their_depth_and_their_messages() {
    let tt = TestTelemetry::new();
    let (tx1, _rx1) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let (tx2, _rx2) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(8);
    for i in 0..2 {
        tx1.send(i).await.expect("open");
    }
    for i in 0..3 {
        tx2.send(i).await.expect("open");
    }
    let m = tt.metrics();
    let orders = [attr(ATTR_NAME, "orders")];
    assert_eq!(m.value("otelconc.channel.size", &orders), Some(5.0));
    assert_eq!(m.value("otelconc.channel.capacity", &orders), Some(12.0));
    let sent_ok = [attr(ATTR_NAME, "orders"), attr(ATTR_OUTCOME, "ok")];
    assert_eq!(m.value("otelconc.channel.sent", &sent_ok), Some(5.0));
}

/// The oldest job's age is a maximum: same-named pools report their largest, while
/// levels (workers, busy) add up.
#[tokio::test]
async fn same_named_pools_add_their_workers_and_keep_the_oldest_job() {
    let tt = TestTelemetry::new();
    let pool = |workers| {
        WorkerPool::builder("cpu")
            .workers(workers)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid")
    };
    let busy_pool = pool(1);
    let idle_pool = pool(3);
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    busy_pool
        .submit(move || async move {
            let _ = started_tx.send(());
            let _ = release_rx.await;
        })
        .await
        .expect("accepted");
    started_rx.await.expect("job started");

    let cpu = [attr(ATTR_NAME, "cpu")];
    let m = tt.metrics();
    let busy = [
        attr(ATTR_NAME, "cpu"),
        attr(names::ATTR_WORKER_STATE, "busy"),
    ];
    let idle = [
        attr(ATTR_NAME, "cpu"),
        attr(names::ATTR_WORKER_STATE, "idle"),
    ];
    assert_eq!(m.value("otelconc.pool.worker.limit", &cpu), Some(4.0));
    assert_eq!(m.value("otelconc.pool.worker.count", &busy), Some(1.0));
    assert_eq!(m.value("otelconc.pool.worker.count", &idle), Some(3.0));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let age = tt
        .metrics()
        .value("otelconc.pool.job.max_age", &cpu)
        .expect("reported");
    assert!(age >= 0.02, "the busy pool's job is the oldest: {age}");

    let _ = release_tx.send(());
    let _ = busy_pool.graceful_shutdown().await;
    let _ = idle_pool.graceful_shutdown().await;
}

/// A collection reads each instance through a weak reference; when the instance's last
/// handle goes while it is being read, the instance is dropped on the collecting thread,
/// inside the read. That must neither deadlock nor lose the instrument.
#[test]
fn collections_racing_the_last_drop_of_an_instance_do_not_deadlock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let tt = Arc::new(TestTelemetry::new());
    let done = Arc::new(AtomicBool::new(false));
    let collector = {
        let (tt, done) = (tt.clone(), done.clone());
        std::thread::spawn(move || {
            let mut collections = 0u32;
            while !done.load(Ordering::Relaxed) {
                let _ = tt.metrics();
                collections += 1;
            }
            collections
        })
    };
    let (finished_tx, finished_rx) = std::sync::mpsc::channel();
    let churn = {
        let tt = tt.clone();
        std::thread::spawn(move || {
            for _ in 0..20_000 {
                drop(semaphore(&tt, "churn", 1));
            }
            let _ = finished_tx.send(());
        })
    };
    finished_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a collection deadlocked with an instance dropped inside it");
    done.store(true, Ordering::Relaxed);
    churn.join().expect("churn");
    assert!(collector.join().expect("collector") > 0);
    let kept = semaphore(&tt, "churn", 2);
    let churn_name = [attr(ATTR_NAME, "churn")];
    assert_eq!(
        tt.metrics()
            .value("otelconc.semaphore.permit.limit", &churn_name),
        Some(2.0)
    );
    drop(kept);
}
