//! Password hashing with argon2id, off the async threads and at most
//! [`MAX_CONCURRENT_HASHES`] at a time: each hash takes ~19 MiB and a core
//! for a while, so a flood of sign-ins queues here instead of exhausting
//! memory and CPU.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use anyhow::Context;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// How many argon2 computations (hash or verify) may run at once.
pub const MAX_CONCURRENT_HASHES: usize = 2;

static PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT_HASHES);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most argon2 computations that ever ran at once in this process.
pub fn peak_concurrent_hashes() -> usize {
    PEAK.load(Ordering::SeqCst)
}

/// Counts a running computation for as long as it lives.
struct Running;

impl Running {
    fn start() -> Self {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `work` on the blocking pool once a permit is free.
async fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, tokio::task::JoinError> {
    // The semaphore is never closed, so acquiring only waits.
    let permit = PERMITS.acquire().await.expect("the hashing semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _running = Running::start();
        work()
    })
    .await
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    bounded(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("unable to hash a password - {e}"))
    })
    .await
    .context("password hashing task failed")?
}

/// A hash of a random password, verified against when the user does not
/// exist so that a sign-in takes as long either way.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(b"decoy password for unknown users", &salt).map(|h| h.to_string()).unwrap_or_default()
});

/// Whether `password` matches `stored`; `None` checks against a decoy and
/// answers false.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    bounded(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DECOY.clone());
        let Ok(parsed) = PasswordHash::new(&stored) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .unwrap_or(false)
}

/// A strong random password: 24 characters from an unambiguous alphabet.
pub fn generate() -> String {
    use argon2::password_hash::rand_core::RngCore;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoys_never_match() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("wrong".into(), Some(h)).await);
        assert!(!verify("decoy password for unknown users".into(), None).await);
        let p = generate();
        assert_eq!(p.len(), 24);
        assert_ne!(p, generate());
    }
}
