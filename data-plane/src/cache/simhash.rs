//! Sign codes for the semantic index: on which side of each of [`BITS`] fixed random
//! hyperplanes through the origin a vector lies (random-hyperplane hashing). Two vectors at
//! angle θ fall on different sides of a random hyperplane with probability θ/π, whatever the
//! distribution of the vectors, so the Hamming distance of two codes estimates their angle,
//! and a scan of 64-byte codes ranks a scope's records by similarity for a twenty-fourth of
//! the memory traffic of their 1,536-byte vectors. The estimate only proposes candidates: the
//! index decides on the exact cosine.
//!
//! The hot loops (Hamming distance, dot product) run through `pulp`'s runtime dispatch, so a
//! CPU with AVX2, FMA and POPCNT uses them while the binary stays built for baseline x86-64
//! (whose popcount is a slow bit trick).

use super::embed::DIMENSIONS;

/// 64-bit words in a code.
pub const WORDS: usize = 8;
/// Hyperplanes, one bit each.
pub const BITS: usize = WORDS * 64;

/// A vector's code: bit `b` is set when the vector lies on the positive side of hyperplane `b`.
pub type Code = [u64; WORDS];

/// The fixed hyperplanes (their normals, Gaussian, from a fixed seed: codes made by any proxy
/// or any run agree).
pub struct Hyperplanes {
    /// `BITS` normals of `DIMENSIONS` each, one after another.
    normals: Vec<f32>,
    arch: pulp::Arch,
}

impl std::fmt::Debug for Hyperplanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hyperplanes({BITS} x {DIMENSIONS})")
    }
}

impl Default for Hyperplanes {
    fn default() -> Self {
        Self::new()
    }
}

impl Hyperplanes {
    pub fn new() -> Self {
        let mut rng = SplitMix(0x5377_6974_6368_7961);
        let mut normals = Vec::with_capacity(BITS * DIMENSIONS);
        while normals.len() < BITS * DIMENSIONS {
            // Box–Muller: two standard normals from two uniforms in (0, 1].
            let (u1, u2) = (rng.unit(), rng.unit());
            let radius = (-2.0 * u1.ln()).sqrt();
            let angle = std::f64::consts::TAU * u2;
            normals.push((radius * angle.cos()) as f32);
            normals.push((radius * angle.sin()) as f32);
        }
        normals.truncate(BITS * DIMENSIONS);
        Self {
            normals,
            arch: pulp::Arch::new(),
        }
    }

    /// The code of `vector` (`DIMENSIONS` long).
    pub fn code(&self, vector: &[f32]) -> Code {
        let mut code = [0u64; WORDS];
        for (b, normal) in self.normals.chunks_exact(DIMENSIONS).enumerate() {
            if dot(self.arch, normal, vector) >= 0.0 {
                code[b / 64] |= 1 << (b % 64);
            }
        }
        code
    }

    /// Up to `k` indexes into `codes` nearest to `query` by Hamming distance, among those
    /// `keep` accepts (asked only of indexes near enough to enter the set), nearest first.
    pub fn nearest(
        &self,
        codes: &[Code],
        query: &Code,
        k: usize,
        mut keep: impl FnMut(usize) -> bool,
    ) -> Vec<usize> {
        if k == 0 {
            return Vec::new();
        }
        // The loop only compares and appends (a heap or a store of every distance lets the
        // compiler turn the popcounts into slower vector code); the kept set is cut back to
        // its `k` nearest whenever it doubles.
        let scan = Scan {
            codes,
            query,
            k,
            keep: &mut keep,
            kept: Vec::with_capacity(2 * k),
        };
        let mut kept = self.arch.dispatch(scan);
        kept.sort_unstable();
        kept.truncate(k);
        kept.into_iter().map(|(_, i)| i).collect()
    }

    /// The dot product of `a` and `b` (the cosine of unit vectors).
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        dot(self.arch, a, b)
    }
}

/// The Hamming scan, compiled for each instruction set `pulp` dispatches to (a struct rather
/// than a closure: a closure's call shim is not inlined into the dispatched function, so it
/// would run without POPCNT).
struct Scan<'a, F> {
    codes: &'a [Code],
    query: &'a Code,
    k: usize,
    keep: &'a mut F,
    kept: Vec<(u32, usize)>,
}

impl<F: FnMut(usize) -> bool> pulp::WithSimd for Scan<'_, F> {
    type Output = Vec<(u32, usize)>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Scan {
            codes,
            query,
            k,
            keep,
            mut kept,
        } = self;
        let mut bound = u32::MAX;
        for (i, code) in codes.iter().enumerate() {
            let mut d = 0;
            for w in 0..WORDS {
                d += (code[w] ^ query[w]).count_ones();
            }
            if d < bound && keep(i) {
                kept.push((d, i));
                if kept.len() == 2 * k {
                    bound = cut(&mut kept, k);
                }
            }
        }
        kept
    }
}

/// Keeps the `k` nearest of `kept`; returns the distance a newcomer must be below to enter.
#[inline(never)]
fn cut(kept: &mut Vec<(u32, usize)>, k: usize) -> u32 {
    kept.select_nth_unstable(k - 1);
    kept.truncate(k);
    // Ties with the farthest kept are dropped: the set is full at that distance.
    kept.iter().map(|e| e.0).max().unwrap_or(u32::MAX)
}

/// A dot product summed in sixteen lanes (two AVX registers) so it vectorises.
fn dot(arch: pulp::Arch, a: &[f32], b: &[f32]) -> f32 {
    arch.dispatch(Dot(a, b))
}

struct Dot<'a>(&'a [f32], &'a [f32]);

impl pulp::WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f32 {
        let mut lanes = [0.0f32; 16];
        let (ca, cb) = (self.0.chunks_exact(16), self.1.chunks_exact(16));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for l in 0..16 {
                lanes[l] += x[l] * y[l];
            }
        }
        lanes.iter().sum::<f32>() + tail
    }
}

/// A small deterministic generator (SplitMix64), for the hyperplanes and for tests.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A random unit vector of `DIMENSIONS` (Gaussian coordinates, normalised).
    pub fn unit_vector(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMENSIONS)
            .map(|_| {
                let (u1, u2) = (self.unit(), self.unit());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// A unit vector whose cosine with the unit vector `v` is `cosine`.
    pub fn near(&mut self, v: &[f32], cosine: f32) -> Vec<f32> {
        let noise = self.unit_vector();
        // The part of the noise orthogonal to `v`, made unit.
        let along: f32 = noise.iter().zip(v).map(|(n, x)| n * x).sum();
        let mut ortho: Vec<f32> = noise.iter().zip(v).map(|(n, x)| n - along * x).collect();
        let norm = ortho.iter().map(|x| x * x).sum::<f32>().sqrt();
        ortho.iter_mut().for_each(|x| *x /= norm);
        let sine = (1.0 - cosine * cosine).max(0.0).sqrt();
        v.iter()
            .zip(&ortho)
            .map(|(x, o)| cosine * x + sine * o)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hamming_distance_follows_the_angle() {
        let planes = Hyperplanes::new();
        let mut rng = SplitMix(7);
        let a = rng.unit_vector();
        let hamming = |x: &Code, y: &Code| -> u32 {
            x.iter().zip(y).map(|(p, q)| (p ^ q).count_ones()).sum()
        };
        let code = planes.code(&a);
        assert_eq!(hamming(&code, &planes.code(&a)), 0);
        // Expected θ/π · 512: cosine 0.95 → 51 bits, cosine 0 → 256 bits.
        let near = hamming(&code, &planes.code(&rng.near(&a, 0.95)));
        let far = hamming(&code, &planes.code(&rng.near(&a, 0.0)));
        assert!((20..90).contains(&near), "{near}");
        assert!((200..310).contains(&far), "{far}");
        let b = rng.near(&a, 0.9);
        assert!((planes.dot(&a, &b) - 0.9).abs() < 1e-4);
    }

    #[test]
    fn nearest_codes_come_first_and_unkept_ones_never() {
        let planes = Hyperplanes::new();
        let mut rng = SplitMix(11);
        let a = rng.unit_vector();
        let mut codes: Vec<Code> = (0..300).map(|_| planes.code(&rng.unit_vector())).collect();
        codes[17] = planes.code(&rng.near(&a, 0.97));
        codes[42] = planes.code(&rng.near(&a, 0.9));
        codes[99] = planes.code(&a);
        let query = planes.code(&a);
        assert_eq!(planes.nearest(&codes, &query, 3, |_| true), [99, 17, 42]);
        assert_eq!(planes.nearest(&codes, &query, 2, |i| i != 99), [17, 42]);
        assert!(planes.nearest(&codes, &query, 0, |_| true).is_empty());
    }
}
