//! Admission of a Graph operation (direct or batch item): the per-app concurrency limit, the
//! failure knobs (every Nth, injected), the configured latency, then the operation itself.

use std::sync::Arc;

use super::config::{Failure, RetryAfter};
use super::recorder::ThrottleCause;
use super::reply::{failure_reply, too_many_requests, Corr, Op, Reply};
use super::routes::{operation, path_user};
use super::state::{Inner, TokenInfo};

/// Releases a concurrency slot when dropped (also when the client goes away mid-request).
struct Slot {
    inner: Arc<Inner>,
    app: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        if let Some(n) = st.in_flight.get_mut(&self.app) {
            *n = n.saturating_sub(1);
        }
        st.raw_in_flight = st.raw_in_flight.saturating_sub(1);
    }
}

enum Admission {
    Refused(RetryAfter),
    Admitted(Option<(Failure, ThrottleCause)>),
}

/// Admission (per-app concurrency), the failure knobs, then latency and the operation itself.
pub(super) async fn gated(inner: &Arc<Inner>, op: &Op, token: &TokenInfo, corr: &Corr) -> Reply {
    let (admission, latency, raw_now, user_id) = {
        let mut st = inner.lock();
        let user_id = path_user(&st, &op.path);
        st.raw_in_flight += 1;
        st.max_raw_in_flight = st.max_raw_in_flight.max(st.raw_in_flight);
        let raw_now = st.raw_in_flight;
        let current = st.in_flight.get(&token.app_id).copied().unwrap_or(0);
        let limit = st.cfg.max_concurrent_per_app;
        let admission = if limit.is_some_and(|n| current >= n) {
            st.raw_in_flight -= 1;
            Admission::Refused(st.cfg.concurrency_retry_after)
        } else {
            *st.in_flight.entry(token.app_id.clone()).or_insert(0) += 1;
            st.max_admitted = st.max_admitted.max(current + 1);
            st.ops += 1;
            let ops = st.ops;
            let failure = match st.injected.pop_front() {
                Some(f) => Some((f, ThrottleCause::Injected)),
                None => st
                    .cfg
                    .throttle
                    .as_ref()
                    .filter(|t| t.every_nth > 0 && ops.is_multiple_of(t.every_nth))
                    .map(|t| (t.failure.clone(), ThrottleCause::EveryNth)),
            };
            Admission::Admitted(failure)
        };
        (admission, st.cfg.latency, raw_now, user_id)
    };
    let mut reply = match admission {
        Admission::Refused(ra) => {
            let mut r = too_many_requests(corr).retry_after(ra);
            r.throttled = Some(ThrottleCause::Concurrency);
            r
        }
        Admission::Admitted(failure) => {
            let _slot = Slot {
                inner: inner.clone(),
                app: token.app_id.clone(),
            };
            match failure {
                Some((f, cause)) => {
                    let mut r = failure_reply(&f, corr);
                    r.throttled = Some(cause);
                    r
                }
                None => {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    operation(inner, op, token, corr)
                }
            }
        }
    };
    reply.in_flight_at_arrival = Some(raw_now);
    if reply.user_id.is_none() {
        reply.user_id = user_id;
    }
    reply
}
