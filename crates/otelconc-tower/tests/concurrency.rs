//! The concurrency layer with a real server and client over loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{Rng, TestTelemetry, attr};
use otelconc_tower::{ConcurrencyLimitLayer, ConcurrencyLimited};
use tower::{Service, ServiceBuilder, ServiceExt};

const LIMIT: u32 = 4;

/// In-flight handler count and its high-water mark, seen by the server.
#[derive(Default)]
struct InFlight {
    now: AtomicU32,
    high: AtomicU32,
    served: AtomicU64,
}

impl InFlight {
    fn enter(&self) -> u32 {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.high.fetch_max(n, Ordering::SeqCst);
        n
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_server_never_runs_more_handlers_than_the_limit() {
    let sem = Semaphore::new("server-limit", LIMIT).expect("permits");
    let seen = Arc::new(InFlight::default());
    // The handlers hold until the limit is reached once, so that every other request
    // arrives while the server is full.
    let (open, gate) = tokio::sync::watch::channel(false);
    let app = Router::new()
        .route(
            "/work",
            get({
                let seen = seen.clone();
                move || {
                    let seen = seen.clone();
                    let mut gate = gate.clone();
                    let open = open.clone();
                    async move {
                        if seen.enter() == LIMIT {
                            let _ = open.send(true);
                        }
                        let _ = gate.wait_for(|o| *o).await;
                        tokio::task::yield_now().await;
                        seen.leave();
                        "done"
                    }
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                // axum routes cannot fail; in wait mode the layer never refuses anyway.
                .layer(HandleErrorLayer::new(
                    |e: otelconc_tower::BoxError| async move {
                        (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                    },
                ))
                .layer(ConcurrencyLimitLayer::new(sem.clone())),
        );
    let addr = support::serve(app).await;
    let client = support::client();
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let res = client
                    .ready()
                    .await
                    .expect("ready")
                    .call(support::get(addr, "/work"))
                    .await
                    .expect("a response");
                res.status()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.expect("the call task"), 200);
    }
    assert_eq!(seen.served.load(Ordering::SeqCst), 40);
    assert_eq!(seen.high.load(Ordering::SeqCst), LIMIT, "high-water mark");
    assert_eq!(sem.available_permits(), LIMIT);
}

/// What one random caller did with its service and response future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Polled `poll_ready` once (maybe queued), then dropped the service.
    DroppedWhilePolling,
    /// Got a ready service (a permit reserved), dropped it without `call`.
    DroppedReady,
    /// Called, then dropped the response future before polling it.
    DroppedUnpolled,
    /// Called, then dropped the response future mid-flight.
    DroppedInFlight,
    /// Called and got the response.
    Completed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_drops_of_services_and_response_futures_return_every_permit() {
    let seen = Arc::new(InFlight::default());
    let app = Router::new().route(
        "/slow",
        get({
            let seen = seen.clone();
            move || {
                let seen = seen.clone();
                async move {
                    seen.enter();
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    seen.leave();
                    "ok"
                }
            }
        }),
    );
    let addr = support::serve(app).await;

    let sem = Semaphore::new("client-limit", LIMIT).expect("permits");
    let plain = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(sem.clone()))
        .service(support::client());
    // Weighted requests (1 to 3 permits, by a header) share the same semaphore.
    let weighted = ServiceBuilder::new()
        .layer(
            ConcurrencyLimitLayer::new(sem.clone()).weight(|req: &http::Request<String>| {
                req.headers()
                    .get("x-weight")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1)
            }),
        )
        .service(support::client());

    let mut rng = Rng::new(0x5eed_0016);
    let fates = Arc::new(std::sync::Mutex::new(Vec::new()));
    let low = Arc::new(AtomicU32::new(LIMIT));
    for _batch in 0..50 {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let fate = match rng.below(5) {
                0 => Fate::DroppedWhilePolling,
                1 => Fate::DroppedReady,
                2 => Fate::DroppedUnpolled,
                3 => Fate::DroppedInFlight,
                _ => Fate::Completed,
            };
            let in_flight_polls = rng.below(4);
            let weight = 1 + rng.below(3);
            let use_weighted = rng.chance(2);
            let mut req = support::get(addr, "/slow");
            req.headers_mut()
                .insert("x-weight", http::HeaderValue::from(weight));
            let (plain, weighted) = (plain.clone(), weighted.clone());
            let (fates, low, sem) = (fates.clone(), low.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let fut = if use_weighted {
                    run(weighted, req, fate, in_flight_polls, &sem, &low).await
                } else {
                    run(plain, req, fate, in_flight_polls, &sem, &low).await
                };
                fates.lock().expect("fates").push(fut);
            }));
        }
        for t in tasks {
            t.await.expect("a caller task");
        }
    }
    let fates = fates.lock().expect("fates").clone();
    assert_eq!(fates.len(), 1000);
    for fate in [
        Fate::DroppedWhilePolling,
        Fate::DroppedReady,
        Fate::DroppedUnpolled,
        Fate::DroppedInFlight,
        Fate::Completed,
    ] {
        assert!(fates.contains(&fate), "no caller ended as {fate:?}");
    }
    assert!(
        low.load(Ordering::SeqCst) < LIMIT,
        "permits were really taken"
    );
    assert_eq!(sem.available_permits(), LIMIT, "every permit came back");
    assert_eq!(sem.total_permits(), LIMIT);
    assert!(seen.served.load(Ordering::SeqCst) > 0);
}

/// Does what `fate` says with `svc` and a request; returns what really happened (a
/// response may come before the planned drop).
async fn run<S>(
    mut svc: S,
    req: http::Request<String>,
    fate: Fate,
    in_flight_polls: u64,
    sem: &Semaphore,
    low: &AtomicU32,
) -> Fate
where
    S: Service<
            http::Request<String>,
            Response = http::Response<hyper::body::Incoming>,
            Error = otelconc_tower::BoxError,
        >,
{
    if fate == Fate::DroppedWhilePolling {
        let _ = futures::poll!(svc.ready());
        low.fetch_min(sem.available_permits(), Ordering::SeqCst);
        return fate;
    }
    let ready = svc.ready().await.expect("ready");
    low.fetch_min(sem.available_permits(), Ordering::SeqCst);
    if fate == Fate::DroppedReady {
        return fate;
    }
    let mut fut = Box::pin(ready.call(req));
    match fate {
        Fate::DroppedUnpolled => fate,
        Fate::DroppedInFlight => {
            for _ in 0..in_flight_polls {
                if futures::poll!(fut.as_mut()).is_ready() {
                    return Fate::Completed;
                }
                low.fetch_min(sem.available_permits(), Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            fate
        }
        _ => {
            let res = tokio::time::timeout(Duration::from_secs(30), fut)
                .await
                .expect("no request hangs")
                .expect("a response");
            assert_eq!(res.status(), 200);
            Fate::Completed
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_bounded_wait_gives_up_after_max_wait_and_leaves_the_queue() {
    let sem = Semaphore::new("bounded", 1).expect("permits");
    let held = sem.try_acquire_owned().expect("the only permit");
    let mut svc = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(sem.clone()).max_wait(Duration::from_millis(50)))
        .service_fn(|()| async { Ok::<_, std::convert::Infallible>("ran") });
    let start = tokio::time::Instant::now();
    let err = svc
        .ready()
        .await
        .expect("ready: the refusal is the call's")
        .call(())
        .await
        .expect_err("no permit within 50 ms");
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert!(err.is::<otelconc_tower::ConcurrencyLimited>(), "{err}");
    // The timed-out wait left the queue: a release goes to the next caller at once.
    drop(held);
    assert_eq!(sem.available_permits(), 1);
    let out = svc.ready().await.expect("ready").call(()).await;
    assert_eq!(out.expect("a permit"), "ran");
}

#[tokio::test]
async fn a_clone_does_not_share_the_permit_its_original_reserved() {
    let sem = Semaphore::new("clones", 2).expect("permits");
    let mut svc = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(sem.clone()))
        .service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) });
    svc.ready().await.expect("ready");
    assert_eq!(sem.available_permits(), 1);
    let mut clone = svc.clone();
    assert_eq!(sem.available_permits(), 1, "cloning takes nothing");
    clone.ready().await.expect("ready");
    assert_eq!(sem.available_permits(), 0, "the clone took its own");
    drop(svc);
    assert_eq!(
        sem.available_permits(),
        1,
        "dropping a ready service gives back"
    );
    clone.call(()).await.expect("the call");
    assert_eq!(sem.available_permits(), 2);
}

#[tokio::test]
async fn a_weight_above_the_total_fails_at_once() {
    let sem = Semaphore::new("weights", 3).expect("permits");
    let mut svc = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(sem.clone()).weight(|n: &u32| *n))
        .service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(4)
        .await
        .expect_err("4 > 3");
    let e = err
        .downcast_ref::<otelconc::semaphore::ExceedsTotal>()
        .expect("ExceedsTotal");
    assert_eq!((e.requested, e.total), (4, 3));
    assert_eq!(
        svc.ready()
            .await
            .expect("ready")
            .call(3)
            .await
            .expect("fits"),
        3
    );
    assert_eq!(sem.available_permits(), 3);
}

#[tokio::test]
async fn the_semaphore_counts_a_refusal_only_when_the_layer_refuses() {
    let tt = TestTelemetry::new();
    let sem = Semaphore::builder("counted", 1)
        .telemetry(tt.telemetry())
        .build()
        .expect("permits");
    let name = attr(ATTR_NAME, "counted");
    let refused = |error: &'static str| {
        tt.metrics().value(
            "otelconc.semaphore.acquisitions",
            &[
                name.clone(),
                attr(ATTR_OUTCOME, "refused"),
                attr(ATTR_ERROR_TYPE, error),
            ],
        )
    };
    let service = |layer: ConcurrencyLimitLayer| {
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|()| async { Ok::<_, std::convert::Infallible>("ran") })
    };

    // Wait mode: a request that finds no permit free queues; it is not refused.
    let mut first = service(ConcurrencyLimitLayer::new(sem.clone()));
    let mut second = first.clone();
    first.ready().await.expect("ready: the only permit");
    let mut queued = Box::pin(async move { second.ready().await?.call(()).await });
    assert!(futures::poll!(queued.as_mut()).is_pending(), "it waits");
    assert_eq!(first.call(()).await.expect("the first"), "ran");
    assert_eq!(queued.await.expect("the second, after the wait"), "ran");
    assert_eq!(refused("would_block"), Some(0.0));
    assert_eq!(
        tt.metrics().value(
            "otelconc.semaphore.acquisitions",
            &[name.clone(), attr(ATTR_OUTCOME, "ok")]
        ),
        Some(2.0)
    );
    // One of the two waited.
    assert_eq!(
        tt.metrics()
            .value("otelconc.semaphore.contended", std::slice::from_ref(&name)),
        Some(1.0)
    );

    // Shed mode: a refusal is counted once, and the inner service is not called.
    let held = sem.try_acquire_owned().expect("the only permit");
    let mut shed = service(ConcurrencyLimitLayer::new(sem.clone()).shed());
    let err = shed.ready().await.expect("ready").call(()).await;
    assert!(err.expect_err("shed").is::<ConcurrencyLimited>());
    assert_eq!(refused("would_block"), Some(1.0));

    // A semaphore shrunk to no permits: the refusal says so, counted as such.
    drop(held);
    assert_eq!(sem.forget_permits(1), 1);
    let err = shed.ready().await.expect("ready").call(()).await;
    let err = err.expect_err("no permit can ever be free");
    let e = err
        .downcast_ref::<otelconc::semaphore::ExceedsTotal>()
        .expect("ExceedsTotal");
    assert_eq!((e.requested, e.total), (1, 0));
    assert_eq!(refused("would_block"), Some(1.0));
    assert_eq!(refused("exceeds_total"), Some(1.0));
}

/// Weighted requests: a weight of 0 passes while every permit is held; a bounded wait
/// gives up after `max_wait` without calling the inner service and leaves the queue;
/// shed mode refuses at once with the layer's hint; an unbounded wait calls the inner
/// service once its permits come, and holds them until its response is done.
#[tokio::test(start_paused = true)]
async fn weighted_requests_wait_shed_and_pass_as_the_docs_say() {
    let sem = Semaphore::new("weighted", 3).expect("permits");
    let calls = Arc::new(AtomicU32::new(0));
    let inner = {
        let calls = calls.clone();
        tower::service_fn(move |n: u32| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, std::convert::Infallible>(n) }
        })
    };
    let layer = ConcurrencyLimitLayer::new(sem.clone()).weight(|n: &u32| *n);
    let held = sem.try_acquire_many_owned(3).expect("every permit");

    let mut zero = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    assert_eq!(zero.ready().await.unwrap().call(0).await.unwrap(), 0);

    let mut bounded = ServiceBuilder::new()
        .layer(layer.clone().max_wait(Duration::from_millis(50)))
        .service(inner.clone());
    let start = tokio::time::Instant::now();
    let err = bounded.ready().await.unwrap().call(2).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert!(err.is::<ConcurrencyLimited>(), "{err}");

    let mut shed = ServiceBuilder::new()
        .layer(layer.clone().shed().retry_after(Duration::from_secs(1)))
        .service(inner.clone());
    let err = shed.ready().await.unwrap().call(1).await.unwrap_err();
    let refusal = err.downcast_ref::<ConcurrencyLimited>().expect("refused");
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the weight-0 call ran"
    );

    let mut waiting = ServiceBuilder::new().layer(layer).service(inner);
    let fut = waiting.ready().await.unwrap().call(2);
    let task = tokio::spawn(fut);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!task.is_finished(), "waits as long as it takes");
    drop(held);
    assert_eq!(task.await.unwrap().unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        sem.available_permits(),
        3,
        "the wait that gave up left the queue"
    );
}
