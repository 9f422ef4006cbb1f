//! Sliced Wasserstein distance on Laplacian-pyramid patches, after ProGAN (Karras et al. 2018,
//! `metrics/sliced_wasserstein.py`): 5x5 binomial pyramid, 128 random 7x7x3 patches per image per
//! level, per-channel normalisation, 4 repeats x 128 random unit directions, sorted projections,
//! mean absolute difference, reported x1e3 per level and averaged.
//!
//! Images are `[3, H, W]` f32 planes (any scale: descriptors are normalised). The projection is
//! one `gemm` per repeat and the (radix) sorts run in parallel (rayon), with no per-patch allocation.
//! Patch positions and directions come from seeded ChaCha8 generators (directions: normalised
//! `rand_distr::StandardNormal` draws), so a seed always gives the same number.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

pub const PATCH: usize = 7;
pub const PATCHES_PER_IMAGE: usize = 128;
pub const DIR_REPEATS: usize = 4;
pub const DIRS_PER_REPEAT: usize = 128;
const DESC: usize = PATCH * PATCH * 3;

/// One image as 3 planes of `h x w`.
#[derive(Clone, Debug)]
pub struct Planes {
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Planes {
    pub fn new(h: usize, w: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), 3 * h * w);
        Planes { h, w, data }
    }
    /// From HWC u8 pixels.
    pub fn from_hwc_u8(h: usize, w: usize, px: &[u8]) -> Self {
        let mut data = vec![0f32; 3 * h * w];
        for (i, p) in px.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = p[c] as f32;
            }
        }
        Planes { h, w, data }
    }
    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
}

/// Splits `[n, 3, H, W]` floats in [0, 1] into planes scaled to [0, 255].
pub fn to_planes(images: &[f32], h: usize, w: usize) -> Vec<Planes> {
    images
        .chunks_exact(3 * h * w)
        .map(|c| Planes::new(h, w, c.iter().map(|v| v * 255.0).collect()))
        .collect()
}

/// `n` of `ids` in a seeded random order: how the evaluator (and the trainer's quality probe)
/// pick the held-out and train images they score against.
pub fn sample_ids(ids: &[usize], n: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut v = ids.to_vec();
    v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    v.truncate(n);
    v
}

const KERNEL: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// Mirror index (scipy `mode='mirror'`: no edge repeat).
fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Separable 5x5 binomial blur with mirrored borders, scaled by `gain`. Rows are padded once
/// and the vertical pass combines whole rows, so both inner loops vectorise.
fn blur(p: &Planes, gain: f32) -> Planes {
    let (h, w) = (p.h, p.w);
    let mut tmp = vec![0f32; 3 * h * w];
    let mut out = vec![0f32; 3 * h * w];
    let mut padded = vec![0f32; w + 4];
    for (src, dst) in p.data.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
        for (i, v) in padded.iter_mut().enumerate() {
            *v = src[mirror(i as isize - 2, w)];
        }
        for (x, d) in dst.iter_mut().enumerate() {
            let t = &padded[x..x + 5];
            *d = KERNEL[0] * t[0]
                + KERNEL[1] * t[1]
                + KERNEL[2] * t[2]
                + KERNEL[3] * t[3]
                + KERNEL[4] * t[4];
        }
    }
    for c in 0..3 {
        let plane = &tmp[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            let rows: [&[f32]; 5] =
                std::array::from_fn(|k| &plane[mirror(y as isize + k as isize - 2, h) * w..][..w]);
            let dst = &mut out[(c * h + y) * w..][..w];
            for (x, d) in dst.iter_mut().enumerate() {
                let s = KERNEL[0] * rows[0][x]
                    + KERNEL[1] * rows[1][x]
                    + KERNEL[2] * rows[2][x]
                    + KERNEL[3] * rows[3][x]
                    + KERNEL[4] * rows[4][x];
                *d = s * gain;
            }
        }
    }
    Planes { h, w, data: out }
}

/// Blur then keep every second pixel.
pub fn pyr_down(p: &Planes) -> Planes {
    let b = blur(p, 1.0);
    let (h2, w2) = (p.h.div_ceil(2), p.w.div_ceil(2));
    let mut data = vec![0f32; 3 * h2 * w2];
    for c in 0..3 {
        for y in 0..h2 {
            for x in 0..w2 {
                data[(c * h2 + y) * w2 + x] = b.at(c, 2 * y, 2 * x);
            }
        }
    }
    Planes { h: h2, w: w2, data }
}

/// Insert zeros, blur with gain 4 (ProGAN's `pyr_up`).
pub fn pyr_up(p: &Planes, h: usize, w: usize) -> Planes {
    let mut data = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for y in 0..p.h.min(h.div_ceil(2)) {
            for x in 0..p.w.min(w.div_ceil(2)) {
                data[(c * h + 2 * y) * w + 2 * x] = p.at(c, y, x);
            }
        }
    }
    blur(&Planes { h, w, data }, 4.0)
}

/// Sizes of the pyramid levels for an `h x w` image: halve while the smaller side stays >= 16.
pub fn level_sizes(h: usize, w: usize) -> Vec<(usize, usize)> {
    let mut sizes = vec![(h, w)];
    let (mut ch, mut cw) = (h, w);
    while ch.min(cw) / 2 >= 16 {
        ch = ch.div_ceil(2);
        cw = cw.div_ceil(2);
        sizes.push((ch, cw));
    }
    sizes
}

/// Laplacian pyramid: band-pass levels from full resolution down, the last is the low-pass image.
pub fn laplacian_pyramid(img: &Planes) -> Vec<Planes> {
    let levels = level_sizes(img.h, img.w).len();
    let mut out = Vec::with_capacity(levels);
    let mut cur = img.clone();
    for _ in 1..levels {
        let down = pyr_down(&cur);
        let up = pyr_up(&down, cur.h, cur.w);
        let band: Vec<f32> = cur.data.iter().zip(&up.data).map(|(a, b)| a - b).collect();
        out.push(Planes {
            h: cur.h,
            w: cur.w,
            data: band,
        });
        cur = down;
    }
    out.push(cur);
    out
}

/// Descriptors of one pyramid level for a whole set: `n * 128` rows of 147 values.
/// Patch centres are drawn per image from a seeded RNG, kept off the border.
fn level_descriptors(levels: &[Vec<Planes>], level: usize, seed: u64) -> Vec<f32> {
    let all: Vec<usize> = (0..levels.len()).collect();
    picked_level_descriptors(levels, &all, level, seed)
}

/// [`level_descriptors`] of the images `pick` lists (repeats allowed: a bootstrap sample).
fn picked_level_descriptors(
    levels: &[Vec<Planes>],
    pick: &[usize],
    level: usize,
    seed: u64,
) -> Vec<f32> {
    let half = PATCH / 2;
    let mut out = vec![0f32; pick.len() * PATCHES_PER_IMAGE * DESC];
    out.par_chunks_mut(PATCHES_PER_IMAGE * DESC)
        .zip(pick.par_iter())
        .enumerate()
        .for_each(|(i, (dst, &which))| {
            let p = &levels[which][level];
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((i as u64) << 8) ^ level as u64);
            for d in dst.chunks_exact_mut(DESC) {
                let cy = rng.random_range(half..p.h - half);
                let cx = rng.random_range(half..p.w - half);
                let mut k = 0;
                for c in 0..3 {
                    for y in cy - half..=cy + half {
                        let row = &p.data[(c * p.h + y) * p.w..];
                        d[k..k + PATCH].copy_from_slice(&row[cx - half..=cx + half]);
                        k += PATCH;
                    }
                }
            }
        });
    normalize_per_channel(&mut out);
    out
}

/// Zero mean, unit std per colour channel over all descriptors of a set.
fn normalize_per_channel(desc: &mut [f32]) {
    let per = PATCH * PATCH;
    for c in 0..3 {
        let (mut sum, mut sq, mut n) = (0f64, 0f64, 0f64);
        for d in desc.chunks_exact(DESC) {
            for &v in &d[c * per..(c + 1) * per] {
                sum += v as f64;
                sq += (v as f64) * (v as f64);
                n += 1.0;
            }
        }
        let mean = sum / n.max(1.0);
        let std = ((sq / n.max(1.0) - mean * mean).max(0.0)).sqrt().max(1e-8);
        for d in desc.chunks_exact_mut(DESC) {
            for v in &mut d[c * per..(c + 1) * per] {
                *v = ((*v as f64 - mean) / std) as f32;
            }
        }
    }
}

/// `[dirs, n]` = dirsᵀ `[dirs, 147]` x descᵀ `[147, n]` (row-major output: one row per direction).
fn project(desc: &[f32], dirs: &[f32], ndirs: usize) -> Vec<f32> {
    let n = desc.len() / DESC;
    let mut out = vec![0f32; ndirs * n];
    // The strided ranges gemm reads and writes (m = ndirs, n = n, k = DESC):
    // dst[i, j] at i * n + j, lhs[i, l] at i * DESC + l, rhs[l, j] at j * DESC + l.
    assert!(out.len() >= ndirs * n, "projection output too small");
    assert!(
        dirs.len() >= ndirs * DESC,
        "fewer than {ndirs} directions of {DESC} values"
    );
    assert!(
        desc.len() >= n * DESC,
        "fewer than {n} descriptors of {DESC} values"
    );
    if ndirs == 0 || n == 0 {
        return out;
    }
    // SAFETY: the asserts above keep every index gemm touches (the largest being
    // (ndirs-1)*n + n-1, (ndirs-1)*DESC + DESC-1 and (n-1)*DESC + DESC-1) inside the slices;
    // `out` is a fresh allocation, so it aliases neither input.
    unsafe {
        gemm::gemm(
            ndirs,
            n,
            DESC,
            out.as_mut_ptr(),
            1,          // dst column stride (over n)
            n as isize, // dst row stride (over dirs)
            false,
            dirs.as_ptr(),
            1,             // lhs [ndirs x 147], col stride
            DESC as isize, // row stride
            desc.as_ptr(),
            DESC as isize, // rhs [147 x n]: column j = descriptor j
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    out
}

/// SWD between two descriptor sets of equal size (x1e3 applied by the caller).
pub fn sliced_wasserstein(a: &[f32], b: &[f32], seed: u64) -> f64 {
    let n = a.len() / DESC;
    assert_eq!(n, b.len() / DESC, "SWD needs descriptor sets of equal size");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut total = 0.0;
    for _ in 0..DIR_REPEATS {
        // Random unit directions, stored [dirs, 147].
        let mut dirs = vec![0f32; DIRS_PER_REPEAT * DESC];
        for d in dirs.chunks_exact_mut(DESC) {
            for v in d.iter_mut() {
                *v = rng.sample(StandardNormal);
            }
            let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
            d.iter_mut().for_each(|v| *v /= norm);
        }
        let mut pa = project(a, &dirs, DIRS_PER_REPEAT);
        let mut pb = project(b, &dirs, DIRS_PER_REPEAT);
        let sum: f64 = pa
            .par_chunks_mut(n)
            .zip(pb.par_chunks_mut(n))
            .map(|(ra, rb)| {
                // LSD radix sort: several times faster than a comparison sort on 10^5-10^6 floats.
                radsort::sort(ra);
                radsort::sort(rb);
                ra.iter()
                    .zip(rb.iter())
                    .map(|(x, y)| (x - y).abs() as f64)
                    .sum::<f64>()
                    / n as f64
            })
            .sum();
        total += sum / DIRS_PER_REPEAT as f64;
    }
    total / DIR_REPEATS as f64
}

/// SWD (x1e3) per level and their average, between two image sets of the same size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwdResult {
    pub per_level: Vec<f64>,
    pub level_sizes: Vec<(usize, usize)>,
    pub average: f64,
    pub images_per_side: usize,
    /// The spread of the score (see [`swd_spread`]), when it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<SwdSpread>,
}

impl SwdResult {
    /// The score at the finest level (the image's own size): `per_level` lists levels finest
    /// first.
    pub fn finest(&self) -> f64 {
        self.per_level.first().copied().unwrap_or_default()
    }
}

/// How much an SWD moves with both of its sources of noise: the random directions and patch
/// positions, and which images were drawn. The standard deviation over `rounds` bootstrap
/// rounds, each resampling both sides' images with replacement and drawing fresh directions and
/// patches. The point estimate ([`swd`]) does not change; this goes beside it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SwdSpread {
    /// Std of the average over levels.
    pub average: f64,
    /// Std of each level's score (finest first, as `per_level`).
    pub per_level: Vec<f64>,
    pub rounds: usize,
}

/// [`swd`] with its [`swd_spread`] of `rounds` rounds beside it.
pub fn swd_with_spread(
    a: &[Vec<Planes>],
    b: &[Vec<Planes>],
    seed: u64,
    rounds: usize,
) -> SwdResult {
    let mut result = swd(a, b, seed);
    result.spread = Some(swd_spread(a, b, seed, rounds));
    result
}

/// Bootstrap rounds of [`swd_spread`] in `facegan eval`.
pub const SPREAD_ROUNDS: usize = 8;
/// Bootstrap rounds in the trainer's live probe: fewer, as each round costs about one SWD and
/// the probe's time counts against training (a noisier estimate of the same spread).
pub const PROBE_SPREAD_ROUNDS: usize = 4;

/// The spread of [`swd`]`(a, b, seed)` over `rounds` bootstrap rounds (see [`SwdSpread`]).
pub fn swd_spread(a: &[Vec<Planes>], b: &[Vec<Planes>], seed: u64, rounds: usize) -> SwdSpread {
    let n = a.len().min(b.len());
    let levels = a[0].len();
    let scores: Vec<Vec<f64>> = (0..rounds)
        .map(|r| {
            let round_seed = seed ^ 0x5EED_0000 ^ ((r as u64 + 1) << 32);
            let mut rng = ChaCha8Rng::seed_from_u64(round_seed);
            let pa: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let pb: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            (0..levels)
                .map(|l| {
                    let da = picked_level_descriptors(a, &pa, l, round_seed ^ 0xA);
                    let db = picked_level_descriptors(b, &pb, l, round_seed ^ 0xA);
                    sliced_wasserstein(&da, &db, round_seed ^ 0xD1 ^ l as u64) * 1e3
                })
                .collect()
        })
        .collect();
    let std = |values: Vec<f64>| {
        let m = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let var = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
            / values.len().saturating_sub(1).max(1) as f64;
        var.sqrt()
    };
    SwdSpread {
        average: std(scores
            .iter()
            .map(|s| s.iter().sum::<f64>() / levels as f64)
            .collect()),
        per_level: (0..levels)
            .map(|l| std(scores.iter().map(|s| s[l]).collect()))
            .collect(),
        rounds,
    }
}

/// Pyramids of a set of images (computed once, reused across comparisons).
pub fn pyramids(images: &[Planes]) -> Vec<Vec<Planes>> {
    images.par_iter().map(laplacian_pyramid).collect()
}

/// SWD between two sets of pyramids (use the same count on both sides).
pub fn swd(a: &[Vec<Planes>], b: &[Vec<Planes>], seed: u64) -> SwdResult {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let levels = a[0].len();
    let per_level: Vec<f64> = (0..levels)
        .map(|l| {
            let da = level_descriptors(a, l, seed ^ 0xA); // same patch positions on both sides,
            let db = level_descriptors(b, l, seed ^ 0xA); // so identical sets give exactly 0
            sliced_wasserstein(&da, &db, seed ^ 0xD1 ^ l as u64) * 1e3
        })
        .collect();
    let average = per_level.iter().sum::<f64>() / levels as f64;
    SwdResult {
        level_sizes: a[0].iter().map(|p| (p.h, p.w)).collect(),
        per_level,
        average,
        images_per_side: n,
        spread: None,
    }
}
