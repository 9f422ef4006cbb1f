//! The 2x2 box halving that shrinks large images before the resize filter runs: an AVX2 kernel
//! picked at run time on x86-64 and a portable one written for the auto-vectoriser, both driven
//! by one row loop and giving the same bytes.

/// Row buffers of the portable halving, reused from one image to the next.
#[derive(Default)]
pub(crate) struct HalveRows {
    /// The two source rows summed as u16 (plus 3 zero bytes of padding).
    sum: Vec<u16>,
    /// Each byte of `sum` averaged with the byte one pixel to its right.
    avg: Vec<u8>,
}

/// Halves a `sw x sh` RGB image into `out` (resized to fit) by averaging 2x2 blocks, rounding half
/// up, `(a + b + c + d + 2) / 4` (odd last row/column dropped). Returns the new size.
///
/// On x86-64 CPUs with AVX2 a hand-vectorised version (`box_halve_avx2`) is picked at run time;
/// the result is the same.
pub(crate) fn box_halve_into(
    src: &[u8],
    sw: usize,
    sh: usize,
    out: &mut Vec<u8>,
    rows: &mut HalveRows,
) -> (usize, usize) {
    let (w, h) = (sw / 2, sh / 2);
    // Every byte is overwritten, so the buffer is only resized (no clearing).
    out.resize(w * h * 3, 0);
    box_halve_strided(src, sw, sh, out, w * 3, rows);
    (w, h)
}

/// Halves `src` (`w x h` RGB) `times` times, alternating between the two buffers of `halves`.
/// Returns the result (`src` itself for `times == 0`) and its size.
pub(crate) fn halve_repeatedly<'a>(
    src: &'a [u8],
    (mut w, mut h): (usize, usize),
    times: u32,
    halves: &'a mut [Vec<u8>; 2],
    rows: &mut HalveRows,
) -> (&'a [u8], usize, usize) {
    // Which of `halves` holds the current image (none: still `src`).
    let mut current: Option<usize> = None;
    for _ in 0..times {
        let [a, b] = &mut *halves;
        (w, h) = match current {
            None => box_halve_into(src, w, h, a, rows),
            Some(0) => box_halve_into(a, w, h, b, rows),
            Some(_) => box_halve_into(b, w, h, a, rows),
        };
        current = Some(current.map_or(0, |c| 1 - c));
    }
    (current.map_or(src, |c| &halves[c][..]), w, h)
}

/// [`box_halve_into`] writing output row `y` at `dst[y * dst_stride..]` (`w * 3` bytes).
pub(crate) fn box_halve_strided(
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dst_stride: usize,
    rows: &mut HalveRows,
) {
    let job = Halving {
        src,
        sw,
        sh,
        dst,
        dst_stride,
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the function checks its bounds.
        return unsafe { box_halve_avx2(job) };
    }
    box_halve_portable(job, rows)
}

/// One halving: the `sw x sh` RGB source and where its output rows go.
struct Halving<'a> {
    src: &'a [u8],
    sw: usize,
    sh: usize,
    /// Output row `y` is `dst[y * dst_stride..][..sw / 2 * 3]`.
    dst: &'a mut [u8],
    dst_stride: usize,
}

impl Halving<'_> {
    /// The row loop both kernels share: `halve_row(a, b, out)` for each output row, with `a`, `b`
    /// the two whole source rows it is made from. Inlined, so each kernel's row step is compiled
    /// into its own loop (with AVX2 enabled for the AVX2 one).
    #[inline(always)]
    fn for_each_row(self, mut halve_row: impl FnMut(&[u8], &[u8], &mut [u8])) {
        let (w, h) = (self.sw / 2, self.sh / 2);
        if w == 0 {
            return;
        }
        let stride = self.sw * 3;
        for y in 0..h {
            let a = &self.src[2 * y * stride..][..stride];
            let b = &self.src[(2 * y + 1) * stride..][..stride];
            halve_row(a, b, &mut self.dst[y * self.dst_stride..][..w * 3]);
        }
    }
}

/// [`box_halve_strided`] with AVX2: four output pixels per step, each made from 24 bytes of both
/// source rows. Within each 128-bit lane (12 source bytes = 4 pixels; the second lane starts 12
/// bytes after the first) a byte shuffle puts the even pixels' bytes in the low half and the odd
/// pixels' bytes in the high half; widened to u16, the two halves of both rows add up to the 2x2
/// sums, which are rounded, narrowed and stored as 6 bytes per lane. The same arithmetic as the
/// portable version, so the same bytes (a test checks it); the rest of each row is done plainly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn box_halve_avx2(job: Halving) {
    use std::arch::x86_64::*;
    let w = job.sw / 2;
    if w == 0 {
        return;
    }
    let stride = job.sw * 3;
    // Vector steps per row: each reads 28 bytes from byte 24k of both source rows and writes
    // 14 bytes from byte 12k of the output row (the last 2 are the next pixel's, rewritten
    // later), so it stops while at least one pixel is left after it.
    let steps = ((w - 1) / 4).min(stride.saturating_sub(4) / 24);
    let mask = _mm256_setr_epi8(
        0, 1, 2, 6, 7, 8, -128, -128, 3, 4, 5, 9, 10, 11, -128, -128, //
        0, 1, 2, 6, 7, 8, -128, -128, 3, 4, 5, 9, 10, 11, -128, -128,
    );
    let zero = _mm256_setzero_si256();
    let two = _mm256_set1_epi16(2);
    job.for_each_row(|a, b, out| {
        for k in 0..steps {
            // SAFETY: AVX2 is enabled here; the loads read a[24k..24k + 28] and b[..] (checked
            // by the slicing below: 24k + 28 <= stride by `steps`), the stores write
            // out[12k..12k + 14] (checked likewise: 4k + 4 < w by `steps`).
            let load = |row: &[u8]| {
                let p = row[24 * k..24 * k + 28].as_ptr();
                let v = _mm256_castsi128_si256(_mm_loadu_si128(p as *const __m128i));
                let v = _mm256_inserti128_si256(v, _mm_loadu_si128(p.add(12) as *const __m128i), 1);
                let v = _mm256_shuffle_epi8(v, mask);
                _mm256_add_epi16(_mm256_unpacklo_epi8(v, zero), _mm256_unpackhi_epi8(v, zero))
            };
            let sum = _mm256_add_epi16(_mm256_add_epi16(load(a), load(b)), two);
            let bytes = _mm256_packus_epi16(_mm256_srli_epi16(sum, 2), zero);
            let o = out[12 * k..12 * k + 14].as_mut_ptr();
            _mm_storel_epi64(o as *mut __m128i, _mm256_castsi256_si128(bytes));
            _mm_storel_epi64(o.add(6) as *mut __m128i, _mm256_extracti128_si256(bytes, 1));
        }
        for x in steps * 4..w {
            for c in 0..3 {
                let at = |row: &[u8], i: usize| row[6 * x + i + c] as u16;
                let sum = at(a, 0) + at(a, 3) + at(b, 0) + at(b, 3);
                out[3 * x + c] = ((sum + 2) >> 2) as u8;
            }
        }
    })
}

/// [`box_halve_strided`] for the auto-vectoriser: each output row is made in three passes, the
/// two source rows summed as u16, then every byte averaged with the byte one pixel (3 bytes) to
/// its right, then the even pixels picked out.
#[inline(always)]
fn box_halve_portable(job: Halving, rows: &mut HalveRows) {
    let w = job.sw / 2;
    let n = w * 6; // source bytes of one row that are used
    let HalveRows { sum, avg } = rows;
    sum.resize(n + 3, 0);
    sum[n..].fill(0);
    avg.resize(n, 0);
    job.for_each_row(|a, b, out| {
        for ((s, &a), &b) in sum[..n].iter_mut().zip(&a[..n]).zip(&b[..n]) {
            *s = a as u16 + b as u16;
        }
        // avg[i] = average of the 2x2 block whose top-left byte is i; only the bytes of even
        // pixels are used (the last 3 read the zero padding and are never used).
        for ((r, &s0), &s1) in avg.iter_mut().zip(&sum[..n]).zip(&sum[3..]) {
            *r = ((s0 + s1 + 2) >> 2) as u8;
        }
        // Pick the even pixels: 4-byte copies, each 4th byte overwritten by the next copy (all
        // within the row), then the last pixel's 3 bytes.
        for x in 0..w - 1 {
            let v: [u8; 4] = avg[6 * x..6 * x + 4].try_into().expect("4 bytes");
            out[3 * x..3 * x + 4].copy_from_slice(&v);
        }
        let x = w - 1;
        out[3 * x..3 * x + 3].copy_from_slice(&avg[6 * x..6 * x + 3]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::noise;
    use rand::SeedableRng;

    /// The plain 2x2 box halving the fast one must match byte for byte.
    fn box_halve_plain(src: &[u8], sw: usize, sh: usize) -> Vec<u8> {
        let (w, h) = (sw / 2, sh / 2);
        let mut out = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let at = |yy: usize, xx: usize| src[(yy * sw + xx) * 3 + c] as u16;
                    let sum = at(2 * y, 2 * x)
                        + at(2 * y, 2 * x + 1)
                        + at(2 * y + 1, 2 * x)
                        + at(2 * y + 1, 2 * x + 1);
                    out[(y * w + x) * 3 + c] = ((sum + 2) / 4) as u8;
                }
            }
        }
        out
    }

    /// Sizes with every remainder of the AVX2 steps, odd rows and columns, and tiny images.
    const SIZES: [(usize, usize); 11] = [
        (2, 2),
        (3, 5),
        (178, 218),
        (179, 219),
        (89, 109),
        (64, 64),
        (17, 4),
        (18, 2),
        (19, 3),
        (20, 2),
        (33, 9),
    ];

    #[test]
    fn fast_box_halve_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut out, mut rows) = (Vec::new(), HalveRows::default());
        for &(w, h) in &SIZES {
            for smooth in [false, true] {
                let src = noise(&mut rng, w * h * 3, smooth);
                let size = box_halve_into(&src, w, h, &mut out, &mut rows);
                assert_eq!(size, (w / 2, h / 2));
                assert_eq!(out, box_halve_plain(&src, w, h), "{w}x{h}");
            }
        }
    }

    /// The portable kernel on its own (on AVX2 machines the test above runs the AVX2 one).
    #[test]
    fn portable_box_halve_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut rows = HalveRows::default();
        for &(w, h) in &SIZES {
            let src = noise(&mut rng, w * h * 3, true);
            let mut out = vec![0u8; (w / 2) * (h / 2) * 3];
            let job = Halving {
                src: &src,
                sw: w,
                sh: h,
                dst: &mut out,
                dst_stride: w / 2 * 3,
            };
            box_halve_portable(job, &mut rows);
            assert_eq!(out, box_halve_plain(&src, w, h), "{w}x{h}");
        }
    }
}
