//! Progress while the demo runs: a bar on a terminal, plain periodic lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::workload::Accounting;

/// Shows the events that ended out of `total` (None when the total is unknown) until
/// `stop` fires (when the work is done); nothing is shown after that.
pub(crate) async fn show(done: Arc<Accounting>, total: Option<u64>, stop: CancellationToken) {
    if std::io::stdout().is_terminal() {
        bar(done, total, stop).await;
    } else {
        lines(done, total, stop).await;
    }
}

async fn bar(done: Arc<Accounting>, total: Option<u64>, stop: CancellationToken) {
    let pb = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} events  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} events  {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    loop {
        pb.set_position(done.finished());
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    pb.set_position(done.finished());
    pb.finish_and_clear();
}

async fn lines(done: Arc<Accounting>, total: Option<u64>, stop: CancellationToken) {
    let start = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let n = done.finished();
        let rate = n as f64 / start.elapsed().as_secs_f64();
        match total {
            Some(t) => println!(
                "progress: {n}/{t} events ({:.0}%), {rate:.0} events/s",
                n as f64 * 100.0 / t.max(1) as f64
            ),
            None => println!("progress: {n} events, {rate:.0} events/s"),
        }
    }
}
