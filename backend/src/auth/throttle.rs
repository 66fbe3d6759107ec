//! Throttling of failed sign-ins, per username and per client address.
//!
//! Each key keeps the times of its recent failures. When a key has `limit`
//! failures within `window`, sign-ins under it are refused (even with the
//! right password) until the oldest failure ages out.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_USER: usize = 5;
pub const PER_ADDRESS: usize = 20;

#[derive(Default)]
pub struct Throttle {
    failures: HashMap<String, VecDeque<Instant>>,
}

/// The throttle keys of one sign-in attempt, with their limits.
pub fn keys(username: &str, address: Option<&str>) -> Vec<(String, usize)> {
    let mut keys = vec![(format!("user:{}", username.to_lowercase()), PER_USER)];
    if let Some(addr) = address {
        keys.push((format!("addr:{addr}"), PER_ADDRESS));
    }
    keys
}

impl Throttle {
    fn prune(&mut self, now: Instant) {
        self.failures.retain(|_, times| {
            while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
    }

    /// `Err(wait)` when any key is over its limit.
    pub fn check(&mut self, keys: &[(String, usize)], now: Instant) -> Result<(), Duration> {
        self.prune(now);
        let mut wait = None;
        for (key, limit) in keys {
            if let Some(times) = self.failures.get(key) {
                if times.len() >= *limit {
                    let oldest = times[times.len() - limit];
                    let w = WINDOW.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn fail(&mut self, keys: &[(String, usize)], now: Instant) {
        for (key, _) in keys {
            self.failures.entry(key.clone()).or_default().push_back(now);
        }
    }

    /// A successful sign-in clears the user's failures (not the address's).
    pub fn succeed(&mut self, keys: &[(String, usize)]) {
        if let Some((user_key, _)) = keys.first() {
            self.failures.remove(user_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_releases_after_the_window() {
        let mut t = Throttle::default();
        let k = keys("Bob", Some("10.0.0.1"));
        let start = Instant::now();
        for _ in 0..PER_USER {
            assert!(t.check(&k, start).is_ok());
            t.fail(&k, start);
        }
        let wait = t.check(&k, start).unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60));
        // Same user, other case, other address: still locked.
        assert!(t.check(&keys("bob", Some("10.0.0.2")), start).is_err());
        // Another user from the same address is not locked yet.
        assert!(t.check(&keys("alice", Some("10.0.0.1")), start).is_ok());
        assert!(t.check(&k, start + WINDOW).is_ok());
    }
}
