//! When to try a failed delivery again, and when to stop: exponential backoff with full jitter
//! (a random delay between zero and the capped exponential), never sooner than the vendor asked,
//! up to an attempt count and an age, after which the delivery is a dead letter.

use std::time::Duration;

use rand::Rng;

/// The retry budget of one destination.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub base: Duration,
    pub cap: Duration,
}

/// What to do after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryIn(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// `attempts` counts the attempt that just failed; `age` is time since the delivery was queued.
    pub fn next(
        &self,
        attempts: u32,
        age: Duration,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Next {
        if attempts >= self.max_attempts || age >= self.max_age {
            return Next::GiveUp;
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(30));
        let ceiling = exp.min(self.cap);
        let jittered = Duration::from_millis(
            rng.random_range(0..=ceiling.as_millis().min(u64::MAX as u128) as u64),
        );
        Next::RetryIn(jittered.max(retry_after.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        max_age: Duration::from_secs(3600),
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn delays_stay_under_the_capped_exponential_and_spread_out() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempts in 1..5 {
            let ceiling = Duration::from_secs(1 << (attempts - 1)).min(POLICY.cap);
            let delays: Vec<_> = (0..200)
                .map(
                    |_| match POLICY.next(attempts, Duration::ZERO, None, &mut rng) {
                        Next::RetryIn(d) => d,
                        Next::GiveUp => panic!("gave up early"),
                    },
                )
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling));
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(distinct.len() > 50, "full jitter spreads retries out");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_budgets_end_in_giving_up() {
        let mut rng = StdRng::seed_from_u64(1);
        let ra = Duration::from_secs(30);
        assert!(
            matches!(POLICY.next(1, Duration::ZERO, Some(ra), &mut rng), Next::RetryIn(d) if d >= ra)
        );
        assert_eq!(POLICY.next(5, Duration::ZERO, None, &mut rng), Next::GiveUp);
        assert_eq!(
            POLICY.next(1, Duration::from_secs(3600), None, &mut rng),
            Next::GiveUp
        );
        let huge = RetryPolicy {
            max_attempts: 1000,
            ..POLICY
        };
        assert!(
            matches!(huge.next(999, Duration::ZERO, None, &mut rng), Next::RetryIn(d) if d <= POLICY.cap)
        );
    }
}
