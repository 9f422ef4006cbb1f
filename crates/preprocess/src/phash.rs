//! The 64-bit DCT perceptual hash (pHash) of a resized image, and the Hamming distance between
//! two hashes, with which near-duplicates are found.

/// Side of the grayscale image the perceptual hash transforms.
const PHASH_N: usize = 32;

/// `cos((2x + 1) u pi / 2N)` for the 8 lowest frequencies `u`, stored `[x][u]` so that the 8
/// frequencies of one sample sit side by side (computed once).
///
/// The angle is an f32 and its cosine is taken in f64 and rounded to f32: the table the earlier
/// version of this function got (the compiler folded its f32 `cos` calls that way), so hashes,
/// and the near-duplicates found, stay what they were. A runtime f32 `cos` differs in the last
/// bit for two entries.
fn phash_cos() -> &'static [[f32; 8]; PHASH_N] {
    static COS: std::sync::OnceLock<[[f32; 8]; PHASH_N]> = std::sync::OnceLock::new();
    COS.get_or_init(|| {
        let mut cos = [[0f32; 8]; PHASH_N];
        for (x, row) in cos.iter_mut().enumerate() {
            for (u, c) in row.iter_mut().enumerate() {
                let angle =
                    (2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / (2 * PHASH_N) as f32;
                *c = (angle as f64).cos() as f32;
            }
        }
        cos
    })
}

/// A 64-bit DCT perceptual hash (pHash) of an HWC RGB image: 32x32 grayscale by area
/// averaging, the 8x8 lowest DCT frequencies, one bit per coefficient above their median (the DC
/// term is left out). Robust to re-encoding and small resampling changes; near-duplicates have a
/// small Hamming distance.
///
/// A cell's gray value is the luma `0.299 R + 0.587 G + 0.114 B` of its mean colour (the mean of
/// the pixels' lumas, up to rounding): exact integer channel sums, then one f32 expression per
/// cell. Every f32 sum of the transforms adds its terms in the same order as the straightforward
/// loops (over x, then over y), so the hash does not depend on how the loops are arranged for
/// speed; a test checks it against the plain version.
pub fn perceptual_hash(pixels: &[u8], height: usize, width: usize) -> u64 {
    const N: usize = PHASH_N;
    assert!(height > 0 && width > 0 && pixels.len() >= height * width * 3);
    let row_len = width * 3;
    // Column bounds of each cell.
    let mut xs = [(0usize, 0usize); N];
    for (gx, b) in xs.iter_mut().enumerate() {
        let x0 = gx * width / N;
        *b = (x0, ((gx + 1) * width / N).max(x0 + 1));
    }
    // The rows of one band of cells summed byte by byte (vectorises), then each cell's columns.
    let mut column_sums = vec![0u32; row_len];
    let mut gray = [[0f32; N]; N];
    for (gy, cells) in gray.iter_mut().enumerate() {
        let y0 = gy * height / N;
        let y1 = ((gy + 1) * height / N).max(y0 + 1);
        column_sums.fill(0);
        for y in y0..y1 {
            add_bytes(&mut column_sums, &pixels[y * row_len..(y + 1) * row_len]);
        }
        for (cell, &(x0, x1)) in cells.iter_mut().zip(&xs) {
            let mut rgb = [0u32; 3];
            for px in column_sums[x0 * 3..x1 * 3].chunks_exact(3) {
                rgb = [rgb[0] + px[0], rgb[1] + px[1], rgb[2] + px[2]];
            }
            *cell = cell_gray(rgb, (y1 - y0) * (x1 - x0));
        }
    }
    dct_hash(&gray)
}

/// The gray value of a cell from its exact channel sums over `count` pixels.
#[inline]
fn cell_gray([r, g, b]: [u32; 3], count: usize) -> f32 {
    (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / count as f32
}

/// `sums[i] += bytes[i]`; compiled a second time for AVX2 where the CPU has it.
fn add_bytes(sums: &mut [u32], bytes: &[u8]) {
    #[inline(always)]
    fn portable(sums: &mut [u32], bytes: &[u8]) {
        for (s, &b) in sums.iter_mut().zip(bytes) {
            *s += b as u32;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(sums: &mut [u32], bytes: &[u8]) {
        portable(sums, bytes)
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
        return unsafe { avx2(sums, bytes) };
    }
    portable(sums, bytes)
}

/// The hash bits of a 32x32 gray image: the 8x8 lowest DCT-II frequencies (row transform, then
/// column transform, the 8 frequencies accumulated side by side, each over x then y in order),
/// one bit per AC coefficient above their median.
fn dct_hash(gray: &[[f32; PHASH_N]; PHASH_N]) -> u64 {
    let cos = phash_cos();
    let mut rows = [[0f32; 8]; PHASH_N];
    for (acc, g) in rows.iter_mut().zip(gray) {
        *acc = cos[0].map(|c| c * g[0]);
        for (c, &g) in cos.iter().zip(g).skip(1) {
            for (a, &c) in acc.iter_mut().zip(c) {
                *a += c * g;
            }
        }
    }
    let mut coeffs = [0f32; 64];
    for (v, out) in coeffs.chunks_exact_mut(8).enumerate() {
        let mut acc = rows[0].map(|r| cos[0][v] * r);
        for (c, r) in cos.iter().zip(&rows).skip(1) {
            for (a, &r) in acc.iter_mut().zip(r) {
                *a += c[v] * r;
            }
        }
        out.copy_from_slice(&acc);
    }
    let mut ac = [0f32; 63];
    ac.copy_from_slice(&coeffs[1..]);
    let median = *ac.select_nth_unstable_by(63 / 2, f32::total_cmp).1;
    coeffs.iter().enumerate().skip(1).fold(
        0u64,
        |bits, (i, &c)| if c > median { bits | (1 << i) } else { bits },
    )
}

/// Hamming distance between two perceptual hashes.
pub fn hash_distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::noise;
    use rand::SeedableRng;

    /// The straightforward pHash the reorganised one must match bit for bit.
    fn perceptual_hash_plain(pixels: &[u8], height: usize, width: usize) -> u64 {
        const N: usize = 32;
        let mut gray = [0f32; N * N];
        for gy in 0..N {
            let y0 = gy * height / N;
            let y1 = ((gy + 1) * height / N).max(y0 + 1);
            for gx in 0..N {
                let x0 = gx * width / N;
                let x1 = ((gx + 1) * width / N).max(x0 + 1);
                let mut rgb = [0u32; 3];
                for y in y0..y1 {
                    for x in x0..x1 {
                        for (c, sum) in rgb.iter_mut().enumerate() {
                            *sum += pixels[(y * width + x) * 3 + c] as u32;
                        }
                    }
                }
                let [r, g, b] = rgb.map(|v| v as f32);
                gray[gy * N + gx] =
                    (0.299 * r + 0.587 * g + 0.114 * b) / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
        let mut cos = [[0f32; N]; 8];
        for (u, row) in cos.iter_mut().enumerate() {
            for (x, c) in row.iter_mut().enumerate() {
                let angle = (2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / (2 * N) as f32;
                *c = (angle as f64).cos() as f32;
            }
        }
        let mut rows = [[0f32; 8]; N];
        for y in 0..N {
            for u in 0..8 {
                rows[y][u] = (0..N).map(|x| cos[u][x] * gray[y * N + x]).sum();
            }
        }
        let mut coeffs = [0f32; 64];
        for v in 0..8 {
            for u in 0..8 {
                coeffs[v * 8 + u] = (0..N).map(|y| cos[v][y] * rows[y][u]).sum();
            }
        }
        let mut ac: Vec<f32> = coeffs[1..].to_vec();
        ac.sort_by(f32::total_cmp);
        let median = ac[ac.len() / 2];
        coeffs
            .iter()
            .enumerate()
            .skip(1)
            .fold(
                0u64,
                |bits, (i, &c)| if c > median { bits | (1 << i) } else { bits },
            )
    }

    #[test]
    fn fast_perceptual_hash_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(h, w) in &[(96, 80), (8, 8), (24, 20), (33, 31), (64, 64), (218, 178)] {
            for smooth in [false, true] {
                for _ in 0..20 {
                    let px = noise(&mut rng, h * w * 3, smooth);
                    assert_eq!(
                        perceptual_hash(&px, h, w),
                        perceptual_hash_plain(&px, h, w),
                        "{h}x{w}"
                    );
                }
            }
        }
        // Flat images: every AC coefficient near zero.
        for v in [0u8, 128, 255] {
            let px = vec![v; 96 * 80 * 3];
            assert_eq!(
                perceptual_hash(&px, 96, 80),
                perceptual_hash_plain(&px, 96, 80)
            );
        }
    }
}
