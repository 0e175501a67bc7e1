//! Rate limits per destination: a GCRA limiter (governor) sized so that no window of the vendor's
//! period ever sees more than the vendor's limit, plus a "not before" instant the vendor itself can
//! push out (429 Retry-After, or headers saying the window is spent).

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tandem_connectors::RateLimit;

/// GCRA quota for "N per T". A burst equal to N would let ~2N through in the first window (a full
/// burst, then the steady rate), so the burst is a tenth of N and the steady rate is the remaining
/// (N − burst) per T, rounded so it never exceeds it: burst + steady ≤ N in every window of length T.
pub fn quota_for(limit: RateLimit) -> Quota {
    let n = limit.requests.max(1);
    let burst = (n / 10).max(1);
    let steady = n - burst;
    if steady == 0 {
        // "1 per T": one request, then one per T.
        let period = limit.per.max(Duration::from_millis(1));
        return Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
    }
    let period_ns = limit.per.as_nanos().div_ceil(u128::from(steady));
    let period = Duration::from_nanos(u64::try_from(period_ns).unwrap_or(u64::MAX).max(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// The limiter one destination's workers share.
pub struct DestinationLimiter {
    gcra: DefaultDirectRateLimiter,
    /// Unix ms before which nobody calls this destination (vendor-imposed).
    not_before_ms: AtomicI64,
}

impl DestinationLimiter {
    pub fn new(limit: RateLimit) -> Self {
        DestinationLimiter {
            gcra: RateLimiter::direct(quota_for(limit)),
            not_before_ms: AtomicI64::new(0),
        }
    }

    /// Waits for a slot: first any vendor-imposed pause, then the GCRA cell.
    pub async fn ready(&self) {
        loop {
            let wait = self.not_before_ms.load(Ordering::Relaxed) - crate::store::sqlite::now_ms();
            if wait <= 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        self.gcra.until_ready().await;
    }

    /// How long the vendor still wants us to wait, if at all. Workers wait this out *before*
    /// claiming, so a long Retry-After never outlives the lease on rows they hold.
    pub fn vendor_wait(&self) -> Option<Duration> {
        let wait = self.not_before_ms.load(Ordering::Relaxed) - crate::store::sqlite::now_ms();
        (wait > 0).then(|| Duration::from_millis(wait as u64))
    }

    /// The vendor said to wait: nobody calls before `now + d` (pauses only ever extend).
    pub fn hold_off(&self, d: Duration) {
        let until = crate::store::sqlite::now_ms() + d.as_millis() as i64;
        self.not_before_ms.fetch_max(until, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use governor::clock::{Clock, FakeRelativeClock, Reference};

    use super::*;

    /// Drives a limiter with a fake clock as fast as it allows and returns the most requests that
    /// ever fell inside one window of `per`.
    fn busiest_window(limit: RateLimit, run_for: Duration) -> usize {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota_for(limit), clock.clone());
        let start = clock.now();
        let mut recent: VecDeque<Duration> = VecDeque::new();
        let mut busiest = 0;
        let step = Duration::from_millis(1);
        let mut elapsed = Duration::ZERO;
        while elapsed < run_for {
            while limiter.check().is_ok() {
                recent.push_back(elapsed);
            }
            while recent.front().is_some_and(|t| elapsed - *t >= limit.per) {
                recent.pop_front();
            }
            busiest = busiest.max(recent.len());
            clock.advance(step);
            elapsed = clock.now().duration_since(start).into();
        }
        busiest
    }

    #[test]
    fn no_window_ever_exceeds_the_vendor_limit() {
        for (n, secs) in [(190, 10), (100, 10), (250, 10), (5, 1), (1, 1), (2, 1)] {
            let limit = RateLimit {
                requests: n,
                per: Duration::from_secs(secs),
            };
            let busiest = busiest_window(limit, Duration::from_secs(secs * 4));
            assert!(
                busiest <= n as usize,
                "{limit}: {busiest} requests in one window"
            );
            // The first window loses one slot to GCRA's phase; every later one gets the full limit.
            assert!(
                busiest + 1 >= n as usize,
                "{limit}: only {busiest} per window, too timid"
            );
        }
    }

    #[tokio::test]
    async fn hold_off_delays_the_next_slot() {
        let l = DestinationLimiter::new(RateLimit {
            requests: 100,
            per: Duration::from_secs(1),
        });
        assert_eq!(l.vendor_wait(), None);
        l.hold_off(Duration::from_millis(80));
        assert!(
            l.vendor_wait()
                .is_some_and(|w| w <= Duration::from_millis(80))
        );
        let t = std::time::Instant::now();
        l.ready().await;
        assert!(t.elapsed() >= Duration::from_millis(70));
    }
}
