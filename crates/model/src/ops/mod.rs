//! The model's hot ops (convolution, transposed convolution with an optional fused LeakyReLU,
//! training BatchNorm + LeakyReLU, LeakyReLU, dropout), generic over the backend. Each op is
//! written the same way:
//!
//! ```text
//! match fast::<op>_plan(..) {                // the guard: does this call fit the kernels?
//!     Ok(plan) => fast::<op>(plan, ..),      // the CPU kernels (crate::cpu)
//!     Err(why) => {
//!         note_fallback("<op>", why);        // counted + said on stderr if a guard failed
//!         burn_ops::<op>(..)                 // Burn's ops
//!     }
//! }
//! ```
//!
//! The fast path runs on `Autodiff<Flex>` (training: kernels with their own backward passes)
//! and `Flex` (inference: the convolutions' forward kernels) with f32 tensors; on every other
//! backend (CUDA) the ops are exactly Burn's. [`fast_path_active`] says whether a backend takes
//! it, [`fast_path_calls`] and [`fallbacks`] count, per thread, the calls that took it and the
//! CPU calls a guard sent to Burn. `FACEGAN_BURN_OPS=1` switches it off (for A/B comparisons).

mod burn_ops;
mod fast;
mod path;

pub(crate) use burn_ops::batchnorm_with;
pub use path::{fallbacks, fast_path_active, fast_path_calls};

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::Dropout;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use path::note_fallback;

/// `conv.forward(x)`, fast on the CPU for explicit padding (asymmetric included), a bias, no
/// dilation or groups.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv2d_with(conv, None, x)
}

/// `conv`'s convolution with another `weight` of the same shape (spectral norm's `W / sigma`),
/// fast on the CPU like [`conv2d`]; the gradient flows into `weight`.
pub fn conv2d_weighted<B: Backend>(
    conv: &Conv2d<B>,
    weight: Tensor<B, 4>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    conv2d_with(conv, Some(weight), x)
}

fn conv2d_with<B: Backend>(
    conv: &Conv2d<B>,
    weight: Option<Tensor<B, 4>>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    match fast::conv2d_plan(conv, &x) {
        Ok(plan) => {
            let weight = weight.unwrap_or_else(|| conv.weight.val());
            let bias = conv.bias.as_ref().expect("the plan checked the bias").val();
            fast::conv(plan, x, weight, bias)
        }
        Err(why) => {
            note_fallback("conv2d", why);
            burn_ops::conv2d(conv, weight, x)
        }
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
    match fast::conv_transpose2d_module_plan(conv, &x, crop_end, slope) {
        Ok(plan) => {
            let bias = conv.bias.as_ref().expect("the plan checked the bias").val();
            fast::conv(plan, x, conv.weight.val(), bias)
        }
        Err(why) => {
            note_fallback("conv_transpose2d", why);
            burn_ops::conv_transpose2d_module(conv, x, crop_end, slope)
        }
    }
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
    match fast::conv_transpose2d_plan(&x, weight.dims(), geometry, slope) {
        Ok(plan) => fast::conv(plan, x, weight, bias),
        Err(why) => {
            note_fallback("conv_transpose2d", why);
            let options = geometry.burn_options();
            burn_ops::conv_transpose2d(x, weight, Some(bias), options, geometry.crop_end, slope)
        }
    }
}

/// LeakyReLU as `x * k` with `k` = 1 where `x >= 0` and `slope` where `x < 0`, `k` built
/// without a graph (Burn's `leaky_relu` values, a cheaper backward); one fused kernel on the CPU
/// training backend.
pub fn leaky_relu<B: Backend, const D: usize>(x: Tensor<B, D>, slope: f64) -> Tensor<B, D> {
    match fast::training_plan(&x) {
        Ok(plan) => fast::leaky_relu(plan, x, slope),
        Err(why) => {
            note_fallback("leaky_relu", why);
            burn_ops::leaky_relu(x, slope)
        }
    }
}

/// A BatchNorm's learned per-channel scale `gamma` and shift `beta` (`[C]`), and the `epsilon`
/// added to the variance.
#[derive(Clone, Debug)]
pub struct BatchNormParams<B: Backend> {
    pub gamma: Tensor<B, 1>,
    pub beta: Tensor<B, 1>,
    pub epsilon: f64,
}

/// Training-mode BatchNorm of `x [N, C, H, W]` with the batch's biased statistics, then
/// LeakyReLU(`slope`) when given; one fused op on the CPU training backend. `on_batch_stats`
/// receives the batch mean and variance `[C]` (detached), for the running statistics.
pub fn batchnorm_train<B: Backend>(
    x: Tensor<B, 4>,
    params: BatchNormParams<B>,
    slope: Option<f64>,
    on_batch_stats: impl FnOnce(Tensor<B, 1>, Tensor<B, 1>),
) -> Tensor<B, 4> {
    match fast::training_plan(&x) {
        Ok(plan) => fast::batchnorm_train(plan, x, params, slope, on_batch_stats),
        Err(why) => {
            note_fallback("batchnorm_train", why);
            burn_ops::batchnorm_train(x, params, slope, on_batch_stats)
        }
    }
}

/// `dropout.forward(x)`. On the CPU training backend the mask comes from a counter-based hash
/// keyed by one draw of the backend RNG (so it still depends only on the per-step seed), instead
/// of one Bernoulli draw per element.
pub fn dropout<B: Backend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    if crate::layers::inference_forced() {
        return x;
    }
    match fast::dropout_plan(dropout, &x) {
        Ok(plan) => fast::dropout(plan, dropout, x),
        Err(why) => {
            note_fallback("dropout", why);
            burn_ops::dropout(dropout, x)
        }
    }
}
