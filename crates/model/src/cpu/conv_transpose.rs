//! Transposed 2-D convolution kernels, forward and backward, on contiguous NCHW slices:
//! `x [n, ci, small]`, `w [ci, co, kh, kw]`, `y [n, co, big]`, with an optional LeakyReLU fused
//! into the output. The adjoint of a convolution through the same im2col lowering:
//! `y = col2im(w^T @ x)`, and backward `dx = w @ im2col(dy)`, `dw = x @ im2col(dy)^T`.

use super::activation::{leaky_grad, leaky_in_place};
use super::batch::{map_batch_chunks, sum_in_order, Planes};
use super::gemm::{gemm_into, MatMut};
use super::geom::{ConvGrads, ConvShape, WantGrads};
use super::im2col::Lowering;

/// Transposed 2-D convolution forward with an optional `bias [co]`, then LeakyReLU(`act`) when
/// given.
pub(crate) fn conv_t_forward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Option<f32>,
) -> Vec<f32> {
    let ConvShape { geom: g, n, ci, co } = *s;
    let lowering = Lowering::new(&g, co);
    let w = lowering.weights(w, ci);
    let out = Planes::new(n, co, g.big_len());
    lowering.map_images(out, bias, (x, ci * g.small_len()), |cols, yb, xb| {
        lowering.for_each_col2im(cols, yb, |tile, cols| {
            // cols[k, tile] = w^T[k, ci] @ x[ci, tile]
            gemm_into(cols, w.t(), tile.of(xb, ci), false);
        });
        if let Some(slope) = act {
            leaky_in_place(yb, slope);
        }
    })
}

/// Gradients of [`conv_t_forward`] given `dy [n, co, big]` (and its output `y` when it applied
/// an activation), each computed only when asked for. One pass per fixed batch chunk:
/// `im2col(dy)` feeds both `dx` (per image) and `dw` (summed).
pub(crate) fn conv_t_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    act: Option<(&[f32], f32)>,
    want: WantGrads,
) -> ConvGrads {
    let ConvShape { geom: g, n, ci, co } = *s;
    let (bl, sl) = (g.big_len(), g.small_len());
    let lowering = Lowering::new(&g, co);
    let k = lowering.depth();
    let w = lowering.weights(w, ci);
    let mut dx = want.dx.then(|| vec![0f32; n * ci * sl]);
    let parts = map_batch_chunks(n, dx.as_deref_mut(), ci * sl, |images, mut dx_part| {
        let mut acc = vec![0f32; if want.dw { ci * k } else { 0 }];
        let mut acc_b = vec![0f32; co];
        let mut cols = vec![0f32; lowering.scratch_len()];
        let mut masked = vec![0f32; if act.is_some() { co * bl } else { 0 }];
        for b in images.clone() {
            let xb = &x[b * ci * sl..][..ci * sl];
            let mut dyb = &dy[b * co * bl..][..co * bl];
            if let Some((y, slope)) = act {
                leaky_grad(dyb, &y[b * co * bl..][..co * bl], slope, &mut masked);
                dyb = &masked;
            }
            if want.db {
                for (o, a) in acc_b.iter_mut().enumerate() {
                    *a += dyb[o * bl..(o + 1) * bl].iter().sum::<f32>();
                }
            }
            if !(want.dx || want.dw) {
                continue;
            }
            let mut dxb = dx_part
                .as_deref_mut()
                .map(|p| &mut p[(b - images.start) * ci * sl..][..ci * sl]);
            lowering.for_each_im2col(dyb, &mut cols, |tile, cols| {
                if let Some(dxb) = dxb.as_deref_mut() {
                    // dx[ci, tile] = w[ci, k] @ cols[k, tile]
                    gemm_into(tile.of_mut(dxb, ci), w, cols, false);
                }
                if want.dw {
                    // acc[ci, k] += x[ci, tile] @ cols^T[tile, k]
                    gemm_into(
                        MatMut::rows(&mut acc, ci, k, k),
                        tile.of(xb, ci),
                        cols.t(),
                        true,
                    );
                }
            });
        }
        (acc, acc_b)
    });
    let (pw, pb): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    ConvGrads {
        dx,
        dw: want.dw.then(|| sum_in_order(pw)),
        db: want.db.then(|| sum_in_order(pb)),
    }
}
