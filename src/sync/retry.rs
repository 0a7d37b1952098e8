//! Retries: jittered exponential backoff that honours a sink's `retry_after`, under a
//! total budget for the run.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::{Error, Result};

/// How the engine retries operations that failed in a way that may pass
/// ([`Error::is_retryable`]).
///
/// The wait before a retry is the sink's [`Error::retry_after`] when it gives one (never
/// earlier: a service that says "one second" gets at least one second), otherwise a jittered
/// exponential backoff from `min_delay` up to `max_delay`. Each operation is tried at most
/// `1 + max_retries` times, and the whole run retries at most `budget` times: when a service
/// is down, the run ends in minutes rather than hours, and the report says which users failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct RetryPolicy {
    /// Retries per operation (after the first try).
    pub max_retries: usize,
    /// The first backoff delay.
    pub min_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// A `retry_after` longer than this is not waited for: the item fails as rate-limited.
    pub max_retry_after: Duration,
    /// Retries allowed in the whole run, over all users and sinks.
    pub budget: usize,
}

impl Default for RetryPolicy {
    /// 4 retries per operation, 1 s to 30 s backoff, `retry_after` up to 5 minutes, 200
    /// retries per run. (Microsoft's Graph SDKs default to 3 s base and 3 retries; AD's
    /// "busy" answers pass within seconds.)
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            budget: 200,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            budget: 0,
            ..Self::default()
        }
    }

    /// Sets the retries per operation.
    pub fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the backoff range.
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Sets the longest `retry_after` the engine waits for.
    pub fn with_max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Sets the run's total retry budget.
    pub fn with_budget(mut self, n: usize) -> Self {
        self.budget = n;
        self
    }
}

/// A run's retry state: the policy and what is left of the budget.
#[derive(Debug)]
pub(crate) struct Retrier {
    policy: RetryPolicy,
    left: AtomicUsize,
    used: AtomicUsize,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            left: AtomicUsize::new(policy.budget),
            used: AtomicUsize::new(0),
            policy,
        }
    }

    /// Retries used so far.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        let ok = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if ok {
            self.used.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Runs `op` until it succeeds, fails for good, or the retries run out; returns the
    /// result and the number of attempts. `on_retry` hears about each wait.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: F,
        mut on_retry: impl FnMut(&Error, Duration),
    ) -> (Result<T>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = AtomicU32::new(0);
        let mut op = op;
        let counted = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            op()
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_retries)
            .with_jitter();
        let r = counted
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &Error| e.is_retryable())
            .adjust(|e: &Error, next: Option<Duration>| {
                // `next` is None once the per-operation retries are spent.
                let next = next?;
                let wait = match e.retry_after() {
                    Some(asked) if asked > self.policy.max_retry_after => return None,
                    // Never earlier than asked; the backoff's jitter (capped at a tenth of the
                    // wait) spreads the users who were all told the same time.
                    Some(asked) => asked + next.min(asked / 10),
                    None => next,
                };
                if !self.take() {
                    return None;
                }
                Some(wait)
            })
            .notify(|e: &Error, d: Duration| on_retry(e, d))
            .await;
        (r, attempts.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::sync::Mutex;
    use std::time::Instant;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    fn busy(after: Option<Duration>) -> Error {
        Error::new(ErrorKind::Unavailable, "busy").temporary(after)
    }

    #[test]
    fn retries_until_success_and_counts_attempts() {
        let r = Retrier::new(
            RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(2)),
        );
        let calls = Mutex::new(0);
        let (res, attempts) = rt().block_on(r.run(
            || async {
                let mut c = calls.lock().unwrap();
                *c += 1;
                if *c < 3 {
                    Err(busy(None))
                } else {
                    Ok(*c)
                }
            },
            |_, _| {},
        ));
        assert_eq!(res.unwrap(), 3);
        assert_eq!(attempts, 3);
        assert_eq!(r.used(), 2);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let r = Retrier::new(RetryPolicy::default());
        let (res, attempts) = rt().block_on(r.run(
            || async { Err::<(), _>(Error::new(ErrorKind::UserNotFound, "no")) },
            |_, _| {},
        ));
        assert_eq!(res.unwrap_err().kind(), ErrorKind::UserNotFound);
        assert_eq!(attempts, 1);
        assert_eq!(r.used(), 0);
    }

    #[test]
    fn waits_at_least_retry_after() {
        let r = Retrier::new(
            RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(1)),
        );
        let first = Mutex::new(true);
        let waits = Mutex::new(Vec::new());
        let t = Instant::now();
        let (res, _) = rt().block_on(r.run(
            || async {
                let mut f = first.lock().unwrap();
                if std::mem::take(&mut *f) {
                    Err(busy(Some(Duration::from_millis(300))))
                } else {
                    Ok(())
                }
            },
            |_, d| waits.lock().unwrap().push(d),
        ));
        res.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        let w = waits.lock().unwrap()[0];
        assert!(
            w >= Duration::from_millis(300) && w <= Duration::from_millis(330),
            "{w:?}"
        );
    }

    #[test]
    fn a_retry_after_beyond_the_maximum_is_not_waited_for() {
        let r = Retrier::new(RetryPolicy::default().with_max_retry_after(Duration::from_secs(1)));
        let (res, attempts) = rt().block_on(r.run(
            || async { Err::<(), _>(busy(Some(Duration::from_secs(3600)))) },
            |_, _| {},
        ));
        assert_eq!(res.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(attempts, 1);
    }

    #[test]
    fn the_run_budget_caps_retries_over_all_operations() {
        let r = Retrier::new(
            RetryPolicy::default()
                .with_delays(Duration::from_millis(1), Duration::from_millis(1))
                .with_max_retries(10)
                .with_budget(3),
        );
        let mut total = 0;
        for _ in 0..3 {
            let (res, attempts) =
                rt().block_on(r.run(|| async { Err::<(), _>(busy(None)) }, |_, _| {}));
            assert!(res.is_err());
            total += attempts;
        }
        // Three operations, three retries in all: six attempts, not thirty-three.
        assert_eq!(total, 6);
        assert_eq!(r.used(), 3);
    }

    #[test]
    fn per_operation_retries_are_capped() {
        let r = Retrier::new(
            RetryPolicy::default()
                .with_delays(Duration::from_millis(1), Duration::from_millis(1))
                .with_max_retries(2),
        );
        let (_, attempts) = rt().block_on(r.run(|| async { Err::<(), _>(busy(None)) }, |_, _| {}));
        assert_eq!(attempts, 3);
    }
}
