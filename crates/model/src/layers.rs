//! Building blocks: Keras-style Glorot initialisation, a BatchNorm that works on `[N, C, H*W]`
//! views (no axis swap, so no full copies on the CPU backend) with Burn's running-stat semantics,
//! spectral normalization by power iteration, and the minibatch-stddev feature.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{backend::Backend, Distribution, Tensor};

use crate::config::{Padding, Upsample};
use crate::ops::{self, BatchNormParams};

/// Glorot/Xavier-uniform tensor: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
pub fn glorot_uniform<B: Backend, const D: usize>(
    shape: [usize; D],
    fan_in: usize,
    fan_out: usize,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Uniform(-limit, limit),
        device,
    ))
}

fn zeros_bias<B: Backend>(n: usize, device: &B::Device) -> Option<Param<Tensor<B, 1>>> {
    Some(Param::from_tensor(Tensor::zeros([n], device)))
}

/// A convolution kernel of `shape` (`[out, in, k, k]`, or `[in, out, k, k]` transposed) with
/// Glorot values (fans `in * k * k` and `out * k * k`), and a zero bias of `cout` values.
fn glorot_kernel_zero_bias<B: Backend>(
    shape: [usize; 4],
    [cin, cout]: [usize; 2],
    device: &B::Device,
) -> (Param<Tensor<B, 4>>, Option<Param<Tensor<B, 1>>>) {
    let taps = shape[2] * shape[3];
    let weight = glorot_uniform(shape, cin * taps, cout * taps, device);
    (weight, zeros_bias(cout, device))
}

/// A 3x3 convolution that keeps the size (stride 1) or halves an even size (stride 2), Glorot
/// kernel, zero bias. Padding 1 on every side, except a stride-2 convolution with
/// [`Padding::Keras`]: 0 before and 1 after, as Keras' `padding="same"` pads an even size.
pub fn conv3x3<B: Backend>(
    cin: usize,
    cout: usize,
    stride: usize,
    padding: Padding,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = match (padding, stride) {
        (Padding::Keras, 2) => PaddingConfig2d::Explicit(0, 0, 1, 1),
        _ => PaddingConfig2d::Explicit(1, 1, 1, 1),
    };
    let mut conv = Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(pad)
        .init(device);
    (conv.weight, conv.bias) = glorot_kernel_zero_bias([cout, cin, 3, 3], [cin, cout], device);
    conv
}

/// A 1x1 convolution (stride 1, no padding), Glorot kernel, zero bias: progressive growing's RGB
/// input to a discriminator step.
pub fn conv1x1<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    let mut conv = Conv2dConfig::new([cin, cout], [1, 1]).init(device);
    (conv.weight, conv.bias) = glorot_kernel_zero_bias([cout, cin, 1, 1], [cin, cout], device);
    conv
}

/// A 3x3 stride-2 transposed convolution that doubles H and W, Glorot kernel, zero bias.
/// [`Padding::Symmetric`]: padding 1, output padding 1 (PyTorch's). [`Padding::Keras`]: padding
/// 0, so the output is `2H+1 x 2W+1`, and [`UpConv`] crops its last row and column: the transpose
/// of Keras' stride-2 "same" convolution, as `Conv2DTranspose(padding="same")` computes.
pub fn conv_transpose3x3_up<B: Backend>(
    cin: usize,
    cout: usize,
    padding: Padding,
    device: &B::Device,
) -> ConvTranspose2d<B> {
    let (pad, pad_out) = match padding {
        Padding::Symmetric => (1, 1),
        Padding::Keras => (0, 0),
    };
    conv_transpose_up([cin, cout], 3, [pad, pad_out], device)
}

/// A 4x4 stride-2 transposed convolution that doubles H and W (padding 1: the DCGAN paper's
/// upsampling, each output pixel touched by the same number of taps), Glorot kernel, zero bias.
pub fn conv_transpose4x4_up<B: Backend>(
    cin: usize,
    cout: usize,
    device: &B::Device,
) -> ConvTranspose2d<B> {
    conv_transpose_up([cin, cout], 4, [1, 0], device)
}

/// A `kernel x kernel` stride-2 transposed convolution from `cin` to `cout` channels with the
/// given padding and output padding, Glorot kernel, zero bias.
fn conv_transpose_up<B: Backend>(
    [cin, cout]: [usize; 2],
    kernel: usize,
    [padding, padding_out]: [usize; 2],
    device: &B::Device,
) -> ConvTranspose2d<B> {
    let mut conv = ConvTranspose2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([2, 2])
        .with_padding([padding, padding])
        .with_padding_out([padding_out, padding_out])
        .init(device);
    let shape = [cin, cout, kernel, kernel];
    (conv.weight, conv.bias) = glorot_kernel_zero_bias(shape, [cin, cout], device);
    conv
}

/// G's x2 upsampling layer, one of three designs ([`Upsample`]): a 3x3 or 4x4 stride-2
/// transposed convolution, or a resize-convolution (nearest-neighbour x2, then a 3x3
/// convolution; Odena et al. 2016, the usual cure for the checkerboard of 3x3 transposed
/// convolutions).
///
/// The resize-convolution is computed as the transposed convolution it equals: along each axis,
/// `conv3(upsample2(x))` gives `out[2i] = w0 x[i-1] + (w1+w2) x[i]` and
/// `out[2i+1] = (w0+w1) x[i] + w2 x[i+1]`, a 4x4 stride-2 padding-1 transposed convolution whose kernel is
/// `M w M^T` with `M = [[0,0,1],[0,1,1],[1,1,0],[1,0,0]]` (rows: taps 0..3). So it runs on the same
/// fast kernel as `transposed4`, at 4 multiply-adds per output pixel and channel pair instead of
/// the 9 of a convolution over the upsampled map; the trained parameter is the 3x3 kernel.
#[derive(Module, Debug)]
pub struct UpConv<B: Backend> {
    /// `transposed3` / `transposed4`: the transposed convolution.
    pub transposed: Option<ConvTranspose2d<B>>,
    /// `resize`: the 3x3 convolution applied after nearest-neighbour upsampling.
    pub resize: Option<Conv2d<B>>,
    /// Rows (and columns) cropped from the end of the transposed convolution's output: 1 for
    /// a Keras-padded 3x3 one (see [`conv_transpose3x3_up`]), else 0.
    pub crop_end: usize,
}

impl<B: Backend> UpConv<B> {
    pub fn new(
        mode: Upsample,
        padding: Padding,
        cin: usize,
        cout: usize,
        device: &B::Device,
    ) -> Self {
        let (transposed, resize) = match mode {
            Upsample::Transposed3 => (Some(conv_transpose3x3_up(cin, cout, padding, device)), None),
            Upsample::Transposed4 => (Some(conv_transpose4x4_up(cin, cout, device)), None),
            Upsample::Resize => (None, Some(conv3x3(cin, cout, 1, padding, device))),
        };
        let crop_end = usize::from(mode == Upsample::Transposed3 && padding == Padding::Keras);
        UpConv {
            transposed,
            resize,
            crop_end,
        }
    }

    pub fn out_channels(&self) -> usize {
        match (&self.transposed, &self.resize) {
            (Some(t), _) => t.weight.dims()[1],
            (None, Some(c)) => c.weight.dims()[0],
            (None, None) => unreachable!("an UpConv has one of its two layers"),
        }
    }

    /// `[N, C, H, W]` -> `[N, C', 2H, 2W]`, then LeakyReLU(`slope`) when given (fused on the CPU).
    pub fn forward_act(&self, x: Tensor<B, 4>, slope: Option<f64>) -> Tensor<B, 4> {
        match (&self.transposed, &self.resize) {
            (Some(t), _) => ops::conv_transpose2d_act(t, x, self.crop_end, slope),
            (None, Some(c)) => resize_conv(c, x, slope),
            (None, None) => unreachable!("an UpConv has one of its two layers"),
        }
    }
}

/// `conv` (a 3x3 convolution, padding 1) applied to `x` upsampled x2 by nearest neighbour, then
/// LeakyReLU(`slope`) when given: one transposed convolution with [`resize_conv_kernel`] (see
/// [`UpConv`]), on the CPU fast path.
pub fn resize_conv<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    slope: Option<f64>,
) -> Tensor<B, 4> {
    ops::conv_transpose2d_weighted(
        x,
        resize_conv_kernel(conv.weight.val()),
        conv.bias.as_ref().expect("conv3x3 has a bias").val(),
        ops::TransposedGeometry {
            stride: [2, 2],
            padding: [1, 1],
            padding_out: [0, 0],
            crop_end: 0,
        },
        slope,
    )
}

/// The 4x4 transposed-convolution kernel `[ci, co, 4, 4]` equal to nearest x2 upsampling
/// followed by the 3x3 convolution `w [co, ci, 3, 3]` (padding 1): `M w M^T` per channel pair
/// (see [`UpConv`]). Differentiable: the gradient flows back to `w`.
pub fn resize_conv_kernel<B: Backend>(w: Tensor<B, 4>) -> Tensor<B, 4> {
    let [co, ci, _, _] = w.dims();
    let device = w.device();
    #[rustfmt::skip]
    let m_t = Tensor::<B, 2>::from_data(
        burn::tensor::TensorData::new(
            vec![0f32, 0.0, 1.0, 1.0,
                 0.0, 1.0, 1.0, 0.0,
                 1.0, 1.0, 0.0, 0.0],
            [3, 4],
        ),
        &device,
    ); // M^T: [3 taps, 4 taps]
    let pairs = ci * co;
    // [ci, co, kh, kw] -> rows (pair, kh), columns kw -> (pair, kh, b)
    let t = w
        .swap_dims(0, 1)
        .reshape([pairs * 3, 3])
        .matmul(m_t.clone());
    // -> (pair, b, kh) -> rows (pair, b), columns a
    let t = t
        .reshape([pairs, 3, 4])
        .swap_dims(1, 2)
        .reshape([pairs * 4, 3]);
    let t = t.matmul(m_t).reshape([pairs, 4, 4]); // [pair, b, a]
    t.swap_dims(1, 2).reshape([ci, co, 4, 4])
}

/// A dense layer with a Glorot kernel (`[in, out]`) and an optional zero bias.
pub fn dense<B: Backend>(din: usize, dout: usize, bias: bool, device: &B::Device) -> Linear<B> {
    let mut lin = LinearConfig::new(din, dout).with_bias(bias).init(device);
    lin.weight = glorot_uniform([din, dout], din, dout, device);
    lin.bias = if bias { zeros_bias(dout, device) } else { None };
    lin
}

/// LeakyReLU as `x * k` with `k` = 1 where `x >= 0` and `slope` where `x < 0`, `k` built
/// without a graph. The same values as Burn's `leaky_relu`, but its backward is one multiply,
/// about twice as fast on the CPU backend (`bench-train --profile`); on `Autodiff<Flex>` it is one
/// fused kernel (see [`crate::ops`]).
pub fn leaky_relu<B: Backend, const D: usize>(x: Tensor<B, D>, slope: f64) -> Tensor<B, D> {
    ops::leaky_relu(x, slope)
}

/// BatchNorm over `[N, C, H, W]`. Training mode (an autodiff backend) normalises with the batch's
/// biased statistics and updates the running ones as
/// `running = (1 - momentum) * running + momentum * batch`; eval mode uses the running ones.
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    pub running_mean: RunningState<Tensor<B, 1>>,
    pub running_var: RunningState<Tensor<B, 1>>,
    pub momentum: f64,
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm2d<B> {
    pub fn new(channels: usize, momentum: f64, epsilon: f64, device: &B::Device) -> Self {
        BatchNorm2d {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum,
            epsilon,
        }
    }

    pub fn channels(&self) -> usize {
        self.gamma.dims()[0]
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_act(x, None)
    }

    /// BatchNorm followed by LeakyReLU(`slope`) when given: one fused op on the CPU training
    /// backend ([`ops::batchnorm_train`]), BatchNorm then [`leaky_relu`] elsewhere.
    pub fn forward_act(&self, x: Tensor<B, 4>, slope: Option<f64>) -> Tensor<B, 4> {
        let params = BatchNormParams {
            gamma: self.gamma.val(),
            beta: self.beta.val(),
            epsilon: self.epsilon,
        };
        if training::<B>(&x.device()) {
            return ops::batchnorm_train(x, params, slope, |mean, var| {
                self.update_running(mean, var)
            });
        }
        let [n, c, h, w] = x.dims();
        let x = x.reshape([n, c, h * w]);
        let running = [
            self.running_mean.value().reshape([1, c, 1]),
            self.running_var.value().reshape([1, c, 1]),
        ];
        ops::batchnorm_with(x, [n, c, h, w], running, params, slope)
    }

    /// `running = (1 - momentum) * running + momentum * batch`, from detached `[C]` statistics.
    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>) {
        let m = self.momentum;
        if m == 0.0 {
            return; // a frozen copy (`Discriminator::frozen`); configs refuse momentum 0
        }
        let rm = self.running_mean.value_sync().mul_scalar(1.0 - m) + mean.mul_scalar(m);
        let rv = self.running_var.value_sync().mul_scalar(1.0 - m) + var.mul_scalar(m);
        self.running_mean.update(rm.detach());
        self.running_var.update(rv.detach());
    }
}

/// Whether a forward pass trains (an autodiff backend, outside [`as_at_inference`]):
/// BatchNorm uses batch statistics, spectral norm runs its power iteration and dropout drops
/// only then.
fn training<B: Backend>(device: &B::Device) -> bool {
    B::ad_enabled(device) && !inference_forced()
}

thread_local! {
    static INFERENCE_ON_AUTODIFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether [`as_at_inference`] is in force on this thread.
pub(crate) fn inference_forced() -> bool {
    INFERENCE_ON_AUTODIFF.with(|f| f.get())
}

/// Runs `f` with the networks computing as they do at inference (BatchNorm on its running
/// statistics, no dropout, spectral norm without its power iteration) even on an autodiff
/// backend, so gradients reach the inputs of a fixed network: `facegan project` optimises a
/// latent through G this way. Applies to forward passes built on this thread inside `f`.
pub fn as_at_inference<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INFERENCE_ON_AUTODIFF.with(|f| f.set(self.0));
        }
    }
    let _restore = Restore(INFERENCE_ON_AUTODIFF.with(|f| f.replace(true)));
    f()
}

fn l2_normalize<B: Backend>(v: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = v.clone().square().sum().sqrt().add_scalar(1e-12);
    v / norm.reshape([1, 1])
}

/// Spectral normalization (Miyato et al. 2018): divides a weight by an estimate of its largest
/// singular value. The weight is viewed as a `[dims[0], rest]` matrix (the singular values of a
/// matrix and its transpose are the same, so Burn's `[in, out]` dense layout works too). Each
/// training forward pass runs one power iteration and stores the left vector `u` (a running
/// state, saved in checkpoints); the gradient flows through `sigma = u^T W v` as in the paper.
#[derive(Module, Debug)]
pub struct SpectralNorm<B: Backend> {
    pub u: RunningState<Tensor<B, 1>>,
}

impl<B: Backend> SpectralNorm<B> {
    /// A random unit start vector for a weight with `rows` = `dims[0]`.
    pub fn new(rows: usize, device: &B::Device) -> Self {
        let u = Tensor::<B, 2>::random([rows, 1], Distribution::Normal(0.0, 1.0), device);
        SpectralNorm {
            u: RunningState::new(l2_normalize(u).reshape([rows])),
        }
    }

    /// The current estimate of the largest singular value of `weight` (as a `[1, 1]` tensor that
    /// carries the gradient), advancing the power iteration by one step when training.
    pub fn sigma<const D: usize>(&self, weight: Tensor<B, D>) -> Tensor<B, 2> {
        let dims = weight.dims();
        let rows = dims[0];
        let cols = dims.iter().skip(1).product::<usize>();
        let w = weight.reshape([rows, cols]);
        let plain = w.clone().detach();
        let u = if training::<B>(&plain.device()) {
            let u0 = self.u.value_sync().reshape([rows, 1]);
            let v = l2_normalize(plain.clone().transpose().matmul(u0));
            let u1 = l2_normalize(plain.clone().matmul(v)).detach();
            self.u.update(u1.clone().reshape([rows]));
            u1
        } else {
            self.u.value().reshape([rows, 1])
        };
        let v = l2_normalize(plain.transpose().matmul(u.clone())).detach();
        u.transpose().matmul(w.matmul(v))
    }

    /// `weight / sigma(weight)`.
    pub fn normalize<const D: usize>(&self, weight: Tensor<B, D>) -> Tensor<B, D> {
        let sigma = self.sigma(weight.clone());
        weight / sigma.reshape([1; D])
    }
}

/// The minibatch-stddev feature (Karras et al. 2018): for each group of `group` images, the
/// standard deviation of every feature across the group, averaged to one number, appended as
/// one constant channel. Lets D see a lack of variety. The group size `g` is the largest divisor
/// of the batch that is at most `group`; sample `n` belongs to the group of `n % (N / g)`.
pub fn minibatch_stddev<B: Backend>(x: Tensor<B, 4>, group: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let g = (1..=group.min(n)).rev().find(|g| n % g == 0).unwrap_or(1);
    let m = n / g;
    // Row k of `y` is image k*m + j of every group j, flattened: the group members of a feature
    // are one column. (As 2-D tensors: Burn's CPU backend walks a broadcast over a 5-D
    // [g, m, c, h, w] view element by element, a 2-D one row by row.)
    let y: Tensor<B, 2> = x.clone().reshape([g, m * c * h * w]);
    let centered = y.clone() - y.mean_dim(0);
    let std = (centered.square().mean_dim(0) + 1e-8).sqrt(); // [1, m*c*h*w]
    let per_group: Tensor<B, 2> = std.reshape([m, c * h * w]).mean_dim(1); // [m, 1]
    let feature = per_group
        .reshape([1, m, 1, 1])
        .repeat_dim(0, g)
        .reshape([n, 1, 1, 1])
        .expand([n, 1, h, w]);
    Tensor::cat(vec![x, feature], 1)
}
