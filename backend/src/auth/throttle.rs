//! Throttling of failed sign-ins, per username and per client address.
//!
//! Each key keeps the times of its recent failures. When a key has `limit`
//! failures within `window`, sign-ins under it are refused (even with the
//! right password) until the oldest failure ages out.
//!
//! The check is atomic with the attempt: [`begin`] reserves a place under
//! every key before the password is checked, and attempts still being
//! checked count against the limit. So concurrent wrong passwords for one
//! user cannot get more than `limit` evaluations between them; the rest are
//! refused as locked out. The reservation ends when the [`Attempt`] is
//! settled (a failure is recorded) or dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_USER: usize = 5;
pub const PER_ADDRESS: usize = 20;

/// How long a sign-in refused only because others for the same key are
/// being checked should wait.
const BUSY_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Throttle {
    failures: HashMap<String, VecDeque<Instant>>,
    /// Attempts whose password is being checked, per key.
    pending: HashMap<String, usize>,
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

    /// `Err(wait)` when any key's failures, plus the attempts under it still
    /// being checked, reach its limit.
    pub fn check(&mut self, keys: &[(String, usize)], now: Instant) -> Result<(), Duration> {
        self.prune(now);
        let mut wait = None;
        for (key, limit) in keys {
            let failed = self.failures.get(key).map_or(0, VecDeque::len);
            let pending = self.pending.get(key).copied().unwrap_or(0);
            if failed + pending >= *limit {
                let w = match self.failures.get(key) {
                    Some(times) if times.len() >= *limit => {
                        WINDOW.saturating_sub(now.duration_since(times[times.len() - limit]))
                    }
                    _ => BUSY_WAIT,
                };
                wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    fn reserve(&mut self, keys: &[(String, usize)]) {
        for (key, _) in keys {
            *self.pending.entry(key.clone()).or_default() += 1;
        }
    }

    fn release(&mut self, keys: &[(String, usize)]) {
        for (key, _) in keys {
            if let Some(n) = self.pending.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.pending.remove(key);
                }
            }
        }
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

/// The shared throttle of a server.
pub type Shared = Arc<Mutex<Throttle>>;

fn lock(throttle: &Shared) -> std::sync::MutexGuard<'_, Throttle> {
    throttle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks `keys` and, in the same step, reserves a place under each for an
/// attempt; `Err(wait)` when any key is locked (or full of attempts being
/// checked).
pub fn begin(throttle: &Shared, keys: Vec<(String, usize)>, now: Instant) -> Result<Attempt, Duration> {
    let mut t = lock(throttle);
    t.check(&keys, now)?;
    t.reserve(&keys);
    Ok(Attempt { throttle: throttle.clone(), keys, settled: false })
}

/// A sign-in attempt holding its place under its keys until it is settled
/// or dropped.
pub struct Attempt {
    throttle: Shared,
    keys: Vec<(String, usize)>,
    settled: bool,
}

impl Attempt {
    /// Wrong password (or unknown or disabled user): counts as a failure.
    pub fn failed(mut self) {
        let mut t = lock(&self.throttle);
        t.release(&self.keys);
        t.fail(&self.keys, Instant::now());
        self.settled = true;
    }

    /// The right password: clears the user's failures.
    pub fn succeeded(mut self) {
        let mut t = lock(&self.throttle);
        t.release(&self.keys);
        t.succeed(&self.keys);
        self.settled = true;
    }
}

impl Drop for Attempt {
    /// Abandoned (an error, a client gone): the place is given back.
    fn drop(&mut self) {
        if !self.settled {
            lock(&self.throttle).release(&self.keys);
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

    #[test]
    fn attempts_being_checked_count_against_the_limit() {
        let shared = Shared::default();
        let now = Instant::now();
        let attempts: Vec<_> = (0..PER_USER).map(|_| begin(&shared, keys("eve", None), now).unwrap()).collect();
        assert!(begin(&shared, keys("eve", None), now).is_err(), "a sixth concurrent attempt is refused");
        // Given back when dropped unsettled; counted when failed.
        drop(attempts);
        let a = begin(&shared, keys("eve", None), now).unwrap();
        a.failed();
        assert_eq!(lock(&shared).failures.get("user:eve").map(VecDeque::len), Some(1));
        assert!(lock(&shared).pending.is_empty());
    }
}
