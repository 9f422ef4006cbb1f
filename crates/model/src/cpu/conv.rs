//! 2-D convolution kernels, forward and backward, on contiguous NCHW slices: `x [n, ci, big]`,
//! `w [co, ci, kh, kw]`, `y [n, co, small]`. Through the im2col lowering (`y = w @ cols(x)`), or
//! taps first for narrowing convolutions (see [`super::conv_taps`]).

use super::batch::{channel_sums, map_batch_chunks, sum_in_order, Planes};
use super::conv_taps::{taps_backward, taps_first, taps_forward};
use super::gemm::{gemm_into, MatMut};
use super::geom::{ConvGrads, ConvShape, WantGrads};
use super::im2col::Lowering;

/// 2-D convolution forward with an optional `bias [co]`: `y = w @ im2col(x) + bias`.
pub(crate) fn conv2d_forward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let ConvShape { geom: g, n, ci, co } = *s;
    if taps_first(&g, ci, co) {
        return taps_forward(s, x, w, bias);
    }
    let lowering = Lowering::new(&g, ci);
    let w = lowering.weights(w, co);
    let out = Planes::new(n, co, g.small_len());
    lowering.map_images(out, bias, (x, ci * g.big_len()), |cols, yb, xb| {
        lowering.for_each_im2col(xb, cols, |tile, cols| {
            // y[co, tile] (+)= w[co, k] @ cols[k, tile]
            gemm_into(tile.of_mut(yb, co), w, cols, bias.is_some());
        });
    })
}

/// Gradients of [`conv2d_forward`] given `dy [n, co, small]`, each computed only when asked for.
pub(crate) fn conv2d_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    want: WantGrads,
) -> ConvGrads {
    let ConvShape { geom: g, n, ci, co } = *s;
    let (bl, sl) = (g.big_len(), g.small_len());
    let db = || channel_sums(dy, Planes { n, c: co, hw: sl });
    if taps_first(&g, ci, co) {
        let (dx, dw) = taps_backward(s, x, w, dy, want);
        let db = want.db.then(db);
        return ConvGrads { dx, dw, db };
    }
    let lowering = Lowering::new(&g, ci);
    let k = lowering.depth();
    let w = lowering.weights(w, co);
    let dx = want.dx.then(|| {
        let dx_shape = Planes::new(n, ci, bl);
        lowering.map_images(dx_shape, None, (dy, co * sl), |cols, dxb, dyb| {
            lowering.for_each_col2im(cols, dxb, |tile, cols| {
                // cols[k, tile] = w^T[k, co] @ dy[co, tile]
                gemm_into(cols, w.t(), tile.of(dyb, co), false);
            });
        })
    });
    let dw = want.dw.then(|| {
        let parts = map_batch_chunks(n, None, 0, |images, _| {
            let mut acc = vec![0f32; co * k];
            let mut cols = vec![0f32; lowering.scratch_len()];
            for b in images {
                let (xb, dyb) = (&x[b * ci * bl..][..ci * bl], &dy[b * co * sl..][..co * sl]);
                lowering.for_each_im2col(xb, &mut cols, |tile, cols| {
                    // acc[co, k] += dy[co, tile] @ cols^T[tile, k]
                    gemm_into(
                        MatMut::rows(&mut acc, co, k, k),
                        tile.of(dyb, co),
                        cols.t(),
                        true,
                    );
                });
            }
            acc
        });
        sum_in_order(parts)
    });
    let db = want.db.then(db);
    ConvGrads { dx, dw, db }
}
