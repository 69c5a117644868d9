//! Rate limiting with token buckets (governor's GCRA): per client IP for login and registration,
//! per user for the other endpoints ruma marks `rate_limited`. Over the limit → 429
//! `M_LIMIT_EXCEEDED` with `retry_after_ms` (spec: "Rate limiting").

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::{RateLimit, RateLimitsSection};
use crate::error::{Error, ErrorKind, Result};

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Login,
    Register,
    Client,
}

pub struct RateLimiter {
    enabled: bool,
    login: DefaultKeyedRateLimiter<String>,
    register: DefaultKeyedRateLimiter<String>,
    client: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

fn quota(limit: &RateLimit) -> Quota {
    let period = Duration::from_secs_f64(1.0 / limit.per_second.max(1e-6));
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst)
}

/// Forget idle keys every this many checks, so the maps stay bounded.
const RETAIN_EVERY: u64 = 10_000;

impl RateLimiter {
    pub fn new(c: &RateLimitsSection) -> Self {
        RateLimiter {
            enabled: c.enabled,
            login: DefaultKeyedRateLimiter::keyed(quota(&c.login)),
            register: DefaultKeyedRateLimiter::keyed(quota(&c.register)),
            client: DefaultKeyedRateLimiter::keyed(quota(&c.client)),
            checks: AtomicU64::new(0),
        }
    }

    /// Take one token for `key` (an IP or a user ID) from the class's bucket.
    pub fn check(&self, class: Class, key: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let limiter = match class {
            Class::Login => &self.login,
            Class::Register => &self.register,
            Class::Client => &self.client,
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            for l in [&self.login, &self.register, &self.client] {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            Error::new(ErrorKind::LimitExceeded { retry_after_ms }, "Too many requests")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let c = RateLimitsSection { login: RateLimit { per_second: 0.5, burst: 2 }, ..Default::default() };
        let r = RateLimiter::new(&c);
        assert!(r.check(Class::Login, "10.0.0.1").is_ok());
        assert!(r.check(Class::Login, "10.0.0.1").is_ok());
        let err = r.check(Class::Login, "10.0.0.1").unwrap_err();
        match err.kind() {
            ErrorKind::LimitExceeded { retry_after_ms } => assert!((1..=2000).contains(&retry_after_ms)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(r.check(Class::Login, "10.0.0.2").is_ok(), "buckets are per key");
        assert!(r.check(Class::Client, "10.0.0.1").is_ok(), "and per class");
    }
}
