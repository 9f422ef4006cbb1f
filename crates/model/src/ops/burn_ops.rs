//! The Burn path of [`super`]'s ops: what each op computes with Burn's own ops when the fast
//! path does not run (on CUDA and other backends always, on the CPU when a guard fails or
//! `FACEGAN_BURN_OPS=1`). Exactly the calls the model made before it had a fast path.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::Dropout;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::Tensor;

use super::fast::explicit_pads;
use super::{BatchNormParams, TransposedGeometry};

/// `conv`'s convolution, with its own weight (`conv.forward`) or with `weight` in its place.
pub(super) fn conv2d<B: Backend>(
    conv: &Conv2d<B>,
    weight: Option<Tensor<B, 4>>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let Some(weight) = weight else {
        return conv.forward(x);
    };
    let [(t, b), (l, r)] =
        explicit_pads(&conv.padding).expect("a weighted conv needs explicit padding");
    burn::tensor::module::conv2d(
        x,
        weight,
        conv.bias.as_ref().map(|b| b.val()),
        PaddedConvOptions::asymmetric(conv.stride, [t, l], [b, r], conv.dilation, conv.groups),
    )
}

/// `conv`'s transposed convolution (what `conv.forward(x)` computes), cropped by `crop_end`,
/// then LeakyReLU(`slope`) when given.
pub(super) fn conv_transpose2d_module<B: Backend>(
    conv: &ConvTranspose2d<B>,
    x: Tensor<B, 4>,
    crop_end: usize,
    slope: Option<f64>,
) -> Tensor<B, 4> {
    let options = ConvTransposeOptions::new(
        conv.stride,
        conv.padding,
        conv.padding_out,
        conv.dilation,
        conv.groups,
    );
    let bias = conv.bias.as_ref().map(|b| b.val());
    conv_transpose2d(x, conv.weight.val(), bias, options, crop_end, slope)
}

/// A transposed convolution with `weight [ci, co / groups, kh, kw]`, an optional bias and
/// Burn's `options`, cropped by `crop_end`, then LeakyReLU(`slope`) when given.
pub(super) fn conv_transpose2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
    crop_end: usize,
    slope: Option<f64>,
) -> Tensor<B, 4> {
    let y = burn::tensor::module::conv_transpose2d(x, weight, bias, options);
    leaky_relu_if(crop_end_rows_cols(y, crop_end), slope)
}

impl TransposedGeometry {
    /// Burn's options for this geometry (no dilation or groups; the crop is not one of them).
    pub(super) fn burn_options(&self) -> ConvTransposeOptions<2> {
        ConvTransposeOptions::new(self.stride, self.padding, self.padding_out, [1, 1], 1)
    }
}

/// Drops the last `crop` rows and columns of `[N, C, H, W]`.
fn crop_end_rows_cols<B: Backend>(y: Tensor<B, 4>, crop: usize) -> Tensor<B, 4> {
    if crop == 0 {
        return y;
    }
    let [n, c, h, w] = y.dims();
    y.slice([0..n, 0..c, 0..h - crop, 0..w - crop])
}

/// [`super::leaky_relu`] when a slope is given, else `y` unchanged.
fn leaky_relu_if<B: Backend>(y: Tensor<B, 4>, slope: Option<f64>) -> Tensor<B, 4> {
    match slope {
        Some(k) => super::leaky_relu(y, k),
        None => y,
    }
}

/// LeakyReLU as `x * k` with `k` = 1 where `x >= 0` and `slope` where `x < 0`, `k` built
/// without a graph: Burn's `leaky_relu` values with a cheaper backward (one multiply).
pub(super) fn leaky_relu<B: Backend, const D: usize>(x: Tensor<B, D>, slope: f64) -> Tensor<B, D> {
    let plain = x.clone().detach();
    let k = plain.ones_like().mask_fill(plain.lower_elem(0.0), slope);
    x * k
}

/// Training BatchNorm of `x [N, C, H, W]` with the batch's biased statistics (which
/// `on_batch_stats` receives, detached, `[C]`), then LeakyReLU(`slope`) when given.
pub(super) fn batchnorm_train<B: Backend>(
    x: Tensor<B, 4>,
    params: BatchNormParams<B>,
    slope: Option<f64>,
    on_batch_stats: impl FnOnce(Tensor<B, 1>, Tensor<B, 1>),
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let x = x.reshape([n, c, h * w]);
    let mean = x.clone().mean_dim(2).mean_dim(0); // [1, C, 1]
    let var = (x.clone() - mean.clone()).square().mean_dim(2).mean_dim(0);
    on_batch_stats(
        mean.clone().detach().reshape([c]),
        var.clone().detach().reshape([c]),
    );
    batchnorm_with(x, [n, c, h, w], [mean, var], params, slope)
}

/// BatchNorm of `x [N, C, H*W]` with the given statistics `[mean, var]` (`[1, C, 1]` each):
/// `(x - mean) * gamma / sqrt(var + epsilon) + beta`, reshaped to `shape`, then
/// LeakyReLU(`slope`) when given. Training uses the batch's statistics, evaluation the running
/// ones.
pub(crate) fn batchnorm_with<B: Backend>(
    x: Tensor<B, 3>,
    shape: [usize; 4],
    [mean, var]: [Tensor<B, 3>; 2],
    params: BatchNormParams<B>,
    slope: Option<f64>,
) -> Tensor<B, 4> {
    let c = shape[1];
    let scale = params.gamma.reshape([1, c, 1]) / (var + params.epsilon).sqrt();
    let y = (x - mean) * scale + params.beta.reshape([1, c, 1]);
    leaky_relu_if(y.reshape(shape), slope)
}

/// `dropout.forward(x)` (the identity except when training).
pub(super) fn dropout<B: Backend, const D: usize>(
    dropout: &Dropout,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    dropout.forward(x)
}
