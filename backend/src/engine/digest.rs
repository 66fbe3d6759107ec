//! Chunk digests: BLAKE3 of the plain chunk, keyed BLAKE3 when the repository
//! is encrypted (so digests reveal nothing about content). The all-zero digest
//! is reserved: in a fixed index it marks an all-zero chunk, which is never stored.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Marker for an all-zero chunk in a fixed index.
    pub const ZERO_CHUNK: Digest = Digest([0u8; 32]);

    pub fn is_zero_marker(&self) -> bool {
        self.0 == [0u8; 32]
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Digest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

/// Computes chunk digests, plain or keyed.
#[derive(Clone)]
pub struct Hasher {
    key: Option<[u8; 32]>,
}

impl Hasher {
    pub fn plain() -> Self {
        Hasher { key: None }
    }
    pub fn keyed(key: [u8; 32]) -> Self {
        Hasher { key: Some(key) }
    }
    pub fn digest(&self, data: &[u8]) -> Digest {
        let h = match &self.key {
            Some(k) => blake3::keyed_hash(k, data),
            None => blake3::hash(data),
        };
        let mut d = *h.as_bytes();
        // Never collide with the zero marker (probability 2^-256, but be exact).
        if d == [0u8; 32] {
            d[31] = 1;
        }
        Digest(d)
    }
}

/// True when every byte is zero (fast path over u64 words).
pub fn is_all_zero(data: &[u8]) -> bool {
    let (pre, mid, post) = unsafe { data.align_to::<u128>() };
    pre.iter().all(|&b| b == 0) && mid.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_plain_differ_and_roundtrip_hex() {
        let a = Hasher::plain().digest(b"abc");
        let b = Hasher::keyed([7; 32]).digest(b"abc");
        assert_ne!(a, b);
        assert_eq!(Digest::from_hex(&a.to_hex()), Some(a));
        assert!(!a.is_zero_marker());
    }

    #[test]
    fn zero_detection() {
        let mut v = vec![0u8; 65536 + 3];
        assert!(is_all_zero(&v));
        v[65536 + 2] = 1;
        assert!(!is_all_zero(&v));
        v[65536 + 2] = 0;
        v[1] = 9;
        assert!(!is_all_zero(&v));
    }
}
