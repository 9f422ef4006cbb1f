//! Plain-slice f32 kernels behind the CPU fast path: 2-D convolution and transposed convolution
//! (forward and both gradients) as row-tiled im2col/col2im + `gemm`, a fused training BatchNorm
//! (+ LeakyReLU) forward and backward, LeakyReLU, and a counter-based dropout mask.
//!
//! Layouts are contiguous NCHW. Work is split over images (rayon); every reduction over the batch
//! is summed in a fixed order over fixed chunks, so results do not depend on thread scheduling.

use rayon::prelude::*;

/// Number of fixed batch chunks whose partial weight gradients are summed in order. Independent
/// of the thread count, so the sums are the same on any machine.
const GRAD_CHUNKS: usize = 8;
/// Target size (floats) of one im2col tile: about 1 MiB, which stays in a 2 MiB L2.
const TILE_FLOATS: usize = 256 * 1024;

/// Geometry of a convolution between a "big" map and a "small" one: `conv2d` maps big (its input)
/// to small (its output); a transposed convolution maps small (its input) to big (its output).
/// Small position `o` and kernel tap `k` touch big position `o * stride + k - pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub big: [usize; 2],
    pub small: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl Geom {
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
    fn big_len(&self) -> usize {
        self.big[0] * self.big[1]
    }
    fn small_len(&self) -> usize {
        self.small[0] * self.small[1]
    }
    /// Small rows per im2col tile for `rows_k` (= channels x taps) column-matrix rows.
    fn tile_rows(&self, rows_k: usize) -> usize {
        (TILE_FLOATS / (rows_k * self.small[1]).max(1)).clamp(1, self.small[0])
    }
    /// The tiles of small rows, `r0..r1`, of `rows` rows each (the last may be shorter).
    fn row_tiles(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let h = self.small[0];
        (0..h).step_by(rows).map(move |r0| (r0, (r0 + rows).min(h)))
    }
    /// Range of small columns `o` whose big column `o * s + j - p` lies in `[0, big)`.
    fn valid(&self, axis: usize, tap: usize) -> (usize, usize) {
        let (s, p, big, small) = (
            self.stride[axis],
            self.pad[axis],
            self.big[axis],
            self.small[axis],
        );
        let lo = if tap >= p { 0 } else { (p - tap).div_ceil(s) };
        // o * s + tap - p <= big - 1  <=>  o <= (big - 1 + p - tap) / s
        let hi = if big + p > tap {
            ((big - 1 + p - tap) / s + 1).min(small)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// Sets channel `c` of one image (`plane` values each) to `values[c]`.
fn fill_channels(image: &mut [f32], values: &[f32], plane: usize) {
    for (channel, &v) in image.chunks_exact_mut(plane).zip(values) {
        channel.fill(v);
    }
}

/// `cols[(c, i, j), (r - r0, o)] = big[c, r * s0 + i - p0, o * s1 + j - p1]` (0 outside), for small
/// rows `r0..r1`; `cols` is `[channels * taps, (r1 - r0) * small_w]`.
fn im2col(g: &Geom, channels: usize, big: &[f32], r0: usize, r1: usize, cols: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let [bh, bw] = g.big;
    let sw = g.small[1];
    let ncols = (r1 - r0) * sw;
    for c in 0..channels {
        let plane = &big[c * bh * bw..(c + 1) * bh * bw];
        for i in 0..kh {
            for j in 0..kw {
                let row = &mut cols[((c * kh + i) * kw + j) * ncols..][..ncols];
                let (lo, hi) = g.valid(1, j);
                for r in r0..r1 {
                    let seg = &mut row[(r - r0) * sw..][..sw];
                    let ih = (r * g.stride[0] + i) as isize - g.pad[0] as isize;
                    if ih < 0 || ih >= bh as isize {
                        seg.fill(0.0);
                        continue;
                    }
                    let src = &plane[ih as usize * bw..][..bw];
                    seg[..lo].fill(0.0);
                    seg[hi..].fill(0.0);
                    let s = g.stride[1];
                    let off = (lo * s + j) as isize - g.pad[1] as isize;
                    let off = off as usize;
                    if s == 1 {
                        seg[lo..hi].copy_from_slice(&src[off..off + (hi - lo)]);
                    } else {
                        for (k, v) in seg[lo..hi].iter_mut().enumerate() {
                            *v = src[off + k * s];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `big[c, r * s0 + i - p0, o * s1 + j - p1] += cols[(c, i, j), ..]`.
fn col2im(g: &Geom, channels: usize, cols: &[f32], r0: usize, r1: usize, big: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let [bh, bw] = g.big;
    let sw = g.small[1];
    let ncols = (r1 - r0) * sw;
    for c in 0..channels {
        let plane = &mut big[c * bh * bw..(c + 1) * bh * bw];
        for i in 0..kh {
            for j in 0..kw {
                let row = &cols[((c * kh + i) * kw + j) * ncols..][..ncols];
                let (lo, hi) = g.valid(1, j);
                for r in r0..r1 {
                    let ih = (r * g.stride[0] + i) as isize - g.pad[0] as isize;
                    if ih < 0 || ih >= bh as isize {
                        continue;
                    }
                    let seg = &row[(r - r0) * sw..][..sw];
                    let dst = &mut plane[ih as usize * bw..][..bw];
                    let s = g.stride[1];
                    let off = ((lo * s + j) as isize - g.pad[1] as isize) as usize;
                    if s == 1 {
                        for (d, v) in dst[off..off + (hi - lo)].iter_mut().zip(&seg[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (k, v) in seg[lo..hi].iter().enumerate() {
                            dst[off + k * s] += v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (+)= a[m, k] * b[k, n]` with explicit row/column strides, single-threaded.
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() > (m - 1) * dst_rs + n - 1);
    if k > 0 {
        assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
        assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    } else {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every index gemm touches inside the slices; `dst` does not
    // alias `a` or `b` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `(dx, dw, dbias)`, each present when it was asked for.
pub type ConvGrads = (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// Splits `0..n` into at most `GRAD_CHUNKS` contiguous ranges (fixed by `n` only).
fn chunks(n: usize) -> Vec<(usize, usize)> {
    let parts = GRAD_CHUNKS.min(n.max(1));
    (0..parts)
        .map(|p| (p * n / parts, (p + 1) * n / parts))
        .collect()
}

/// Splits an optional per-batch buffer into one mutable slice per batch chunk of `ranges`
/// (`per_image` values each image); `None` for every chunk when there is no buffer.
fn split_by_chunk<'a>(
    buf: Option<&'a mut [f32]>,
    ranges: &[(usize, usize)],
    per_image: usize,
) -> Vec<Option<&'a mut [f32]>> {
    let Some(mut rest) = buf else {
        return ranges.iter().map(|_| None).collect();
    };
    ranges
        .iter()
        .map(|&(b0, b1)| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut((b1 - b0) * per_image);
            rest = tail;
            Some(head)
        })
        .collect()
}

/// Sums equally sized partial results in order.
fn sum_in_order(parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut it = parts.into_iter();
    let mut acc = it.next().unwrap_or_default();
    for p in it {
        for (a, b) in acc.iter_mut().zip(&p) {
            *a += b;
        }
    }
    acc
}

/// Sums each channel of `[n, c, hw]` over images and positions (fixed order).
pub fn channel_sums(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let parts = chunks(n)
        .into_par_iter()
        .map(|(b0, b1)| {
            let mut acc = vec![0f32; c];
            for b in b0..b1 {
                for (ch, a) in acc.iter_mut().enumerate() {
                    *a += x[(b * c + ch) * hw..][..hw].iter().sum::<f32>();
                }
            }
            acc
        })
        .collect();
    sum_in_order(parts)
}

/// Whether a convolution runs "taps first" (see [`taps_forward`]): when it has fewer output
/// than input channels (G's `to_rgb`), its per-tap maps `[co * taps, big]` are much smaller than
/// im2col's `[ci * taps, small]` columns, and fit in cache.
fn taps_first(g: &Geom, ci: usize, co: usize) -> bool {
    co < ci && co * g.taps() * g.big_len() <= TILE_FLOATS
}

/// `w [co, ci, kh, kw]` rearranged to `[(co, tap), ci]`.
fn taps_by_ci(w: &[f32], ci: usize, co: usize, taps: usize) -> Vec<f32> {
    let mut out = vec![0f32; co * taps * ci];
    for o in 0..co {
        for c in 0..ci {
            for t in 0..taps {
                out[(o * taps + t) * ci + c] = w[(o * ci + c) * taps + t];
            }
        }
    }
    out
}

/// `small[c, o] += z[(c, i, j), o * s + (i, j) - p]` for `z [c * taps, big]`: each tap's map,
/// shifted to where that tap reads, summed.
fn gather_taps(g: &Geom, c: usize, z: &[f32], small: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let (bw, sw) = (g.big[1], g.small[1]);
    let (bl, sl) = (g.big_len(), g.small_len());
    for ch in 0..c {
        let out = &mut small[ch * sl..][..sl];
        for i in 0..kh {
            let (olo, ohi) = g.valid(0, i);
            for j in 0..kw {
                let zr = &z[((ch * kh + i) * kw + j) * bl..][..bl];
                let (lo, hi) = g.valid(1, j);
                for oh in olo..ohi {
                    let ih = oh * g.stride[0] + i - g.pad[0];
                    let src = &zr[ih * bw..][..bw];
                    let dst = &mut out[oh * sw..][..sw];
                    let s = g.stride[1];
                    let off = lo * s + j - g.pad[1];
                    for (k, d) in dst[lo..hi].iter_mut().enumerate() {
                        *d += src[off + k * s];
                    }
                }
            }
        }
    }
}

/// The adjoint of [`gather_taps`]: `u[(c, i, j), o * s + (i, j) - p] = small[c, o]`, 0 elsewhere.
fn scatter_taps(g: &Geom, c: usize, small: &[f32], u: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let (bw, sw) = (g.big[1], g.small[1]);
    let (bl, sl) = (g.big_len(), g.small_len());
    u[..c * kh * kw * bl].fill(0.0);
    for ch in 0..c {
        let inp = &small[ch * sl..][..sl];
        for i in 0..kh {
            let (olo, ohi) = g.valid(0, i);
            for j in 0..kw {
                let ur = &mut u[((ch * kh + i) * kw + j) * bl..][..bl];
                let (lo, hi) = g.valid(1, j);
                for oh in olo..ohi {
                    let ih = oh * g.stride[0] + i - g.pad[0];
                    let dst = &mut ur[ih * bw..][..bw];
                    let src = &inp[oh * sw..][..sw];
                    let s = g.stride[1];
                    let off = lo * s + j - g.pad[1];
                    for (k, v) in src[lo..hi].iter().enumerate() {
                        dst[off + k * s] = *v;
                    }
                }
            }
        }
    }
}

/// Taps-first convolution forward: `z = w_taps[(co, tap), ci] @ x[ci, big]`, then
/// `y = gather_taps(z) + bias`.
fn taps_forward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    n: usize,
    ci: usize,
    co: usize,
) -> Vec<f32> {
    let (taps, bl, sl) = (g.taps(), g.big_len(), g.small_len());
    let wt = taps_by_ci(w, ci, co, taps);
    let mut y = vec![0f32; n * co * sl];
    y.par_chunks_mut(co * sl)
        .zip(x.par_chunks(ci * bl))
        .for_each_init(
            || vec![0f32; co * taps * bl],
            |z, (yb, xb)| {
                mm(co * taps, bl, ci, z, bl, false, &wt, ci, 1, xb, bl, 1);
                match bias {
                    Some(bias) => fill_channels(yb, bias, sl),
                    None => yb.fill(0.0),
                }
                gather_taps(g, co, z, yb);
            },
        );
    y
}

/// Gradients of [`taps_forward`]: with `u = scatter_taps(dy)` (`[(co, tap), big]`),
/// `dx = w_taps^T @ u` and `dw_taps += u @ x^T`.
#[allow(clippy::too_many_arguments)]
fn taps_backward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    ci: usize,
    co: usize,
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (taps, bl, sl) = (g.taps(), g.big_len(), g.small_len());
    let k = co * taps;
    let wt = taps_by_ci(w, ci, co, taps);
    let mut dx = want_dx.then(|| vec![0f32; n * ci * bl]);
    let ranges = chunks(n);
    let dx_parts = split_by_chunk(dx.as_deref_mut(), &ranges, ci * bl);
    let jobs: Vec<_> = ranges.iter().copied().zip(dx_parts).collect();
    let parts: Vec<Vec<f32>> = jobs
        .into_par_iter()
        .map(|((b0, b1), mut dxp)| {
            let mut acc = vec![0f32; if want_dw { k * ci } else { 0 }];
            let mut u = vec![0f32; k * bl];
            for b in b0..b1 {
                scatter_taps(g, co, &dy[b * co * sl..][..co * sl], &mut u);
                if let Some(dxp) = dxp.as_deref_mut() {
                    let dxb = &mut dxp[(b - b0) * ci * bl..][..ci * bl];
                    // dx[ci, big] = wt^T[ci, k] @ u[k, big]
                    mm(ci, bl, k, dxb, bl, false, &wt, 1, ci, &u, bl, 1);
                }
                if want_dw {
                    // acc[k, ci] += u[k, big] @ x^T[big, ci]
                    let xb = &x[b * ci * bl..][..ci * bl];
                    mm(k, ci, bl, &mut acc, ci, true, &u, bl, 1, xb, 1, bl);
                }
            }
            acc
        })
        .collect();
    let dw = want_dw.then(|| {
        let acc = sum_in_order(parts);
        let mut dw = vec![0f32; co * ci * taps];
        for o in 0..co {
            for c in 0..ci {
                for t in 0..taps {
                    dw[(o * ci + c) * taps + t] = acc[(o * taps + t) * ci + c];
                }
            }
        }
        dw
    });
    (dx, dw)
}

/// 2-D convolution forward: `x [n, ci, big]`, `w [co, ci, kh, kw]`, optional `bias [co]` ->
/// `[n, co, small]`.
pub fn conv2d_forward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    n: usize,
    ci: usize,
    co: usize,
) -> Vec<f32> {
    if taps_first(g, ci, co) {
        return taps_forward(g, x, w, bias, n, ci, co);
    }
    let k = ci * g.taps();
    let (bl, sl) = (g.big_len(), g.small_len());
    let mut y = vec![0f32; n * co * sl];
    let rows = g.tile_rows(k);
    let sw = g.small[1];
    y.par_chunks_mut(co * sl)
        .zip(x.par_chunks(ci * bl))
        .for_each_init(
            || vec![0f32; k * rows * sw],
            |cols, (yb, xb)| {
                if let Some(bias) = bias {
                    fill_channels(yb, bias, sl);
                }
                for (r0, r1) in g.row_tiles(rows) {
                    let nc = (r1 - r0) * sw;
                    im2col(g, ci, xb, r0, r1, &mut cols[..k * nc]);
                    mm(
                        co,
                        nc,
                        k,
                        &mut yb[r0 * sw..],
                        sl,
                        bias.is_some(),
                        w,
                        k,
                        1,
                        cols,
                        nc,
                        1,
                    );
                }
            },
        );
    y
}

/// Gradients of [`conv2d_forward`] given `dy [n, co, small]`: `(dx, dw, dbias)`, each computed
/// only when asked for.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    ci: usize,
    co: usize,
    want_dx: bool,
    want_dw: bool,
    want_db: bool,
) -> ConvGrads {
    if taps_first(g, ci, co) {
        let (dx, dw) = taps_backward(g, x, w, dy, n, ci, co, want_dx, want_dw);
        let db = want_db.then(|| channel_sums(dy, n, co, g.small_len()));
        return (dx, dw, db);
    }
    let k = ci * g.taps();
    let (bl, sl) = (g.big_len(), g.small_len());
    let rows = g.tile_rows(k);
    let sw = g.small[1];
    let dx = want_dx.then(|| {
        let mut dx = vec![0f32; n * ci * bl];
        dx.par_chunks_mut(ci * bl)
            .zip(dy.par_chunks(co * sl))
            .for_each_init(
                || vec![0f32; k * rows * sw],
                |dcols, (dxb, dyb)| {
                    for (r0, r1) in g.row_tiles(rows) {
                        let nc = (r1 - r0) * sw;
                        // dcols[k, nc] = w^T[k, co] @ dy[co, tile]
                        mm(k, nc, co, dcols, nc, false, w, 1, k, &dyb[r0 * sw..], sl, 1);
                        col2im(g, ci, &dcols[..k * nc], r0, r1, dxb);
                    }
                },
            );
        dx
    });
    let dw = want_dw.then(|| {
        let parts = chunks(n)
            .into_par_iter()
            .map(|(b0, b1)| {
                let mut acc = vec![0f32; co * k];
                let mut cols = vec![0f32; k * rows * sw];
                for b in b0..b1 {
                    let (xb, dyb) = (&x[b * ci * bl..][..ci * bl], &dy[b * co * sl..][..co * sl]);
                    for (r0, r1) in g.row_tiles(rows) {
                        let nc = (r1 - r0) * sw;
                        im2col(g, ci, xb, r0, r1, &mut cols[..k * nc]);
                        // acc[co, k] += dy[co, tile] @ cols^T[tile, k]
                        mm(
                            co,
                            k,
                            nc,
                            &mut acc,
                            k,
                            true,
                            &dyb[r0 * sw..],
                            sl,
                            1,
                            &cols,
                            1,
                            nc,
                        );
                    }
                }
                acc
            })
            .collect();
        sum_in_order(parts)
    });
    let db = want_db.then(|| channel_sums(dy, n, co, sl));
    (dx, dw, db)
}

/// Transposed 2-D convolution forward: `x [n, ci, small]`, `w [ci, co, kh, kw]`, optional
/// `bias [co]` -> `[n, co, big]`, then LeakyReLU(`act`) when given.
#[allow(clippy::too_many_arguments)]
pub fn conv_t_forward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    n: usize,
    ci: usize,
    co: usize,
    act: Option<f32>,
) -> Vec<f32> {
    let k = co * g.taps();
    let (bl, sl) = (g.big_len(), g.small_len());
    let rows = g.tile_rows(k);
    let sw = g.small[1];
    let mut y = vec![0f32; n * co * bl];
    y.par_chunks_mut(co * bl)
        .zip(x.par_chunks(ci * sl))
        .for_each_init(
            || vec![0f32; k * rows * sw],
            |cols, (yb, xb)| {
                if let Some(bias) = bias {
                    fill_channels(yb, bias, bl);
                }
                for (r0, r1) in g.row_tiles(rows) {
                    let nc = (r1 - r0) * sw;
                    // cols[k, nc] = w^T[k, ci] @ x[ci, tile]
                    mm(k, nc, ci, cols, nc, false, w, 1, k, &xb[r0 * sw..], sl, 1);
                    col2im(g, co, &cols[..k * nc], r0, r1, yb);
                }
                if let Some(slope) = act {
                    leaky_in_place(yb, slope);
                }
            },
        );
    y
}

/// Gradients of [`conv_t_forward`] given `dy [n, co, big]` (and its output `y` when it applied
/// an activation): `(dx, dw, dbias)`.
#[allow(clippy::too_many_arguments)]
pub fn conv_t_backward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    ci: usize,
    co: usize,
    act: Option<(&[f32], f32)>,
    want_dx: bool,
    want_dw: bool,
    want_db: bool,
) -> ConvGrads {
    let k = co * g.taps();
    let (bl, sl) = (g.big_len(), g.small_len());
    let rows = g.tile_rows(k);
    let sw = g.small[1];
    let mut dx = want_dx.then(|| vec![0f32; n * ci * sl]);
    // One pass per fixed batch chunk: im2col(dy) feeds both dx (per image) and dw (summed).
    let ranges = chunks(n);
    let dx_parts = split_by_chunk(dx.as_deref_mut(), &ranges, ci * sl);
    let jobs: Vec<_> = ranges.iter().copied().zip(dx_parts).collect();
    let parts: Vec<(Vec<f32>, Vec<f32>)> = jobs
        .into_par_iter()
        .map(|((b0, b1), mut dxp)| {
            let mut acc = vec![0f32; if want_dw { ci * k } else { 0 }];
            let mut acc_b = vec![0f32; co];
            let mut cols = vec![0f32; k * rows * sw];
            let mut masked = vec![0f32; if act.is_some() { co * bl } else { 0 }];
            for b in b0..b1 {
                let xb = &x[b * ci * sl..][..ci * sl];
                let mut dyb = &dy[b * co * bl..][..co * bl];
                if let Some((y, slope)) = act {
                    leaky_grad_from_output(dyb, &y[b * co * bl..][..co * bl], slope, &mut masked);
                    dyb = &masked;
                }
                if want_db {
                    for (o, a) in acc_b.iter_mut().enumerate() {
                        *a += dyb[o * bl..(o + 1) * bl].iter().sum::<f32>();
                    }
                }
                if !(want_dx || want_dw) {
                    continue;
                }
                for (r0, r1) in g.row_tiles(rows) {
                    let nc = (r1 - r0) * sw;
                    im2col(g, co, dyb, r0, r1, &mut cols[..k * nc]);
                    if let Some(dxp) = dxp.as_deref_mut() {
                        let dxb = &mut dxp[(b - b0) * ci * sl..][..ci * sl];
                        // dx[ci, tile] = w[ci, k] @ cols[k, nc]
                        mm(
                            ci,
                            nc,
                            k,
                            &mut dxb[r0 * sw..],
                            sl,
                            false,
                            w,
                            k,
                            1,
                            &cols,
                            nc,
                            1,
                        );
                    }
                    if want_dw {
                        // acc[ci, k] += x[ci, tile] @ cols^T[nc, k]
                        mm(
                            ci,
                            k,
                            nc,
                            &mut acc,
                            k,
                            true,
                            &xb[r0 * sw..],
                            sl,
                            1,
                            &cols,
                            1,
                            nc,
                        );
                    }
                }
            }
            (acc, acc_b)
        })
        .collect();
    let (pw, pb): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    let dw = want_dw.then(|| sum_in_order(pw));
    let db = want_db.then(|| sum_in_order(pb));
    (dx, dw, db)
}

/// Per-channel batch statistics of `[n, c, hw]`: `(mean, biased variance)` (two passes; f32
/// lanes within an image plane, f64 across planes; fixed order).
pub fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let m = (n * hw) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let plane = |b: usize| &x[(b * c + ch) * hw..][..hw];
            let s: f64 = (0..n)
                .map(|b| {
                    let xs = plane(b);
                    lane_sum(hw, |i| xs[i]) as f64
                })
                .sum();
            let mean = (s / m) as f32;
            let q: f64 = (0..n)
                .map(|b| {
                    let xs = plane(b);
                    lane_sum(hw, |i| {
                        let d = xs[i] - mean;
                        d * d
                    }) as f64
                })
                .sum();
            (mean, (q / m) as f32)
        })
        .unzip()
}

/// Training BatchNorm forward with an optional LeakyReLU folded in:
/// `y = act((x - mean) * gamma / sqrt(var + eps) + beta)`. Returns `(y, mean, var, inv_std)`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    eps: f32,
    slope: Option<f32>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = channel_stats(x, n, c, hw);
    let inv: Vec<f32> = var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each(|(yb, xb)| {
            for ch in 0..c {
                let (a, m, bt) = (gamma[ch] * inv[ch], mean[ch], beta[ch]);
                let ys = &mut yb[ch * hw..][..hw];
                let xs = &xb[ch * hw..][..hw];
                match slope {
                    Some(k) => {
                        for (o, &v) in ys.iter_mut().zip(xs) {
                            let z = (v - m) * a + bt;
                            *o = if z < 0.0 { z * k } else { z };
                        }
                    }
                    None => {
                        for (o, &v) in ys.iter_mut().zip(xs) {
                            *o = (v - m) * a + bt;
                        }
                    }
                }
            }
        });
    (y, mean, var, inv)
}

/// Sum of `f(i)` over `0..len` in 8 interleaved f32 lanes (vectorisable, fixed order).
#[inline(always)]
fn lane_sum(len: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let full = len / 8 * 8;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += 8;
    }
    let mut tail = 0f32;
    for j in full..len {
        tail += f(j);
    }
    acc.iter().sum::<f32>() + tail
}

/// [`lane_sum`] of two values at once (one pass over the inputs).
#[inline(always)]
fn lane_sum2(len: usize, f: impl Fn(usize) -> (f32, f32)) -> (f32, f32) {
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let full = len / 8 * 8;
    let mut i = 0;
    while i < full {
        for l in 0..8 {
            let (u, v) = f(i + l);
            a[l] += u;
            b[l] += v;
        }
        i += 8;
    }
    let (mut ta, mut tb) = (0f32, 0f32);
    for j in full..len {
        let (u, v) = f(j);
        ta += u;
        tb += v;
    }
    (a.iter().sum::<f32>() + ta, b.iter().sum::<f32>() + tb)
}

/// Gradients of [`batchnorm_forward`] (training mode) given `dy`: `(dx, dgamma, dbeta)`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    slope: Option<f32>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // dz = dy * act'(z), z recomputed from x exactly as the forward pass computed it.
    let k = slope.unwrap_or(1.0);
    let dz = |xv: f32, g: f32, m: f32, a: f32, bt: f32| -> f32 {
        if (xv - m) * a + bt < 0.0 {
            g * k
        } else {
            g
        }
    };
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, a, bt) = (mean[ch], gamma[ch] * inv[ch], beta[ch]);
            let (mut sd, mut sdx) = (0f64, 0f64);
            for b in 0..n {
                let xs = &x[(b * c + ch) * hw..][..hw];
                let gs = &dy[(b * c + ch) * hw..][..hw];
                let (s1, s2) = lane_sum2(hw, |i| {
                    let d = dz(xs[i], gs[i], m, a, bt);
                    (d, d * (xs[i] - m))
                });
                sd += s1 as f64;
                sdx += s2 as f64;
            }
            (sd as f32, (sdx * inv[ch] as f64) as f32)
        })
        .unzip();
    let cnt = (n * hw) as f32;
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(c * hw).enumerate().for_each(|(b, dxb)| {
        for ch in 0..c {
            let (m, a, bt, iv) = (mean[ch], gamma[ch] * inv[ch], beta[ch], inv[ch]);
            let (mb, mg) = (dbeta[ch] / cnt, dgamma[ch] / cnt);
            let xs = &x[(b * c + ch) * hw..][..hw];
            let gs = &dy[(b * c + ch) * hw..][..hw];
            for ((o, &xv), &g) in dxb[ch * hw..][..hw].iter_mut().zip(xs).zip(gs) {
                let xh = (xv - m) * iv;
                *o = a * (dz(xv, g, m, a, bt) - mb - xh * mg);
            }
        }
    });
    (dx, dgamma, dbeta)
}

/// LeakyReLU in place.
fn leaky_in_place(v: &mut [f32], slope: f32) {
    for o in v.iter_mut() {
        if *o < 0.0 {
            *o *= slope;
        }
    }
}

/// `out = dy * act'(z)` with the activation's sign read from its output `y` (LeakyReLU with a
/// positive slope keeps the sign).
fn leaky_grad_from_output(dy: &[f32], y: &[f32], slope: f32, out: &mut [f32]) {
    for ((o, &g), &v) in out.iter_mut().zip(dy).zip(y) {
        *o = if v < 0.0 { g * slope } else { g };
    }
}

/// LeakyReLU forward: `x` where `x >= 0`, else `x * slope`.
pub fn leaky_forward(x: &[f32], slope: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16))
        .for_each(|(o, i)| {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = if v < 0.0 { v * slope } else { v };
            }
        });
    y
}

/// LeakyReLU backward: `dy` where `x >= 0`, else `dy * slope`.
pub fn leaky_backward(x: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16).zip(dy.par_chunks(1 << 16)))
        .for_each(|(o, (xs, gs))| {
            for ((o, &v), &g) in o.iter_mut().zip(xs).zip(gs) {
                *o = if v < 0.0 { g * slope } else { g };
            }
        });
    dx
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of `(key, counter)`.
fn mix(key: u64, i: u64) -> u64 {
    let mut z = key ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dropout multiply: `out[i] = v[i] * scale` where element `i` is kept, else 0. Element `i` is kept
/// when a uniform draw in [0, 1) from `(key, i)` is below `keep` (counter-based, so the mask
/// is recomputed in the backward pass instead of stored). Used for both passes.
pub fn dropout_apply(v: &[f32], key: u64, keep: f64, scale: f32) -> Vec<f32> {
    // u = (h >> 40) / 2^24 < keep  <=>  (h >> 40) < ceil(keep * 2^24)
    let threshold = (keep * (1u64 << 24) as f64).ceil() as u64;
    let mut out = vec![0f32; v.len()];
    const CH: usize = 1 << 16;
    out.par_chunks_mut(CH)
        .zip(v.par_chunks(CH))
        .enumerate()
        .for_each(|(ci, (o, s))| {
            let base = (ci * CH) as u64;
            for (j, (o, &x)) in o.iter_mut().zip(s).enumerate() {
                let kept = (mix(key, base + j as u64) >> 40) < threshold;
                *o = if kept { x * scale } else { 0.0 };
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_match_brute_force() {
        for (big, small, s, p) in [(96, 48, 2, 1), (80, 80, 1, 1), (10, 5, 2, 1), (7, 4, 2, 1)] {
            let g = Geom {
                big: [big, big],
                small: [small, small],
                kernel: [3, 3],
                stride: [s, s],
                pad: [p, p],
            };
            for tap in 0..3 {
                let ok: Vec<usize> = (0..small)
                    .filter(|&o| {
                        let b = (o * s + tap) as isize - p as isize;
                        b >= 0 && b < big as isize
                    })
                    .collect();
                let (lo, hi) = g.valid(1, tap);
                assert_eq!(
                    ok,
                    (lo..hi).collect::<Vec<_>>(),
                    "{big} {small} {s} {p} {tap}"
                );
            }
        }
    }

    #[test]
    fn dropout_keeps_about_the_right_fraction() {
        let v = vec![1f32; 200_000];
        let out = dropout_apply(&v, 42, 0.9, 1.0);
        let kept = out.iter().filter(|&&x| x != 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.9).abs() < 0.005, "{kept}");
        assert_eq!(out, dropout_apply(&v, 42, 0.9, 1.0));
        assert_ne!(out, dropout_apply(&v, 43, 0.9, 1.0));
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p facegan-model timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn time_kernels() {
        let (n, c, hw) = (64, 128, 3840);
        let x: Vec<f32> = (0..n * c * hw)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let dy: Vec<f32> = (0..n * c * hw)
            .map(|i| ((i * 104729) % 997) as f32 / 500.0 - 1.0)
            .collect();
        let gamma = vec![1.1f32; c];
        let beta = vec![0.1f32; c];
        for _ in 0..3 {
            let t = Instant::now();
            let (_y, mean, _var, inv) =
                batchnorm_forward(&x, &gamma, &beta, n, c, hw, 1e-3, Some(0.01));
            let f = t.elapsed();
            let t = Instant::now();
            let _ = batchnorm_backward(&x, &gamma, &beta, &mean, &inv, &dy, n, c, hw, Some(0.01));
            eprintln!("bn fwd {:?} bwd {:?}", f, t.elapsed());
            let t = Instant::now();
            let _ = leaky_forward(&x, 0.01);
            eprintln!("leaky fwd {:?}", t.elapsed());
        }
    }
}
