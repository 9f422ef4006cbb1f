//! The fast path of [`super`]'s ops: each op's guard (`*_plan`: the call fits the kernels, or the
//! [`BurnReason`] it does not), and the run of a planned call on [`crate::cpu`]'s kernels. A
//! plan proves that `B` is `Autodiff<Flex>` or `Flex`, so the generic tensors are cast to those
//! types (checked at run time) and back.

use std::any::Any;

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{Dropout, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Distribution, Tensor, TensorData, TensorPrimitive};

use super::path::{count_fast, cpu_backend, training_backend, BurnReason, CpuBackend, Training};
use super::{BatchNormParams, TransposedGeometry};
use crate::cpu::autodiff::{self, ConvSpec};
use crate::cpu::geom::{ConvShape, Geom};
use crate::cpu::Ad;

/// A convolution call that fits the kernels: the backend and the kernels' description of it.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvPlan {
    backend: CpuBackend,
    spec: ConvSpec,
}

/// `(before, after)` padding per axis of a conv2d's explicit (or no) padding; `None` for
/// padding that depends on the input (`Same`).
pub(super) fn explicit_pads(padding: &PaddingConfig2d) -> Option<[(usize, usize); 2]> {
    match *padding {
        PaddingConfig2d::Explicit(t, l, b, r) => Some([(t, b), (l, r)]),
        PaddingConfig2d::Valid => Some([(0, 0), (0, 0)]),
        _ => None,
    }
}

/// The guard of a convolution with `conv`'s geometry: explicit padding (any, asymmetric
/// included), a bias, no dilation or groups, a kernel that fits the padded input.
pub(super) fn conv2d_plan<B: Backend>(
    conv: &Conv2d<B>,
    x: &Tensor<B, 4>,
) -> Result<ConvPlan, BurnReason> {
    let backend = cpu_backend(x)?;
    let [n, ci, h, w] = x.dims();
    let [co, _, kh, kw] = conv.weight.dims();
    let [(t, b), (l, r)] =
        explicit_pads(&conv.padding).ok_or(BurnReason::Unsupported("`Same` padding"))?;
    if conv.bias.is_none() {
        return Err(BurnReason::Unsupported("no bias"));
    }
    if conv.dilation != [1, 1] || conv.groups != 1 {
        return Err(BurnReason::Unsupported("dilation or groups"));
    }
    if h + t + b < kh || w + l + r < kw {
        return Err(BurnReason::Unsupported(
            "kernel larger than the padded input",
        ));
    }
    let [sh, sw] = conv.stride;
    // The Geom holds the padding before; the output size accounts for the padding after.
    let small = [(h + t + b - kh) / sh + 1, (w + l + r - kw) / sw + 1];
    let geom = Geom {
        big: [h, w],
        small,
        kernel: [kh, kw],
        stride: conv.stride,
        pad: [t, l],
    };
    let spec = ConvSpec {
        shape: ConvShape { geom, n, ci, co },
        transposed: false,
        act: None,
    };
    Ok(ConvPlan { backend, spec })
}

/// The guard of a transposed convolution (no dilation or groups) of
/// `x` with a weight of `weight_dims`, then LeakyReLU(`slope`): a positive slope (the backward
/// pass reads the slope from the output's sign), a non-empty input and output, an output padding
/// below the stride.
pub(super) fn conv_transpose2d_plan<B: Backend>(
    x: &Tensor<B, 4>,
    weight_dims: [usize; 4],
    geometry: TransposedGeometry,
    slope: Option<f64>,
) -> Result<ConvPlan, BurnReason> {
    let backend = cpu_backend(x)?;
    let [n, ci, h, w] = x.dims();
    let [_, co, kh, kw] = weight_dims;
    let TransposedGeometry {
        stride: s,
        padding: p,
        padding_out: op,
        crop_end,
    } = geometry;
    if !slope.is_none_or(|k| k > 0.0) {
        return Err(BurnReason::Unsupported("fused LeakyReLU slope <= 0"));
    }
    if op[0] >= s[0] || op[1] >= s[1] {
        return Err(BurnReason::Unsupported("output padding >= stride"));
    }
    // The kernels drop every tap that lands outside `big`, so a crop at the end is free.
    let big = [
        (h.saturating_sub(1) * s[0] + kh + op[0]).checked_sub(2 * p[0] + crop_end),
        (w.saturating_sub(1) * s[1] + kw + op[1]).checked_sub(2 * p[1] + crop_end),
    ];
    let [Some(bh), Some(bw)] = big else {
        return Err(BurnReason::Unsupported("empty output"));
    };
    if h == 0 || w == 0 || bh == 0 || bw == 0 {
        return Err(BurnReason::Unsupported("empty input or output"));
    }
    let geom = Geom {
        big: [bh, bw],
        small: [h, w],
        kernel: [kh, kw],
        stride: s,
        pad: p,
    };
    let spec = ConvSpec {
        shape: ConvShape { geom, n, ci, co },
        transposed: true,
        act: slope.map(|k| k as f32),
    };
    Ok(ConvPlan { backend, spec })
}

/// The guard of `conv`'s transposed convolution, cropped by `crop_end`, then LeakyReLU(`slope`):
/// a bias and no dilation or groups, then [`conv_transpose2d_plan`]'s.
pub(super) fn conv_transpose2d_module_plan<B: Backend>(
    conv: &ConvTranspose2d<B>,
    x: &Tensor<B, 4>,
    crop_end: usize,
    slope: Option<f64>,
) -> Result<ConvPlan, BurnReason> {
    cpu_backend(x)?;
    if conv.bias.is_none() {
        return Err(BurnReason::Unsupported("no bias"));
    }
    if conv.dilation != [1, 1] || conv.groups != 1 {
        return Err(BurnReason::Unsupported("dilation or groups"));
    }
    let geometry = TransposedGeometry {
        stride: conv.stride,
        padding: conv.padding,
        padding_out: conv.padding_out,
        crop_end,
    };
    conv_transpose2d_plan(x, conv.weight.dims(), geometry, slope)
}

/// Runs a planned convolution (or transposed convolution) with weight `w` and bias `b`.
pub(super) fn conv<B: Backend>(
    plan: ConvPlan,
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    b: Tensor<B, 1>,
) -> Tensor<B, 4> {
    count_fast();
    let spec = plan.spec;
    match plan.backend {
        CpuBackend::Train => from_ad_prim(autodiff::conv(spec, ad_prim(x), ad_prim(w), ad_prim(b))),
        CpuBackend::Infer => from_flex_prim(autodiff::conv_forward_flex(
            &spec,
            &flex_prim(x),
            &flex_prim(w),
            &flex_prim(b),
        )),
    }
}

/// The guard of the training-only ops (LeakyReLU, BatchNorm): the CPU training backend.
pub(super) fn training_plan<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
) -> Result<Training, BurnReason> {
    training_backend(x)
}

/// LeakyReLU on the training backend: one fused kernel with its own backward pass.
pub(super) fn leaky_relu<B: Backend, const D: usize>(
    _: Training,
    x: Tensor<B, D>,
    slope: f64,
) -> Tensor<B, D> {
    count_fast();
    from_ad_prim(autodiff::leaky_relu(ad_prim(x), slope as f32))
}

/// Training BatchNorm (+ LeakyReLU(`slope`)) on the training backend: one fused kernel over the
/// `[N, C, H*W]` view; `on_batch_stats` receives the batch mean and biased variance `[C]`.
pub(super) fn batchnorm_train<B: Backend>(
    _: Training,
    x: Tensor<B, 4>,
    params: BatchNormParams<B>,
    slope: Option<f64>,
    on_batch_stats: impl FnOnce(Tensor<B, 1>, Tensor<B, 1>),
) -> Tensor<B, 4> {
    count_fast();
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let (y, mean, var) = autodiff::batchnorm(
        ad_prim(x.reshape([n, c, h * w])),
        ad_prim(params.gamma),
        ad_prim(params.beta),
        params.epsilon as f32,
        slope.map(|s| s as f32),
    );
    let y: Tensor<B, 3> = from_ad_prim(y);
    let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
    on_batch_stats(stat(mean), stat(var));
    y.reshape([n, c, h, w])
}

/// The guard of dropout: the training backend (elsewhere Burn's dropout is the identity) and
/// something to drop.
pub(super) fn dropout_plan<B: Backend, const D: usize>(
    dropout: &Dropout,
    x: &Tensor<B, D>,
) -> Result<Training, BurnReason> {
    if dropout.prob == 0.0 {
        return Err(BurnReason::NoKernel);
    }
    training_backend(x)
}

/// Dropout on the training backend. The mask comes from a counter-based hash keyed by one draw
/// of the backend RNG (so it still depends only on the per-step seed), instead of one Bernoulli
/// draw per element.
pub(super) fn dropout<B: Backend, const D: usize>(
    _: Training,
    dropout: &Dropout,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    count_fast();
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

/// Moves a value to the type it is known to have (checked at run time).
fn cast<A: 'static, T: 'static>(a: A) -> T {
    let mut slot = Some(a);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .expect("fast path: backend type mismatch")
        .take()
        .expect("value present")
}

/// The autodiff primitive of a `Tensor<B, D>` whose `B` is [`Ad`].
fn ad_prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<Ad> {
    cast::<Tensor<B, D>, Tensor<Ad, D>>(t)
        .into_primitive()
        .tensor()
}

fn from_ad_prim<B: Backend, const D: usize>(p: FloatTensor<Ad>) -> Tensor<B, D> {
    cast(Tensor::<Ad, D>::from_primitive(TensorPrimitive::Float(p)))
}

/// The flex tensor of a `Tensor<B, D>` whose `B` is `Flex`.
fn flex_prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FlexTensor {
    cast::<Tensor<B, D>, Tensor<Flex, D>>(t)
        .into_primitive()
        .tensor()
}

fn from_flex_prim<B: Backend, const D: usize>(p: FlexTensor) -> Tensor<B, D> {
    cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(p)))
}
