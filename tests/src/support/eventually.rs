//! Waiting for a condition instead of sleeping: [`eventually`] and [`assert_eventually!`].
//!
//! A check is retried with a short, growing pause until it passes or the time is up; each try
//! is itself bounded by the remaining time, so a hanging request cannot stretch the wait. On
//! timeout the error carries the last failure, which is what a test log needs.
//!
//! [`assert_eventually!`]: crate::assert_eventually

use std::future::Future;
use std::time::Duration;

/// The timeout [`assert_eventually!`](crate::assert_eventually) uses when given none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a check returns: `bool`, `Option<T>` or `Result<T, E>`; passing yields the `T`.
pub trait Attempt {
    /// The value a passing check yields.
    type Output;
    /// `Ok(value)` if the check passed, else a description of why not.
    fn into_attempt(self) -> Result<Self::Output, String>;
}

impl Attempt for bool {
    type Output = ();
    fn into_attempt(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("condition was false".to_owned())
        }
    }
}

impl<T> Attempt for Option<T> {
    type Output = T;
    fn into_attempt(self) -> Result<T, String> {
        self.ok_or_else(|| "got None".to_owned())
    }
}

impl<T, E: std::fmt::Display> Attempt for Result<T, E> {
    type Output = T;
    fn into_attempt(self) -> Result<T, String> {
        // `{:#}` shows an anyhow error's whole context chain.
        self.map_err(|e| format!("{e:#}"))
    }
}

/// Runs `check` until it passes or `timeout` elapses, and returns what it yielded.
///
/// ```no_run
/// # async fn demo(env: &switchyard_tests::support::TestEnv) -> anyhow::Result<()> {
/// use std::time::Duration;
/// use switchyard_tests::support::eventually;
/// let requests = eventually(Duration::from_secs(5), || async {
///     let seen = env.mock().requests().await?;
///     anyhow::ensure!(seen.len() == 2, "saw {} requests", seen.len());
///     Ok(seen)
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn eventually<F, Fut, A>(timeout: Duration, mut check: F) -> anyhow::Result<A::Output>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
    A: Attempt,
{
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut pause = Duration::from_millis(10);
    let mut attempts = 0u32;
    let mut last: Option<String> = None;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let failure = match tokio::time::timeout(remaining, check()).await {
            Ok(outcome) => match outcome.into_attempt() {
                Ok(value) => return Ok(value),
                Err(why) => why,
            },
            // The deadline cut this check short: the one before says why it was failing.
            Err(_) => match last.take() {
                Some(before) => format!("{before} (and the final check was cut by the deadline)"),
                None => "the check itself did not finish in time".to_owned(),
            },
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            anyhow::bail!(
                "not true after {:?} ({attempts} attempts); last failure: {failure}",
                now - start
            );
        }
        last = Some(failure);
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Asserts that an async condition becomes true: `assert_eventually!(expr)` or
/// `assert_eventually!(expr, timeout)`. The expression is evaluated inside an `async` block
/// (so it may `.await`) and may be a `bool`, `Option` or `Result`; it panics with the last
/// failure after the timeout (default [`DEFAULT_TIMEOUT`](crate::support::DEFAULT_TIMEOUT)).
///
/// ```no_run
/// # async fn demo(env: &switchyard_tests::support::TestEnv) {
/// switchyard_tests::assert_eventually!(env.mock().requests().await.map(|r| r.len() == 1).unwrap_or(false));
/// # }
/// ```
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!($cond, $crate::support::DEFAULT_TIMEOUT)
    };
    ($cond:expr, $timeout:expr $(,)?) => {
        if let Err(err) = $crate::support::eventually($timeout, || async { $cond }).await {
            panic!(
                "assert_eventually!({}) failed: {:#}",
                stringify!($cond),
                err
            );
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_the_value_once_the_check_passes() {
        let mut calls = 0;
        let got = eventually(Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n >= 3).then_some(n) }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_failure() {
        let err = eventually(Duration::from_millis(100), || async {
            Err::<(), _>(anyhow::anyhow!("still 7 pending"))
        })
        .await
        .unwrap_err();
        assert!(format!("{err}").contains("still 7 pending"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_check_is_cut_off() {
        let start = std::time::Instant::now();
        let result = eventually(Duration::from_millis(100), || async {
            std::future::pending::<bool>().await
        })
        .await;
        assert!(result.is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_macro_accepts_bool_and_result() {
        let ready = true;
        crate::assert_eventually!(ready);
        crate::assert_eventually!(Ok::<_, anyhow::Error>(1), Duration::from_secs(1));
    }
}
