//! `otelconc::pool`: behaviour users rely on (jobs, failures, resize, shutdown).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use otelconc::pool::{
    BuildError, CancellationToken, Job, JobError, Named, ResizeError, SubmitError, TrySubmitError,
    WorkerPool, with_token,
};
use tokio::sync::{Barrier, Notify, oneshot};

fn pool(name: &str, workers: usize, capacity: usize) -> WorkerPool {
    WorkerPool::builder(name)
        .workers(workers)
        .queue_capacity(capacity)
        .build()
        .expect("valid configuration")
}

/// Queues `n` jobs that each sleep for `each`.
async fn submit_sleeps(p: &WorkerPool, n: usize, each: Duration) {
    for _ in 0..n {
        p.submit(move || tokio::time::sleep(each)).await.unwrap();
    }
}

/// Counts how many of the jobs it queued run at once.
#[derive(Default)]
struct AtOnce {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl AtOnce {
    /// Queues `n` jobs that each sleep `ms` milliseconds; returns their handles.
    async fn submit(
        &self,
        p: &WorkerPool,
        n: usize,
        ms: u64,
    ) -> Vec<otelconc::pool::JobHandle<()>> {
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (running, peak) = (self.running.clone(), self.peak.clone());
            handles.push(
                p.submit_handle(move || async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap(),
            );
        }
        handles
    }

    /// The most jobs that ran at once.
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn invalid_configuration_is_rejected_with_a_clear_error() {
    let e = WorkerPool::builder("p").workers(0).build().unwrap_err();
    assert_eq!(e, BuildError::ZeroWorkers { pool: "p".into() });
    assert!(e.to_string().contains("workers must be at least 1"));
    let e = WorkerPool::builder("p")
        .queue_capacity(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("queue capacity must be at least 1"));
    let e = WorkerPool::builder("p")
        .job_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("job timeout must be longer than zero")
    );
    let e = WorkerPool::builder("p").outcomes(0).build().unwrap_err();
    assert!(matches!(e, BuildError::ZeroOutcomes { .. }));
    let e = WorkerPool::builder("p")
        .timing_sample(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::ZeroSample { .. }));
    let p = pool("p", 1, 1);
    assert!(matches!(p.resize(0), Err(ResizeError::ZeroWorkers { .. })));
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let e = WorkerPool::builder("p").build().unwrap_err();
    assert_eq!(e, BuildError::NoRuntime { pool: "p".into() });
}

#[tokio::test]
async fn handles_resolve_to_outputs_and_fire_and_forget_jobs_run() {
    let p = pool("p", 2, 8);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let ran = ran.clone();
        p.submit(move || async move {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .await
        .unwrap();
    }
    let h = p.submit_handle(|| async { "out" }).await.unwrap();
    assert_eq!(h.await, Ok("out"));
    let h = p.try_submit_handle(|| async { 7 }).unwrap();
    assert_eq!(h.await, Ok(7));
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    assert_eq!(report.completed, 7);
    assert_eq!(report.accepted(), 7);
    assert_eq!(p.stats().submitted, 7);
}

#[tokio::test]
async fn panicking_job_is_an_error_and_capacity_is_unchanged() {
    let p = pool("p", 3, 16);
    let mut handles = Vec::new();
    for i in 0..3 {
        handles.push(
            p.submit_handle(move || async move {
                if i < 10 {
                    panic!("job {i} failed");
                }
            })
            .await
            .unwrap(),
        );
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await, Err(JobError::Panicked(format!("job {i} failed"))));
    }
    // Three jobs that can only finish together: proves all three workers still run.
    let barrier = Arc::new(Barrier::new(3));
    let mut handles = Vec::new();
    for _ in 0..3 {
        let b = barrier.clone();
        handles.push(
            p.submit_handle(move || async move {
                b.wait().await;
            })
            .await
            .unwrap(),
        );
    }
    for h in handles {
        assert_eq!(h.await, Ok(()));
    }
    let s = p.stats();
    assert_eq!((s.workers, s.panicked, s.failed, s.completed), (3, 3, 3, 3));
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.completed, report.failed), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn timed_out_job_is_an_error_and_its_token_fires() {
    let p = WorkerPool::builder("p")
        .workers(1)
        .job_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (seen_tx, seen_rx) = oneshot::channel();
    let h = p
        .submit_handle(with_token(move |token| async move {
            // Work the job handed elsewhere learns of the timeout through the token.
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = seen_tx.send(());
            });
            tokio::time::sleep(Duration::from_secs(60)).await;
        }))
        .await
        .unwrap();
    assert_eq!(h.await, Err(JobError::TimedOut));
    seen_rx.await.expect("the job's token fired on timeout");
    // The next job on the same worker gets a token that has not fired.
    let h = p
        .submit_handle(with_token(|token| async move { token.is_cancelled() }))
        .await
        .unwrap();
    assert_eq!(h.await, Ok(false));
    let s = p.stats();
    assert_eq!((s.timed_out, s.failed, s.completed), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn abort_cancels_running_jobs_and_drops_queued_ones() {
    let p = pool("p", 1, 8);
    let started = Arc::new(Notify::new());
    let s2 = started.clone();
    let (tok_tx, tok_rx) = oneshot::channel();
    let running = p
        .submit_handle(with_token(move |token| async move {
            let _ = tok_tx.send(token);
            s2.notify_one();
            std::future::pending::<()>().await;
        }))
        .await
        .unwrap();
    started.notified().await;
    let queued = p.submit_handle(|| async { 1 }).await.unwrap();
    let report = p.abort().await;
    assert_eq!(running.await, Err(JobError::Cancelled));
    assert_eq!(queued.await, Err(JobError::NotStarted));
    assert!(tok_rx.await.unwrap().is_cancelled());
    assert_eq!((report.cancelled, report.not_started), (1, 1));
    assert_eq!(report.accepted(), 2);
    assert!(report.deadline_passed);
    assert_eq!(p.stats().busy, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_the_queue_when_the_deadline_allows() {
    let p = pool("p", 1, 16);
    submit_sleeps(&p, 10, Duration::from_millis(100)).await;
    let report = p.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.completed, 10);
    assert_eq!(report.accepted(), 10);
    assert!(!report.deadline_passed);
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_jobs_are_queued_and_the_deadline_passes() {
    let p = pool("p", 1, 8);
    let mut handles = Vec::new();
    for _ in 0..5 {
        handles.push(
            p.submit_handle(|| tokio::time::sleep(Duration::from_secs(10)))
                .await
                .unwrap(),
        );
    }
    // Job 1 ends at 10 s, job 2 is running at 15 s, jobs 3 to 5 never start.
    let report = p.shutdown(Duration::from_secs(15)).await;
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await);
    }
    assert_eq!(
        results,
        vec![
            Ok(()),
            Err(JobError::Cancelled),
            Err(JobError::NotStarted),
            Err(JobError::NotStarted),
            Err(JobError::NotStarted),
        ]
    );
    assert_eq!(
        (
            report.completed,
            report.failed,
            report.cancelled,
            report.not_started
        ),
        (1, 0, 1, 3)
    );
    assert!(report.deadline_passed);
    let s = p.stats();
    assert_eq!(
        s.submitted,
        s.completed + s.failed + s.cancelled + s.not_started
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_twice_and_concurrently_gives_one_answer() {
    let p = pool("p", 2, 8);
    submit_sleeps(&p, 6, Duration::from_secs(1)).await;
    let (a, b, c, d) = tokio::join!(
        p.shutdown(Duration::from_secs(60)),
        p.shutdown(Duration::from_millis(1500)),
        p.graceful_shutdown(),
        async {
            p.close();
            p.close()
        }
    );
    assert!(!d, "the pool was already closed");
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(a.accepted(), 6);
    // The 1.5 s deadline passed with two jobs running and two queued.
    assert_eq!(
        (a.completed, a.cancelled, a.not_started),
        (2, 2, 2),
        "{a:?}"
    );
    assert_eq!(p.shutdown(Duration::from_secs(1)).await, a);
    assert_eq!(p.abort().await, a);
}

#[test]
fn ten_thousand_submits_racing_shutdown_are_each_accounted_for_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = pool("race", 4, 64);
        let probe = Arc::new(());
        let ran = Arc::new(AtomicUsize::new(0));
        let mut submitters = tokio::task::JoinSet::new();
        for i in 0..10_000_u32 {
            let p = p.clone();
            let probe = probe.clone();
            let ran = ran.clone();
            submitters.spawn(async move {
                let job = move || async move {
                    let _probe = probe;
                    ran.fetch_add(1, Ordering::SeqCst);
                    if i % 4 == 0 {
                        // Slow enough that the short deadline finds jobs running and queued.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                match p.submit_handle(job).await {
                    Ok(h) => Some(h.await),
                    Err(_closed) => None,
                }
            });
        }
        tokio::task::yield_now().await;
        let (r1, r2) = tokio::join!(
            p.shutdown(Duration::from_millis(5)),
            p.shutdown(Duration::from_secs(30))
        );
        assert_eq!(r1, r2);
        let (mut ok, mut cancelled, mut not_started, mut refused) = (0, 0, 0, 0);
        while let Some(res) = submitters.join_next().await {
            match res.expect("no submitter panicked") {
                Some(Ok(())) => ok += 1,
                Some(Err(JobError::Cancelled)) => cancelled += 1,
                Some(Err(JobError::NotStarted)) => not_started += 1,
                Some(Err(e)) => panic!("unexpected {e}"),
                None => refused += 1,
            }
        }
        assert_eq!(ok + cancelled + not_started + refused, 10_000);
        assert_eq!(r1.completed, ok);
        assert_eq!(r1.cancelled, cancelled);
        assert_eq!(r1.not_started, not_started);
        assert_eq!(r1.failed, 0);
        let s = p.stats();
        assert_eq!(s.submitted, ok + cancelled + not_started);
        assert_eq!(s.rejected, refused);
        assert_eq!(ran.load(Ordering::SeqCst) as u64, ok + cancelled);
        // No job (queued or running) is still held anywhere.
        assert_eq!(Arc::strong_count(&probe), 1);
    });
}

#[tokio::test(flavor = "current_thread")]
async fn no_task_of_the_pool_is_alive_after_shutdown() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let p = pool("p", 4, 8);
    p.resize(6).unwrap();
    p.resize(2).unwrap();
    for _ in 0..20 {
        p.submit(tokio::task::yield_now).await.unwrap();
    }
    assert!(metrics.num_alive_tasks() > before);
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.completed, 20);
    assert_eq!(metrics.num_alive_tasks(), before);

    let p = pool("p", 3, 8);
    p.submit(std::future::pending::<()>).await.unwrap();
    tokio::task::yield_now().await;
    let report = p.abort().await;
    assert_eq!(report.cancelled, 1);
    assert_eq!(metrics.num_alive_tasks(), before);
}

#[test]
fn resize_under_load_loses_and_duplicates_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        const JOBS: usize = 5_000;
        let p = pool("resize", 2, 32);
        let runs: Arc<Vec<AtomicU32>> = Arc::new((0..JOBS).map(|_| AtomicU32::new(0)).collect());
        let resizer = {
            let p = p.clone();
            tokio::spawn(async move {
                for n in [8, 1, 4, 2, 6, 1, 3].iter().cycle().take(200) {
                    p.resize(*n).unwrap();
                    tokio::task::yield_now().await;
                }
                p.resize(3).unwrap();
            })
        };
        for i in 0..JOBS {
            let runs = runs.clone();
            p.submit(move || async move {
                runs[i].fetch_add(1, Ordering::SeqCst);
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
        }
        resizer.await.unwrap();
        assert_eq!(p.stats().workers, 3);
        let report = p.shutdown(Duration::from_secs(30)).await;
        assert_eq!(report.completed, JOBS as u64);
        assert!(runs.iter().all(|r| r.load(Ordering::SeqCst) == 1));
    });
}

/// Shrinking takes effect at once, idle workers included: a surplus worker parked on the
/// empty queue exits without taking a job queued right after the resize, so the pool
/// never runs more jobs at once than it was resized to.
#[tokio::test(start_paused = true)]
async fn an_idle_surplus_worker_takes_no_job_queued_after_a_shrink() {
    let p = pool("shrink", 3, 64);
    for _ in 0..10 {
        tokio::task::yield_now().await; // every worker parks on the empty queue
    }
    p.resize(1).unwrap();
    let at_once = AtOnce::default();
    let handles = at_once.submit(&p, 6, 10).await;
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(at_once.peak(), 1);
    assert_eq!(p.stats().workers, 1);
    assert_eq!(p.shutdown(Duration::from_secs(1)).await.completed, 6);
}

/// A job that submits to its own full pool does not deadlock it. `try_submit` hands the
/// job back with `Full`; a waiting `submit` is ended by the per-job timeout (documented
/// on `WorkerPool::submit`), and the job it was submitting was never queued.
#[tokio::test(start_paused = true)]
async fn job_submitting_to_its_own_full_pool_does_not_deadlock() {
    let p = WorkerPool::builder("self")
        .workers(1)
        .queue_capacity(1)
        .job_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let follow_up_ran = Arc::new(AtomicUsize::new(0));
    let never_ran = Arc::new(AtomicUsize::new(0));
    let inner = p.clone();
    let (f, n) = (follow_up_ran.clone(), never_ran.clone());
    let (full_tx, full_rx) = oneshot::channel();
    let h = p
        .submit_handle(move || async move {
            let f2 = f.clone();
            inner
                .try_submit(move || async move {
                    f2.fetch_add(1, Ordering::SeqCst);
                })
                .expect("one free slot");
            // The queue is full now and the only worker is this job.
            let second = inner.try_submit(move || async move {
                f.fetch_add(1, Ordering::SeqCst);
            });
            let _ = full_tx.send(matches!(second, Err(TrySubmitError::Full(_))));
            let _ = inner
                .submit(move || async move {
                    n.fetch_add(1, Ordering::SeqCst);
                })
                .await;
        })
        .await
        .unwrap();
    assert!(full_rx.await.unwrap(), "try_submit handed the job back");
    assert_eq!(h.await, Err(JobError::TimedOut));
    let report = p.shutdown(Duration::from_secs(60)).await;
    assert_eq!(follow_up_ran.load(Ordering::SeqCst), 1);
    assert_eq!(never_ran.load(Ordering::SeqCst), 0);
    assert_eq!((report.completed, report.failed), (1, 1));
    assert_eq!(report.accepted(), 2);
}

#[tokio::test]
async fn submit_after_close_is_a_closed_error_and_queued_jobs_still_run() {
    let p = pool("p", 1, 8);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let first = p
        .submit_handle(move || async move { g.notified().await })
        .await
        .unwrap();
    let queued = p.submit_handle(|| async { 5 }).await.unwrap();
    assert!(p.close());
    assert!(p.is_closed());
    let err = p.submit(|| async { 1 }).await.unwrap_err();
    assert_eq!(err.to_string(), "the worker pool is closed");
    let job = err.into_inner();
    assert_eq!(job().await, 1);
    assert!(p.try_submit(|| async {}).unwrap_err().is_closed());
    assert!(p.submit_handle(|| async {}).await.is_err());
    assert!(matches!(p.resize(4), Err(ResizeError::Closed { .. })));
    gate.notify_one();
    assert_eq!(first.await, Ok(()));
    assert_eq!(queued.await, Ok(5));
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.completed, 2);
    assert_eq!(p.stats().rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn try_submit_on_a_full_queue_hands_the_job_back() {
    let p = pool("p", 1, 1);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    p.submit(move || async move { g.notified().await })
        .await
        .unwrap();
    tokio::task::yield_now().await; // the worker takes it
    p.try_submit(|| async {}).unwrap();
    let back = p
        .try_submit(Named::new("n", || async { 9 }).with_id("1"))
        .unwrap_err();
    assert!(back.is_full());
    let job = back.into_inner();
    assert_eq!(job.into_inner()().await, 9);
    // A submit cancelled while waiting for space did not enqueue its job.
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let waited = tokio::time::timeout(
        Duration::from_secs(1),
        p.submit(move || async move {
            r.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .await;
    assert!(waited.is_err(), "the queue stayed full");
    assert_eq!(p.queued(), 1);
    gate.notify_one();
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.completed, 2);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(p.stats().rejected, 1);
}

#[tokio::test]
async fn outcomes_stream_never_stalls_workers_when_unread() {
    let p = WorkerPool::builder("o")
        .workers(2)
        .outcomes(2)
        .build()
        .unwrap();
    let outcomes = p.outcomes().unwrap();
    for i in 0..10 {
        p.submit(Named::new("job", move || async move {
            if i == 0 {
                panic!("first");
            }
        }))
        .await
        .unwrap();
    }
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.accepted(), 10);
    assert_eq!(p.stats().outcomes_dropped, 8);
    let mut got = Vec::new();
    while let Some(o) = outcomes.recv().await {
        assert_eq!(o.name.as_deref(), Some("job"));
        got.push(o.result);
    }
    assert_eq!(
        got.len(),
        2,
        "the buffer keeps the first outcomes; the stream ends"
    );
}

struct BadName;

impl Job for BadName {
    type Output = u8;

    async fn run(self, _token: CancellationToken) -> u8 {
        3
    }

    fn name(&self) -> Option<Cow<'static, str>> {
        panic!("name() is user code too")
    }
}

#[tokio::test]
async fn a_panic_in_a_jobs_name_does_not_kill_the_worker() {
    let p = WorkerPool::builder("p")
        .workers(1)
        .outcomes(4)
        .build()
        .unwrap();
    let outcomes = p.outcomes().unwrap();
    assert_eq!(p.submit_handle(BadName).await.unwrap().await, Ok(3));
    assert_eq!(p.submit_handle(|| async { 4 }).await.unwrap().await, Ok(4));
    let first = outcomes.recv().await.unwrap();
    assert_eq!((first.name, first.result), (None, Ok(())));
    assert_eq!(p.shutdown(Duration::from_secs(5)).await.completed, 2);
}

/// `Stats::workers` is the configured count while the pool runs and 0 once every worker
/// has exited, whether the queue drained or the deadline passed.
#[tokio::test(start_paused = true)]
async fn stats_report_no_workers_once_every_worker_exited() {
    let p = pool("drained", 3, 8);
    p.resize(5).unwrap();
    p.resize(2).unwrap();
    assert_eq!(p.stats().workers, 2);
    submit_sleeps(&p, 4, Duration::from_millis(10)).await;
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert!(!report.deadline_passed);
    assert_eq!(report.completed, 4);
    assert_eq!(p.stats().workers, 0);

    let p = pool("deadline", 2, 8);
    p.submit(std::future::pending::<()>).await.unwrap();
    p.submit(std::future::pending::<()>).await.unwrap();
    p.submit(|| async {}).await.unwrap();
    let report = p.shutdown(Duration::from_millis(10)).await;
    assert!(report.deadline_passed);
    assert_eq!((report.cancelled, report.not_started), (2, 1));
    assert_eq!(p.stats().workers, 0);
    assert_eq!(p.stats().busy, 0);

    // Closed but not shut down: the workers drain the queue and exit on their own.
    let p = pool("closed", 2, 8);
    submit_sleeps(&p, 2, Duration::from_millis(10)).await;
    assert!(p.close());
    assert_eq!(p.stats().workers, 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(p.stats().workers, 0);
    assert_eq!(p.stats().completed, 2);
}

/// Lets every task that can run do so.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Dropping the last clone closes the pool: queued jobs still run, the workers exit, and
/// the outcomes stream ends once it is read.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_runs_queued_jobs_and_ends_the_outcomes_stream() {
    let p = WorkerPool::builder("dropped")
        .workers(1)
        .outcomes(8)
        .build()
        .unwrap();
    let outcomes = p.outcomes().unwrap();
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let first = p
        .submit_handle(move || async move {
            g.notified().await;
            1
        })
        .await
        .unwrap();
    let second = p.submit_handle(|| async { 2 }).await.unwrap();
    drop(p);
    gate.notify_one();
    assert_eq!(first.await, Ok(1));
    assert_eq!(second.await, Ok(2));
    let mut ended = 0;
    while let Some(o) = outcomes.recv().await {
        assert_eq!(o.result, Ok(()));
        ended += 1;
    }
    assert_eq!(ended, 2);
}

/// `close` with a clone still alive: queued jobs run, and once the workers have exited
/// the outcomes stream ends (no job is left to report), without a shutdown.
#[tokio::test(start_paused = true)]
async fn the_outcomes_stream_ends_once_a_closed_pool_has_run_its_queue() {
    let p = WorkerPool::builder("closed")
        .workers(2)
        .outcomes(8)
        .build()
        .unwrap();
    let outcomes = p.outcomes().unwrap();
    for _ in 0..3 {
        p.submit(|| tokio::time::sleep(Duration::from_millis(5)))
            .await
            .unwrap();
    }
    assert!(p.close());
    let read = async {
        let mut ended = 0;
        while let Some(o) = outcomes.recv().await {
            assert_eq!(o.result, Ok(()));
            ended += 1;
        }
        ended
    };
    // The timeout only bounds a failure: the paused clock reaches it at once if the
    // stream never ends.
    let ended = tokio::time::timeout(Duration::from_secs(60), read).await;
    assert_eq!(ended, Ok(3));
    assert_eq!(p.stats().workers, 0);
}

/// `shutdown` is cancel safe: losing a `select!` leaves the pool closed and draining,
/// and a later call reports every job.
#[tokio::test(start_paused = true)]
async fn a_shutdown_that_loses_a_select_keeps_draining_and_a_later_call_reports() {
    let p = pool("raced", 1, 8);
    submit_sleeps(&p, 3, Duration::from_millis(10)).await;
    tokio::select! {
        _ = p.shutdown(Duration::from_secs(5)) => panic!("the jobs take 30 ms"),
        () = tokio::time::sleep(Duration::from_millis(5)) => {}
    }
    assert!(p.is_closed());
    assert!(p.try_submit(|| async {}).unwrap_err().is_closed());
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.completed, report.accepted()), (3, 3));
    assert!(!report.deadline_passed);
}

/// Called from inside one of the pool's own jobs, `shutdown` waits for that job too, so
/// its deadline passes and the job is cancelled; the deadline counts as passed although
/// the queue was already empty.
#[tokio::test(start_paused = true)]
async fn a_shutdown_from_inside_a_job_cancels_that_job_at_the_deadline() {
    let p = pool("inner", 2, 8);
    let inner = p.clone();
    let h = p
        .submit_handle(move || async move {
            inner.shutdown(Duration::from_millis(50)).await;
        })
        .await
        .unwrap();
    assert_eq!(h.await, Err(JobError::Cancelled));
    let report = p.shutdown(Duration::from_secs(1)).await;
    assert_eq!((report.cancelled, report.accepted()), (1, 1));
    assert!(report.deadline_passed);
}

/// A `JobHandle` polled by `&mut` loses nothing when another branch wins; a dropped
/// handle does not cancel its job.
#[tokio::test(start_paused = true)]
async fn a_job_handle_keeps_its_output_across_select_and_dropping_it_cancels_nothing() {
    let p = pool("handles", 2, 8);
    let mut h = p
        .submit_handle(|| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            5
        })
        .await
        .unwrap();
    tokio::select! {
        _ = &mut h => panic!("the job takes 10 ms"),
        () = tokio::time::sleep(Duration::from_millis(1)) => {}
    }
    assert_eq!(h.await, Ok(5));
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let dropped = p
        .submit_handle(move || async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            r.fetch_add(1, Ordering::SeqCst);
        })
        .await
        .unwrap();
    drop(dropped);
    let report = p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(report.completed, 2);
}

/// A job's closure is called when a worker starts it, not at submit.
#[tokio::test(start_paused = true)]
async fn a_job_closure_is_called_when_a_worker_starts_it() {
    let p = pool("lazy", 1, 8);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    p.submit(move || async move { g.notified().await })
        .await
        .unwrap();
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    p.submit(move || {
        c.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .await
    .unwrap();
    settle().await;
    assert_eq!(called.load(Ordering::SeqCst), 0, "still queued");
    gate.notify_one();
    p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(called.load(Ordering::SeqCst), 1);
}

/// The abort has happened once `abort` is first polled: the pool is closed, its workers
/// are counted out, running jobs are cancelled and queued ones end as never started,
/// even when the call is dropped after that first poll.
#[tokio::test(start_paused = true)]
async fn abort_takes_effect_at_its_first_poll() {
    let p = pool("aborted", 2, 8);
    let (seen_tx, seen_rx) = oneshot::channel::<()>();
    let running = p
        .submit_handle(with_token(move |token| async move {
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = seen_tx.send(());
            });
            std::future::pending::<()>().await
        }))
        .await
        .unwrap();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(p.submit_handle(std::future::pending::<()>).await.unwrap());
    }
    settle().await;
    {
        let mut abort = std::pin::pin!(p.abort());
        let _ = futures::poll!(abort.as_mut());
        assert!(p.is_closed());
        assert_eq!(
            p.stats().workers,
            0,
            "an abort counts every worker out at once"
        );
    }
    // The future was dropped at once: still, the running job is cancelled and the
    // queued ones end as never started, without another call.
    seen_rx.await.expect("the running job's token fired");
    let wait = Duration::from_secs(1);
    let mut ended = Vec::new();
    for h in std::iter::once(running).chain(queued) {
        let r = tokio::time::timeout(wait, h).await;
        ended.push(r.expect("the job ended with the abort").unwrap_err());
    }
    assert_eq!(
        ended,
        [
            JobError::Cancelled,
            JobError::Cancelled,
            JobError::NotStarted,
            JobError::NotStarted
        ]
    );
    let report = p.abort().await;
    assert!(report.deadline_passed);
    assert_eq!((report.cancelled, report.not_started), (2, 2));
}

/// `graceful_shutdown` uses the builder's deadline: 30 s by default, and zero aborts at
/// once.
#[tokio::test(start_paused = true)]
async fn graceful_shutdown_waits_the_builders_deadline_30_s_by_default() {
    let p = pool("default", 1, 8);
    p.submit(std::future::pending::<()>).await.unwrap();
    settle().await;
    let start = tokio::time::Instant::now();
    let report = p.graceful_shutdown().await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(report.cancelled, 1);

    let p = WorkerPool::builder("zero")
        .workers(1)
        .shutdown_deadline(Duration::ZERO)
        .build()
        .unwrap();
    p.submit(std::future::pending::<()>).await.unwrap();
    p.submit(|| async {}).await.unwrap();
    settle().await;
    let start = tokio::time::Instant::now();
    let report = p.graceful_shutdown().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!((report.cancelled, report.not_started), (1, 1));
    assert!(report.deadline_passed);
}

/// Every clone of the outcomes stream gets a share (each outcome goes to one reader),
/// and an outcome carries the job's name and id.
#[tokio::test(start_paused = true)]
async fn outcomes_clones_share_the_stream_and_outcomes_carry_name_and_id() {
    let p = WorkerPool::builder("o")
        .workers(1)
        .outcomes(8)
        .build()
        .unwrap();
    let a = p.outcomes().unwrap();
    let b = p.outcomes().unwrap();
    p.submit(Named::new("n", || async {}).with_id("7"))
        .await
        .unwrap();
    p.submit(Named::new("n", || async { panic!("x") }).with_id("8"))
        .await
        .unwrap();
    p.shutdown(Duration::from_secs(1)).await;
    let first = a.recv().await.unwrap();
    let second = b.recv().await.unwrap();
    assert_eq!(
        (first.name.as_deref(), first.id.as_deref(), first.result),
        (Some("n"), Some("7"), Ok(()))
    );
    assert_eq!(
        (second.id.as_deref(), second.result),
        (Some("8"), Err(JobError::Panicked("x".into())))
    );
    assert!(a.recv().await.is_none());
    assert!(b.recv().await.is_none());
}

/// A `submit` waiting for queue space fails with the job when the pool closes, and
/// `Stats::rejected` counts every refusal (full, closed while waiting, closed).
#[tokio::test(start_paused = true)]
async fn a_submit_waiting_for_space_fails_when_the_pool_closes_and_refusals_are_counted() {
    let p = pool("refusals", 1, 1);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    p.submit(move || async move { g.notified().await })
        .await
        .unwrap();
    settle().await;
    p.submit(|| async { 1 }).await.unwrap(); // the queue is full
    assert!(p.try_submit(|| async { 2 }).unwrap_err().is_full());
    let waiting = tokio::spawn({
        let p = p.clone();
        async move {
            p.submit(|| async { 3 })
                .await
                .map_err(SubmitError::into_inner)
        }
    });
    settle().await;
    assert!(!waiting.is_finished());
    p.close();
    let job = waiting.await.unwrap().unwrap_err();
    assert_eq!(job().await, 3, "the job is handed back");
    assert!(p.submit(|| async { 4 }).await.is_err());
    gate.notify_one();
    assert_eq!(p.shutdown(Duration::from_secs(5)).await.completed, 2);
    let s = p.stats();
    assert_eq!((s.submitted, s.rejected), (2, 3));
}

/// Shrinking a busy pool lets the surplus workers finish their job and exit without
/// taking another: the queued jobs then run one at a time.
#[tokio::test(start_paused = true)]
async fn shrinking_a_busy_pool_lets_surplus_workers_finish_their_job_and_exit() {
    let p = pool("shrink-busy", 3, 64);
    let gate = Arc::new(Notify::new());
    let mut first = Vec::new();
    for _ in 0..3 {
        let g = gate.clone();
        first.push(
            p.submit_handle(move || async move { g.notified().await })
                .await
                .unwrap(),
        );
    }
    settle().await;
    assert_eq!(p.stats().busy, 3);
    p.resize(1).unwrap();
    assert_eq!(p.stats().workers, 1);
    let at_once = AtOnce::default();
    let later = at_once.submit(&p, 6, 10).await;
    gate.notify_waiters();
    for h in first.into_iter().chain(later) {
        h.await.unwrap();
    }
    assert_eq!(at_once.peak(), 1);
    assert_eq!(p.stats().completed, 9);
}

struct NameCounted(Arc<AtomicUsize>);

impl Job for NameCounted {
    type Output = ();

    async fn run(self, _token: CancellationToken) {}

    fn name(&self) -> Option<Cow<'static, str>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Some("counted".into())
    }
}

/// `Job::name` is called only when the name is used: for a span, or for the outcomes
/// stream.
#[tokio::test]
async fn a_jobs_name_is_not_called_when_nothing_uses_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let p = pool("no-outcomes", 1, 4);
    p.submit_handle(NameCounted(calls.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let p = WorkerPool::builder("outcomes")
        .workers(1)
        .outcomes(4)
        .build()
        .unwrap();
    p.submit_handle(NameCounted(calls.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        p.outcomes().unwrap().try_recv().unwrap().name.as_deref(),
        Some("counted")
    );
}

/// The builder's defaults: one worker per available CPU and a queue of 1,024 jobs.
#[tokio::test(start_paused = true)]
async fn by_default_a_pool_has_a_worker_per_cpu_and_a_queue_of_1024() {
    let p = WorkerPool::builder("defaults").build().unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(p.stats().workers, cpus);
    for _ in 0..cpus {
        p.submit(std::future::pending::<()>).await.unwrap();
    }
    settle().await;
    assert_eq!(p.stats().busy, cpus);
    let mut queued = 0;
    while p.try_submit(|| async {}).is_ok() {
        queued += 1;
    }
    assert_eq!(queued, 1024);
    p.abort().await;
}

/// Growing after a shrink, while the surplus workers still finish their job, keeps the
/// number of jobs running at once within the new worker count.
#[tokio::test(start_paused = true)]
async fn growing_back_while_surplus_workers_finish_keeps_the_new_count() {
    let p = pool("regrow", 3, 64);
    let at_once = AtOnce::default();
    let mut handles = at_once.submit(&p, 3, 100).await;
    settle().await;
    p.resize(1).unwrap();
    p.resize(3).unwrap();
    handles.extend(at_once.submit(&p, 6, 10).await);
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(at_once.peak(), 3);
    assert_eq!(p.stats().workers, 3);
    assert_eq!(p.shutdown(Duration::from_secs(1)).await.completed, 9);
}
