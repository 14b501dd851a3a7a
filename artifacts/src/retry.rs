//! Exponential backoff with jitter, so that a fleet retrying a flaky source does not do so in lockstep.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (0-based): `base · 2^attempt`, capped, then scaled
    /// by a random factor in [0.5, 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1u32 << attempt.min(20));
        exponential.min(self.max_delay).mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_cap() {
        let policy =
            RetryPolicy { attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for _ in 0..100 {
            let d0 = policy.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 < Duration::from_millis(100), "{d0:?}");
            let d2 = policy.delay(2);
            assert!(d2 >= Duration::from_millis(200) && d2 < Duration::from_millis(400), "{d2:?}");
            let d9 = policy.delay(9);
            assert!(d9 >= Duration::from_millis(500) && d9 < Duration::from_secs(1), "{d9:?}");
            assert!(policy.delay(40) < Duration::from_secs(1));
        }
    }
}
