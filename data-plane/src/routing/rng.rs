//! A small, fast, non-cryptographic random source for load balancing (SplitMix64), seeded per
//! thread from the clock and the thread, so picks need no lock and no extra dependency.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

/// SplitMix64 state.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from this thread's stream.
    pub fn thread() -> Self {
        thread_local! {
            static STATE: Cell<u64> = Cell::new(seed());
        }
        STATE.with(|s| {
            let mut rng = Self(s.get());
            let out = Self(rng.next_u64());
            s.set(rng.0);
            out
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0); the modulo bias is negligible for small `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

fn seed() -> u64 {
    // RandomState is seeded randomly per process and differs per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::seeded(42);
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            seen[rng.below(4) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (900..1100).contains(n)), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        let (mut a, mut b) = (Rng::thread(), Rng::thread());
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
