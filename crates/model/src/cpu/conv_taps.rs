//! The "taps first" form of a 2-D convolution, for convolutions with fewer output than input
//! channels (G's `to_rgb`): instead of im2col's `[ci * taps, small]` columns, multiply first into
//! one map per output channel and tap (`[co * taps, big]`, much smaller, cached), then sum each
//! tap's map, shifted to where that tap reads, into the output ([`gather_taps`]).

use super::batch::{map_batch_chunks, map_images, sum_in_order, Planes};
use super::gemm::{gemm_into, MatMut, MatRef};
use super::geom::{ConvShape, Geom, WantGrads, TILE_FLOATS};

/// Whether a convolution runs taps first: when it has fewer output than input channels and its
/// per-tap maps fit in a cache-sized tile.
pub(crate) fn taps_first(g: &Geom, ci: usize, co: usize) -> bool {
    co < ci && co * g.taps() * g.big_len() <= TILE_FLOATS
}

/// `[outer, a, b]` -> `[outer, b, a]` (swaps the two inner axes).
fn swap_inner_axes(src: &[f32], outer: usize, a: usize, b: usize) -> Vec<f32> {
    let mut out = vec![0f32; outer * a * b];
    for o in 0..outer {
        for i in 0..a {
            for j in 0..b {
                out[(o * b + j) * a + i] = src[(o * a + i) * b + j];
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
pub(crate) fn taps_forward(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let ConvShape { geom: g, n, ci, co } = *s;
    let (taps, bl, sl) = (g.taps(), g.big_len(), g.small_len());
    let wt = swap_inner_axes(w, co, ci, taps);
    let wt = MatRef::rows(&wt, co * taps, ci, ci);
    let out = Planes { n, c: co, hw: sl };
    map_images(out, bias, x, ci * bl, co * taps * bl, |z, yb, xb| {
        let xb = MatRef::rows(xb, ci, bl, bl);
        gemm_into(MatMut::rows(z, co * taps, bl, bl), wt, xb, false);
        gather_taps(&g, co, z, yb);
    })
}

/// Gradients of [`taps_forward`]: with `u = scatter_taps(dy)` (`[(co, tap), big]`),
/// `dx = w_taps^T @ u` and `dw_taps += u @ x^T`. Returns `(dx, dw)` as asked for.
pub(crate) fn taps_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    want: WantGrads,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let ConvShape { geom: g, n, ci, co } = *s;
    let (taps, bl, sl) = (g.taps(), g.big_len(), g.small_len());
    let k = co * taps;
    let wt = swap_inner_axes(w, co, ci, taps);
    let wt = MatRef::rows(&wt, k, ci, ci);
    let mut dx = want.dx.then(|| vec![0f32; n * ci * bl]);
    let parts = map_batch_chunks(n, dx.as_deref_mut(), ci * bl, |images, mut dx_part| {
        let mut acc = vec![0f32; if want.dw { k * ci } else { 0 }];
        let mut u = vec![0f32; k * bl];
        for b in images.clone() {
            scatter_taps(&g, co, &dy[b * co * sl..][..co * sl], &mut u);
            let um = MatRef::rows(&u, k, bl, bl);
            if let Some(dx_part) = dx_part.as_deref_mut() {
                let dxb = &mut dx_part[(b - images.start) * ci * bl..][..ci * bl];
                // dx[ci, big] = wt^T[ci, k] @ u[k, big]
                gemm_into(MatMut::rows(dxb, ci, bl, bl), wt.t(), um, false);
            }
            if want.dw {
                // acc[k, ci] += u[k, big] @ x^T[big, ci]
                let xb = MatRef::rows(&x[b * ci * bl..][..ci * bl], ci, bl, bl);
                gemm_into(MatMut::rows(&mut acc, k, ci, ci), um, xb.t(), true);
            }
        }
        acc
    });
    let dw = want
        .dw
        .then(|| swap_inner_axes(&sum_in_order(parts), co, taps, ci));
    (dx, dw)
}
