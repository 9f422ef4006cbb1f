//! Transposing RGB images (pixel `(y, x)` to `(x, y)`), with 4x4-pixel AVX2 blocks on x86-64
//! CPUs that have it; the batch resizer uses it to run both resize passes as vertical ones.

/// Transposes `rows` rows of `cols` RGB pixels, read from the start of `src` (rows `src_stride`
/// pixels apart), into `cols` rows of `rows` pixels written from the start of `dst` (rows
/// `dst_stride` pixels apart): pixel `(y, x)` goes to `(x, y)`.
///
/// On x86-64 CPUs with AVX2, 4x4-pixel blocks move through SIMD registers (each pixel widened to
/// 4 bytes, a 4x4 transpose of 32-bit lanes, narrowed back); the rest, and other CPUs, move
/// pixel by pixel. Both move the same bytes; a test checks it.
pub(crate) fn transpose_rgb(
    src: &[u8],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src_stride >= cols && src.len() >= ((rows - 1) * src_stride + cols) * 3);
    assert!(dst_stride >= rows && dst.len() >= ((cols - 1) * dst_stride + rows) * 3);
    let mut job = Transpose {
        src,
        src_stride,
        dst,
        dst_stride,
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), and the sizes were checked above
        // as `Transpose::blocks_avx2` requires.
        let (rb, cb) = unsafe { job.blocks_avx2(rows, cols) };
        // What the 4x4 blocks left: the columns from `cb` on, then the rows from `rb` on.
        job.pixels(0..rows, cb..cols);
        job.pixels(rb..rows, 0..cb);
        return;
    }
    job.pixels(0..rows, 0..cols);
}

/// Where a transpose reads and writes: pixel `(y, x)` of `src` (rows `src_stride` pixels apart)
/// goes to `(x, y)` of `dst` (rows `dst_stride` pixels apart).
struct Transpose<'a> {
    src: &'a [u8],
    src_stride: usize,
    dst: &'a mut [u8],
    dst_stride: usize,
}

impl Transpose<'_> {
    /// The source rows `ys` and columns `xs`, pixel by pixel: blocks of 8 columns, each
    /// source row giving 24 contiguous bytes spread over 8 output rows that are each written
    /// front to back.
    fn pixels(&mut self, ys: std::ops::Range<usize>, xs: std::ops::Range<usize>) {
        const BLOCK: usize = 8;
        let (src, src_stride, dst_stride) = (self.src, self.src_stride, self.dst_stride);
        let dst = &mut *self.dst;
        for x0 in xs.clone().step_by(BLOCK) {
            let width = BLOCK.min(xs.end - x0);
            for y in ys.clone() {
                let from = &src[(y * src_stride + x0) * 3..][..width * 3];
                for (k, px) in from.chunks_exact(3).enumerate() {
                    let at = ((x0 + k) * dst_stride + y) * 3;
                    dst[at..at + 3].copy_from_slice(px);
                }
            }
        }
    }

    /// The 4x4 blocks of [`transpose_rgb`]: whole blocks only, and only in row bands whose
    /// 16-byte loads stay inside `src`. Returns the rows and columns they covered,
    /// `(rb, cols / 4 * 4)`, where `rb <= rows / 4 * 4` is a multiple of 4; the caller moves the
    /// rest.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `src`, `dst` must hold the pixels described in
    /// [`transpose_rgb`] (its asserts).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn blocks_avx2(&mut self, rows: usize, cols: usize) -> (usize, usize) {
        use std::arch::x86_64::*;
        let (src, src_stride, dst_stride) = (self.src, self.src_stride, self.dst_stride);
        let dst = &mut *self.dst;
        let expand = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
        let compact = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
        let cb = cols / 4 * 4;
        if cb == 0 {
            return (0, 0);
        }
        let mut rb = rows / 4 * 4;
        // A block's loads read 16 bytes from its 12: the last row band's blocks may end past
        // `src`.
        while rb > 0 && ((rb - 1) * src_stride + cb - 4) * 3 + 16 > src.len() {
            rb -= 4;
        }
        for x in (0..cb).step_by(4) {
            for y in (0..rb).step_by(4) {
                // SAFETY: rows y..y + 4 <= rb are inside `src` with 16 bytes from pixel x (by
                // `rb`); output rows x..x + 4 <= cols are inside `dst`. A 16-byte store from
                // pixel y stays inside its row when 3y + 16 <= 3 rows (its last 4 bytes belong to
                // pixels y + 4 and y + 5, written later); otherwise exactly the block's 12 bytes
                // are stored.
                let row = |i: usize| {
                    let p = src.as_ptr().add(((y + i) * src_stride + x) * 3);
                    _mm_shuffle_epi8(_mm_loadu_si128(p as *const __m128i), expand)
                };
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let (t0, t1) = (_mm_unpacklo_epi32(r0, r1), _mm_unpacklo_epi32(r2, r3));
                let (t2, t3) = (_mm_unpackhi_epi32(r0, r1), _mm_unpackhi_epi32(r2, r3));
                let columns = [
                    _mm_unpacklo_epi64(t0, t1),
                    _mm_unpackhi_epi64(t0, t1),
                    _mm_unpacklo_epi64(t2, t3),
                    _mm_unpackhi_epi64(t2, t3),
                ];
                for (k, column) in columns.into_iter().enumerate() {
                    let v = _mm_shuffle_epi8(column, compact);
                    let p = dst.as_mut_ptr().add(((x + k) * dst_stride + y) * 3);
                    if 3 * y + 16 <= 3 * rows {
                        _mm_storeu_si128(p as *mut __m128i, v);
                    } else {
                        _mm_storel_epi64(p as *mut __m128i, v);
                        (p.add(8) as *mut i32).write_unaligned(_mm_extract_epi32(v, 2));
                    }
                }
            }
        }
        (rb, cb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::noise;
    use rand::SeedableRng;

    #[test]
    fn fast_transpose_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for &(rows, cols, extra_src, extra_dst) in &[
            (1, 1, 0, 0),
            (4, 4, 0, 0),
            (5, 7, 0, 0),
            (96, 89, 0, 0),
            (80, 96, 0, 0),
            (96, 89, 623, 671),
            (9, 13, 2, 0),
            (3, 17, 0, 5),
            (17, 3, 1, 1),
        ] {
            let (src_stride, dst_stride) = (cols + extra_src, rows + extra_dst);
            let src = noise(&mut rng, ((rows - 1) * src_stride + cols) * 3, false);
            let mut fast = vec![7u8; ((cols - 1) * dst_stride + rows) * 3];
            let mut plain = fast.clone();
            transpose_rgb(&src, src_stride, rows, cols, &mut fast, dst_stride);
            let mut scalar = Transpose {
                src: &src,
                src_stride,
                dst: &mut plain,
                dst_stride,
            };
            scalar.pixels(0..rows, 0..cols);
            assert_eq!(fast, plain, "{rows}x{cols}");
            for y in 0..rows {
                for x in 0..cols {
                    let (s, d) = ((y * src_stride + x) * 3, (x * dst_stride + y) * 3);
                    assert_eq!(src[s..s + 3], plain[d..d + 3]);
                }
            }
        }
    }
}
