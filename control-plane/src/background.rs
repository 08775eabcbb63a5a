//! The two shapes of the control plane's background services, each ending when its
//! cancellation token fires: a session that reconnects after a failure (the outbox relay,
//! usage folding, the lease service, the health listener), and work done on a fixed period
//! (metrics upkeep, lease cleanup).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The wait after the first failed session; it doubles after each failure up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two sessions.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `session` until one ends cleanly (it returns `Ok` once `cancel` fires) or `cancel`
/// fires; a failed session is logged as "`what` interrupted" and started again after the
/// backoff.
pub async fn reconnecting<F, Fut>(what: &str, cancel: &CancellationToken, mut session: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = FIRST_BACKOFF;
    while !cancel.is_cancelled() {
        let Err(e) = session().await else { return };
        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "{what} interrupted");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs `work` at once and then every `period` until `cancel` fires.
pub async fn every<F, Fut>(period: Duration, cancel: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        work().await;
    }
}
