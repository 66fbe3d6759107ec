//! A small deterministic random source (SplitMix64): the lab's content is the
//! same for the same VM on every `lab init` (only timestamps and ids differ),
//! and activity rounds draw from a seed taken from the system.

pub struct Rng(u64);

impl Rng {
    /// A generator seeded from a label (FNV-1a of its bytes).
    pub fn seeded(label: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng(h)
    }

    /// A generator seeded from the system's random source (falls back to the clock).
    pub fn from_system() -> Rng {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            seed = (now.as_nanos() as u64).to_le_bytes();
        }
        Rng(u64::from_le_bytes(seed))
    }

    /// A generator for a sub-task, independent of further draws from `self`.
    pub fn fork(&mut self, label: &str) -> Rng {
        let mut child = Rng::seeded(label);
        child.0 ^= self.next_u64();
        child
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    /// Lower-case hex of `n` random bytes.
    pub fn hex(&mut self, n: usize) -> String {
        hex::encode(self.bytes(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_generators_repeat_and_differ_by_label() {
        let a: Vec<u64> = (0..4).map({
            let mut r = Rng::seeded("web-01");
            move |_| r.next_u64()
        }).collect();
        let b: Vec<u64> = (0..4).map({
            let mut r = Rng::seeded("web-01");
            move |_| r.next_u64()
        }).collect();
        let mut c = Rng::seeded("web-02");
        assert_eq!(a, b);
        assert_ne!(a[0], c.next_u64());
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = Rng::seeded("x");
        for _ in 0..1000 {
            let v = r.range(8, 32);
            assert!((8..=32).contains(&v), "{v}");
        }
        assert_eq!(r.below(0), 0);
        let buf = r.bytes(13);
        assert_eq!(buf.len(), 13);
    }
}
