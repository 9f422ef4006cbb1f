//! The model's ops, generic over the backend: on `Autodiff<Flex>` / `Flex` with f32 tensors they
//! run the fast CPU kernels; on any other backend they are exactly Burn's ops.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{Dropout, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};

use super::autodiff::{self, ConvSpec};
use super::kernels::Geom;
use super::{ad_prim, flex_prim, from_ad_prim, from_flex_prim, note_fallback, path, Path};

/// Runs a convolution through the fast path (`spec` known), or returns `None` for Burn's op.
fn conv_fast<B: Backend>(
    spec: ConvSpec,
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    b: Tensor<B, 1>,
) -> Tensor<B, 4> {
    super::count_fast();
    match path(&x) {
        Path::Train => from_ad_prim(autodiff::conv(spec, ad_prim(x), ad_prim(w), ad_prim(b))),
        Path::Infer => from_flex_prim(autodiff::conv_forward_flex(
            &spec,
            &flex_prim(x),
            &flex_prim(w),
            &flex_prim(b),
        )),
        Path::Burn => unreachable!("conv_fast on a non-CPU backend"),
    }
}

/// `conv.forward(x)`, fast on the CPU for symmetric explicit padding, no dilation or groups.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv_with(conv, None, x)
}

/// `conv`'s convolution with another `weight` of the same shape (spectral norm's `W / sigma`),
/// fast on the CPU like [`conv2d`]; the gradient flows into `weight`.
pub fn conv2d_weighted<B: Backend>(
    conv: &Conv2d<B>,
    weight: Tensor<B, 4>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    conv_with(conv, Some(weight), x)
}

fn conv_with<B: Backend>(
    conv: &Conv2d<B>,
    weight: Option<Tensor<B, 4>>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [n, ci, h, w] = x.dims();
    // (before, after) per axis; the kernels take any explicit padding (the Geom holds the
    // padding before; the output size accounts for the padding after).
    let pads = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => Some([(t, b), (l, r)]),
        PaddingConfig2d::Valid => Some([(0, 0), (0, 0)]),
        _ => None,
    };
    let [co, _, kh, kw] = conv.weight.dims();
    match (path(&x), pads, &conv.bias) {
        (Path::Train | Path::Infer, Some([(t, b), (l, r)]), Some(bias))
            if conv.dilation == [1, 1]
                && conv.groups == 1
                && h + t + b >= kh
                && w + l + r >= kw =>
        {
            let [sh, sw] = conv.stride;
            let small = [(h + t + b - kh) / sh + 1, (w + l + r - kw) / sw + 1];
            let spec = ConvSpec {
                geom: Geom {
                    big: [h, w],
                    small,
                    kernel: [kh, kw],
                    stride: conv.stride,
                    pad: [t, l],
                },
                transposed: false,
                act: None,
                n,
                ci,
                co,
            };
            conv_fast(
                spec,
                x,
                weight.unwrap_or_else(|| conv.weight.val()),
                bias.val(),
            )
        }
        (p, _, _) => match weight {
            None => {
                note_fallback(p, "conv2d");
                conv.forward(x)
            }
            Some(weight) => {
                note_fallback(p, "conv2d");
                let [(t, b), (l, r)] = pads.expect("a weighted conv needs explicit padding");
                burn::tensor::module::conv2d(
                    x,
                    weight,
                    conv.bias.as_ref().map(|b| b.val()),
                    burn::tensor::ops::PaddedConvOptions::asymmetric(
                        conv.stride,
                        [t, l],
                        [b, r],
                        conv.dilation,
                        conv.groups,
                    ),
                )
            }
        },
    }
}

/// Stride, padding and cropping of a transposed convolution (no dilation or groups): the output
/// is Burn's `ConvTranspose2d` output (`(in - 1) * stride + kernel + padding_out - 2 * padding`)
/// with its last `crop_end` rows and columns dropped (Keras' "same" padding, see
/// [`crate::layers::conv_transpose3x3_up`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposedGeometry {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub padding_out: [usize; 2],
    pub crop_end: usize,
}

/// `conv.forward(x)` for a transposed convolution, fast on the CPU (no dilation or groups).
pub fn conv_transpose2d<B: Backend>(conv: &ConvTranspose2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv_transpose2d_act(conv, x, 0, None)
}

/// `leaky_relu(crop(conv.forward(x)), slope)` (no activation without a slope; `crop_end` rows
/// and columns dropped from the end); on the CPU the activation is applied inside the
/// convolution's kernel and folded into its backward pass, and the crop costs nothing.
pub fn conv_transpose2d_act<B: Backend>(
    conv: &ConvTranspose2d<B>,
    x: Tensor<B, 4>,
    crop_end: usize,
    slope: Option<f64>,
) -> Tensor<B, 4> {
    let bias = conv.bias.as_ref().map(|b| b.val());
    if conv.dilation != [1, 1] || conv.groups != 1 || bias.is_none() {
        note_fallback(path(&x), "conv_transpose2d");
        let y = crop_end_rows_cols(conv.forward(x), crop_end);
        return match slope {
            Some(k) => leaky_relu(y, k),
            None => y,
        };
    }
    conv_transpose2d_weighted(
        x,
        conv.weight.val(),
        bias.expect("checked above"),
        TransposedGeometry {
            stride: conv.stride,
            padding: conv.padding,
            padding_out: conv.padding_out,
            crop_end,
        },
        slope,
    )
}

/// Drops the last `crop` rows and columns of `[N, C, H, W]`.
fn crop_end_rows_cols<B: Backend>(y: Tensor<B, 4>, crop: usize) -> Tensor<B, 4> {
    if crop == 0 {
        return y;
    }
    let [n, c, h, w] = y.dims();
    y.slice([0..n, 0..c, 0..h - crop, 0..w - crop])
}

/// A transposed convolution with explicit weight `[ci, co, kh, kw]` and bias `[co]`, then
/// LeakyReLU(`slope`) when given: the CPU fast path when it applies (the activation fused into
/// the kernel), else Burn's op. The gradient flows into `weight`, so the weight may itself be
/// computed (see [`crate::layers::UpConv`]'s resize mode).
pub fn conv_transpose2d_weighted<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    geometry: TransposedGeometry,
    slope: Option<f64>,
) -> Tensor<B, 4> {
    let [n, ci, h, w] = x.dims();
    let [_, co, kh, kw] = weight.dims();
    let TransposedGeometry {
        stride: s,
        padding: p,
        padding_out: op,
        crop_end,
    } = geometry;
    // The kernels drop every tap that lands outside `big`, so a crop at the end is free.
    let big = [
        (h.saturating_sub(1) * s[0] + kh + op[0]).checked_sub(2 * p[0] + crop_end),
        (w.saturating_sub(1) * s[1] + kw + op[1]).checked_sub(2 * p[1] + crop_end),
    ];
    let fits = slope.is_none_or(|k| k > 0.0) // the backward reads the slope from the output's sign
        && h > 0
        && w > 0
        && op[0] < s[0]
        && op[1] < s[1];
    match (path(&x), big) {
        (Path::Train | Path::Infer, [Some(bh), Some(bw)]) if fits && bh > 0 && bw > 0 => {
            let spec = ConvSpec {
                geom: Geom {
                    big: [bh, bw],
                    small: [h, w],
                    kernel: [kh, kw],
                    stride: s,
                    pad: p,
                },
                transposed: true,
                act: slope.map(|k| k as f32),
                n,
                ci,
                co,
            };
            conv_fast(spec, x, weight, bias)
        }
        (path, _) => {
            note_fallback(path, "conv_transpose2d");
            let y = burn::tensor::module::conv_transpose2d(
                x,
                weight,
                Some(bias),
                burn::tensor::ops::ConvTransposeOptions::new(s, p, op, [1, 1], 1),
            );
            let y = crop_end_rows_cols(y, crop_end);
            match slope {
                Some(k) => leaky_relu(y, k),
                None => y,
            }
        }
    }
}

/// LeakyReLU as `x * k` with `k` = 1 where `x >= 0` and `slope` where `x < 0`, `k` built
/// without a graph (Burn's `leaky_relu` values, a cheaper backward); one fused kernel on the CPU.
pub fn leaky_relu<B: Backend, const D: usize>(x: Tensor<B, D>, slope: f64) -> Tensor<B, D> {
    match path(&x) {
        Path::Train => from_ad_prim(autodiff::leaky_relu(ad_prim(x), slope as f32)),
        _ => {
            let plain = x.clone().detach();
            let k = plain.ones_like().mask_fill(plain.lower_elem(0.0), slope);
            x * k
        }
    }
}

/// Training-mode BatchNorm of `x [n, c, hw]` with `gamma`, `beta` `[c]`, optionally followed
/// by LeakyReLU(`slope`). Returns the output and the batch mean and biased variance `[c]`
/// (detached), or `None` when the backend is not the CPU training backend.
pub fn batchnorm_train<B: Backend>(
    x: Tensor<B, 3>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
    slope: Option<f64>,
) -> Option<(Tensor<B, 3>, Tensor<B, 1>, Tensor<B, 1>)> {
    if path(&x) != Path::Train {
        return None;
    }
    let device = x.device();
    let (y, mean, var) = autodiff::batchnorm(
        ad_prim(x),
        ad_prim(gamma),
        ad_prim(beta),
        eps as f32,
        slope.map(|s| s as f32),
    );
    let c = mean.len();
    let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
    Some((from_ad_prim(y), stat(mean), stat(var)))
}

/// `dropout.forward(x)`. On the CPU training backend the mask comes from a counter-based hash
/// keyed by one draw of the backend RNG (so it still depends only on the per-step seed), instead
/// of one Bernoulli draw per element.
pub fn dropout<B: Backend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    if dropout.prob == 0.0 || path(&x) != Path::Train {
        return dropout.forward(x);
    }
    let draws = Tensor::<B, 1>::random([4], Distribution::Default, &x.device())
        .into_data()
        .to_vec::<f32>()
        .expect("f32 draws");
    let key = draws.iter().fold(0x6A09_E667_F3BC_C909u64, |k, v| {
        (k ^ v.to_bits() as u64)
            .rotate_left(23)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    from_ad_prim(autodiff::dropout(ad_prim(x), key, 1.0 - dropout.prob))
}
