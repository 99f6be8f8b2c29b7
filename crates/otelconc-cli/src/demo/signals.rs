//! Ctrl-C / SIGTERM: the first stops intake and drains, a second aborts at once.

use tokio_util::sync::CancellationToken;

/// Tokens the signal watcher fires: `stop_intake` on the first signal, `abort` on the
/// second.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    pub(crate) stop_intake: CancellationToken,
    pub(crate) abort: CancellationToken,
}

impl Stop {
    /// Watches SIGINT and SIGTERM until `abort` fires.
    pub(crate) fn watch(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            for n in 0..2 {
                tokio::select! {
                    () = this.abort.cancelled() => return,
                    got = signal() => if !got { return },
                }
                if n == 0 {
                    eprintln!("\notelconc: stopping intake and draining (Ctrl-C again to abort)");
                    this.stop_intake.cancel();
                } else {
                    eprintln!("\notelconc: aborting");
                    this.abort.cancel();
                }
            }
        });
    }
}

/// Resolves on the next SIGINT or SIGTERM; false if signals cannot be watched.
async fn signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
