//! The CPU fast path against Burn's own ops on `Autodiff<Flex>` (and `Flex` for inference):
//! forward values and the gradients of every input and parameter agree within 1e-4 (relative to
//! the largest magnitude; LeakyReLU exactly). Every comparison also checks, with the per-thread
//! counters of `facegan_model::ops`, that the op under test ran the fast kernels with no
//! fallback and that the reference did not, so it never compares Burn with Burn (it fails with
//! `FACEGAN_BURN_OPS=1`, or if a Burn upgrade stops the backend being recognised).

mod common;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::DropoutConfig;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, PaddedConvOptions};
use burn::tensor::{Distribution, Tensor};
use facegan_model::config::Padding;
use facegan_model::layers::{conv3x3, BatchNorm2d, UpConv};
use facegan_model::{ops, Upsample};

type Ad = Autodiff<Flex>;

fn dev() -> burn::tensor::Device<Ad> {
    Default::default()
}

fn randn<const D: usize>(shape: [usize; D]) -> Tensor<Ad, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

/// Max |a - b| <= tol * max(max |b|, 1e-6).
fn assert_close<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a = a.into_data().to_vec::<f32>().unwrap();
    let b = b.into_data().to_vec::<f32>().unwrap();
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err <= tol * scale,
        "{what}: max abs error {err} vs scale {scale}"
    );
}

/// Op calls on this thread that ran the fast kernels, and that a guard sent to Burn's ops.
#[derive(Clone, Copy, Debug)]
struct PathCounts {
    fast: u64,
    fallbacks: u64,
}

/// Runs `f` and counts the op calls it makes on this thread (the counters are per thread, and
/// the test harness runs each test on one thread).
fn count_paths<T>(f: impl FnOnce() -> T) -> (T, PathCounts) {
    let (fast, fallbacks) = (ops::fast_path_calls(), ops::fallbacks());
    let out = f();
    let counts = PathCounts {
        fast: ops::fast_path_calls() - fast,
        fallbacks: ops::fallbacks() - fallbacks,
    };
    (out, counts)
}

/// Fails loudly unless the calls counted in `counts` all ran the fast kernels.
fn assert_fast_path(what: &str, counts: PathCounts) {
    assert!(
        counts.fast >= 1 && counts.fallbacks == 0,
        "{what}: the fast path did not run ({counts:?}; fast_path_active: Autodiff<Flex> {}, \
         Flex {}; FACEGAN_BURN_OPS={:?}), so this test would compare Burn's ops with themselves",
        ops::fast_path_active::<Ad>(),
        ops::fast_path_active::<Flex>(),
        std::env::var("FACEGAN_BURN_OPS").ok(),
    );
}

/// The parameters whose gradients are compared too: weights (4-d) and vectors (biases, BatchNorm
/// scale and shift).
#[derive(Default)]
struct Params<'a> {
    weights: Vec<&'a Param<Tensor<Ad, 4>>>,
    vectors: Vec<&'a Param<Tensor<Ad, 1>>>,
}

impl<'a> Params<'a> {
    /// A convolution's weight and bias.
    fn conv(weight: &'a Param<Tensor<Ad, 4>>, bias: &'a Option<Param<Tensor<Ad, 1>>>) -> Self {
        Params {
            weights: vec![weight],
            vectors: bias.iter().collect(),
        }
    }
}

/// Output, input gradient, gradients of the weights and of the vector parameters.
type Outcome<const D: usize, const E: usize> = (
    Tensor<Flex, E>,
    Tensor<Flex, D>,
    Vec<Tensor<Flex, 4>>,
    Vec<Tensor<Flex, 1>>,
);

/// Runs `f` on a fresh tracked copy of `x`; returns its output and the gradients of `sum(y * r)`
/// for the input and `params`. `r` is drawn at random in the output's shape when it is `None`.
fn run<const D: usize, const E: usize>(
    x: &Tensor<Ad, D>,
    r: &mut Option<Tensor<Ad, E>>,
    params: &Params,
    f: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
) -> Outcome<D, E> {
    let x = x.clone().detach().require_grad();
    let y = f(x.clone());
    let r = r.get_or_insert_with(|| randn(y.dims())).clone();
    let grads = (y.clone() * r).sum().backward();
    let gw = params.weights.iter();
    let gw = gw.map(|p| p.val().grad(&grads).expect("weight grad"));
    let gv = params.vectors.iter();
    let gv = gv.map(|p| p.val().grad(&grads).expect("vector grad"));
    let dx = x.grad(&grads).expect("x grad");
    (y.inner(), dx, gw.collect(), gv.collect())
}

/// [`compare_within`] at the tolerance of float reassociation, 1e-4.
fn compare<const D: usize, const E: usize>(
    name: &str,
    x: Tensor<Ad, D>,
    params: Params,
    fast: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
    reference: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
) {
    compare_within(1e-4, name, x, params, fast, reference);
}

/// `fast` (which must run on the fast kernels, with no fallback) against `reference` (which must
/// run on Burn's ops) on input `x`: outputs and every gradient agree within `tol`.
fn compare_within<const D: usize, const E: usize>(
    tol: f32,
    name: &str,
    x: Tensor<Ad, D>,
    params: Params,
    fast: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
    reference: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
) {
    let mut r = None;
    let ((y1, dx1, gw1, gv1), counts) = count_paths(|| run(&x, &mut r, &params, fast));
    assert_fast_path(name, counts);
    let ((y0, dx0, gw0, gv0), counts) = count_paths(|| run(&x, &mut r, &params, reference));
    assert_eq!(
        counts.fast, 0,
        "{name}: the reference ran on the fast kernels"
    );
    assert_close(y1, y0, tol, &format!("{name} forward"));
    assert_close(dx1, dx0, tol, &format!("{name} dx"));
    for (i, (a, b)) in gw1.into_iter().zip(gw0).enumerate() {
        assert_close(a, b, tol, &format!("{name} weight grad {i}"));
    }
    for (i, (a, b)) in gv1.into_iter().zip(gv0).enumerate() {
        assert_close(a, b, tol, &format!("{name} vector param grad {i}"));
    }
}

/// A 3x3 conv with a random (non-zero) bias.
fn conv(cin: usize, cout: usize, stride: usize, padding: Padding) -> Conv2d<Ad> {
    let mut c = conv3x3::<Ad>(cin, cout, stride, padding, &dev());
    c.bias = Some(Param::from_tensor(randn([cout])));
    c
}

/// A 3x3 transposed conv with a random (non-zero) bias.
fn conv_t(
    cin: usize,
    cout: usize,
    stride: usize,
    pad: usize,
    pad_out: usize,
) -> ConvTranspose2d<Ad> {
    let mut c = ConvTranspose2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding([pad, pad])
        .with_padding_out([pad_out, pad_out])
        .init::<Ad>(&dev());
    c.bias = Some(Param::from_tensor(randn([cout])));
    c
}

/// G's upsampling layer of `mode` with a random (non-zero) bias.
fn up_conv(mode: Upsample, padding: Padding, cin: usize, cout: usize) -> UpConv<Ad> {
    let mut up = UpConv::<Ad>::new(mode, padding, cin, cout, &dev());
    let bias = match (&mut up.transposed, &mut up.resize) {
        (Some(t), _) => &mut t.bias,
        (None, Some(c)) => &mut c.bias,
        (None, None) => unreachable!("an UpConv has one of its two layers"),
    };
    *bias = Some(Param::from_tensor(randn([cout])));
    up
}

/// The weight and bias of an upsampling layer's convolution.
fn up_conv_params(up: &UpConv<Ad>) -> Params<'_> {
    match (&up.transposed, &up.resize) {
        (Some(t), _) => Params::conv(&t.weight, &t.bias),
        (None, Some(c)) => Params::conv(&c.weight, &c.bias),
        (None, None) => unreachable!("an UpConv has one of its two layers"),
    }
}

/// `y`, then Burn's LeakyReLU(`slope`) when given.
fn burn_leaky_relu_if(y: Tensor<Ad, 4>, slope: Option<f64>) -> Tensor<Ad, 4> {
    match slope {
        Some(k) => activation::leaky_relu(y, k),
        None => y,
    }
}

#[test]
fn conv2d_matches_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 1);
    // (n, cin, cout, h, w, stride): odd sizes, the seed's strides, more images than grad chunks,
    // and a case split into several im2col tiles.
    for (n, ci, co, h, w, s) in [
        (3, 5, 4, 11, 9, 2),
        (2, 4, 3, 7, 6, 1),
        (10, 3, 8, 16, 12, 2),
        (2, 64, 3, 24, 40, 1),
        (3, 16, 3, 12, 10, 1), // taps first (fewer outputs than inputs), like G's to_rgb
        (3, 16, 5, 11, 9, 2),  // taps first, stride 2, odd sizes
        (2, 32, 64, 12, 10, 2),
    ] {
        let c = conv(ci, co, s, Padding::Symmetric);
        compare(
            &format!("conv2d {n}x{ci}->{co} {h}x{w} s{s}"),
            randn([n, ci, h, w]),
            Params::conv(&c.weight, &c.bias),
            &|x| ops::conv2d(&c, x),
            &|x| c.forward(x),
        );
    }
}

/// The spectral-norm path: a convolution with a weight computed from the parameter (here
/// `0.5 * W`) matches Burn's functional conv, and the gradient reaches the parameter.
#[test]
fn weighted_conv2d_matches_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 5);
    for (n, ci, co, h, w, s) in [(3, 5, 4, 11, 9, 2), (2, 4, 6, 8, 6, 1)] {
        let c = conv(ci, co, s, Padding::Symmetric);
        let bias = || c.bias.as_ref().map(|b| b.val());
        compare(
            &format!("weighted conv2d {n}x{ci}->{co} {h}x{w} s{s}"),
            randn([n, ci, h, w]),
            Params::conv(&c.weight, &c.bias),
            &|x| ops::conv2d_weighted(&c, c.weight.val().mul_scalar(0.5), x),
            &|x| {
                let options = ConvOptions::new([s, s], [1, 1], [1, 1], 1);
                burn::tensor::module::conv2d(x, c.weight.val().mul_scalar(0.5), bias(), options)
            },
        );
    }
}

/// Keras' "same" padding of a stride-2 3x3 convolution on even sizes (0 before, 1 after): the
/// fast kernels against Burn's asymmetric convolution.
#[test]
fn keras_padded_conv2d_matches_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 13);
    for (n, ci, co, h, w) in [(3, 5, 4, 12, 10), (10, 3, 8, 16, 12), (2, 32, 16, 12, 10)] {
        let c = conv(ci, co, 2, Padding::Keras);
        let bias = || c.bias.as_ref().map(|b| b.val());
        compare(
            &format!("keras conv2d {n}x{ci}->{co} {h}x{w}"),
            randn([n, ci, h, w]),
            Params::conv(&c.weight, &c.bias),
            &|x| ops::conv2d(&c, x),
            &|x| {
                let options = PaddedConvOptions::asymmetric([2, 2], [0, 0], [1, 1], [1, 1], 1);
                burn::tensor::module::conv2d(x, c.weight.val(), bias(), options)
            },
        );
    }
}

/// Transposed convolutions, without and with the fused LeakyReLU (`slope`).
#[test]
fn conv_transpose2d_matches_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 2);
    // (n, cin, cout, h, w, stride, pad, pad_out, slope)
    for (n, ci, co, h, w, s, p, op, slope) in [
        (3, 6, 4, 5, 4, 2, 1, 1, None),
        (2, 4, 5, 6, 7, 1, 1, 0, None),
        (2, 3, 2, 4, 5, 2, 0, 0, None),
        (10, 8, 4, 6, 5, 2, 1, 1, None),
        (2, 16, 64, 24, 40, 2, 1, 1, None),
        (3, 6, 4, 5, 4, 2, 1, 1, Some(0.01)),
        (10, 8, 5, 6, 5, 2, 1, 1, Some(0.2)),
    ] {
        let c = conv_t(ci, co, s, p, op);
        compare(
            &format!("conv_transpose2d {n}x{ci}->{co} {h}x{w} s{s} p{p} op{op} {slope:?}"),
            randn([n, ci, h, w]),
            Params::conv(&c.weight, &c.bias),
            &|x| ops::conv_transpose2d_act(&c, x, 0, slope),
            &|x| burn_leaky_relu_if(c.forward(x), slope),
        );
    }
}

/// Nearest-neighbour x2 upsampling with Burn's ops (the reference for the resize-convolution).
fn upsample_nearest2(x: Tensor<Ad, 4>) -> Tensor<Ad, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

/// G's upsampling layers (`UpConv`, all on the transposed-convolution kernels) against Burn's
/// ops: the resize-convolution equals nearest-neighbour x2 upsampling then its 3x3 convolution;
/// the 4x4 transposed convolution is Burn's; Keras' stride-2 3x3 `Conv2DTranspose(padding="same")`
/// is Burn's with padding 0 and its last row and column cropped (by a slice).
#[test]
fn upsampling_layers_match_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 11);
    let (resize, t4, t3) = (
        Upsample::Resize,
        Upsample::Transposed4,
        Upsample::Transposed3,
    );
    let (symmetric, keras) = (Padding::Symmetric, Padding::Keras);
    // (mode, padding, [n, cin, cout, h, w], slope)
    for (mode, padding, [n, ci, co, h, w], slope) in [
        (resize, symmetric, [3, 5, 4, 6, 5], None),
        (resize, symmetric, [2, 8, 3, 3, 4], Some(0.2)),
        (resize, keras, [4, 16, 8, 12, 10], Some(0.2)),
        (t4, symmetric, [3, 6, 5, 5, 4], Some(0.2)),
        (t3, keras, [3, 6, 4, 6, 5], Some(0.01)),
        (t3, keras, [10, 8, 5, 3, 4], None),
    ] {
        let up = up_conv(mode, padding, ci, co);
        let cropped = mode == t3 && padding == keras;
        assert_eq!(up.crop_end, usize::from(cropped));
        let reference = |x: Tensor<Ad, 4>| {
            let y = match (&up.transposed, &up.resize) {
                (Some(t), _) => t.forward(x).slice([0..n, 0..co, 0..2 * h, 0..2 * w]),
                (None, Some(c)) => c.forward(upsample_nearest2(x)),
                (None, None) => unreachable!("an UpConv has one of its two layers"),
            };
            burn_leaky_relu_if(y, slope)
        };
        compare(
            &format!("{mode:?} {padding:?} {n}x{ci}->{co} {h}x{w} {slope:?}"),
            randn([n, ci, h, w]),
            up_conv_params(&up),
            &|x| up.forward_act(x, slope),
            &reference,
        );
    }
}

/// The convolutions' inference kernels (on `Flex`, no autodiff) against Burn's.
#[test]
fn inference_convs_match_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 3);
    let (c, t) = (conv(5, 7, 2, Padding::Symmetric), conv_t(5, 7, 2, 1, 1));
    let (c, t) = (c.valid(), t.valid());
    let x = randn([3, 5, 10, 8]).inner();
    let (y, counts) = count_paths(|| ops::conv2d(&c, x.clone()));
    assert_fast_path("conv2d (Flex)", counts);
    assert_close(y, c.forward(x.clone()), 1e-4, "conv2d (Flex)");
    let (y, counts) = count_paths(|| ops::conv_transpose2d(&t, x.clone()));
    assert_fast_path("conv_transpose2d (Flex)", counts);
    assert_close(y, t.forward(x), 1e-4, "conv_transpose2d (Flex)");
}

/// The model's BatchNorm formula on Burn ops (its generic path).
fn batchnorm_reference(bn: &BatchNorm2d<Ad>, x: Tensor<Ad, 4>) -> Tensor<Ad, 4> {
    let [n, c, h, w] = x.dims();
    let x = x.reshape([n, c, h * w]);
    let mean = x.clone().mean_dim(2).mean_dim(0);
    let var = (x.clone() - mean.clone()).square().mean_dim(2).mean_dim(0);
    let scale = bn.gamma.val().reshape([1, c, 1]) / (var + bn.epsilon).sqrt();
    let y = (x - mean) * scale + bn.beta.val().reshape([1, c, 1]);
    y.reshape([n, c, h, w])
}

/// Training BatchNorm with and without the fused LeakyReLU: values, gradients of the input,
/// scale and shift, and the running-statistics update.
#[test]
fn batchnorm_leaky_matches_burn() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 4);
    for (n, c, h, w, slope) in [
        (4, 3, 5, 6, Some(0.01)),
        (10, 5, 4, 3, None),
        (3, 8, 7, 5, Some(0.2)),
        (8, 256, 12, 10, Some(0.01)), // the seed G's BatchNorm shapes
        (8, 128, 48, 40, Some(0.01)),
    ] {
        let mut bn = BatchNorm2d::<Ad>::new(c, 0.01, 1e-3, &dev());
        bn.gamma = Param::from_tensor(randn([c]).mul_scalar(0.5).add_scalar(1.0));
        bn.beta = Param::from_tensor(randn([c]));
        // A channel offset, so the mean matters.
        let x = randn([n, c, h, w]).add_scalar(3.0);
        let name = format!("batchnorm {n}x{c} {h}x{w} {slope:?}");
        compare(
            &name,
            x.clone(),
            Params {
                weights: vec![],
                vectors: vec![&bn.gamma, &bn.beta],
            },
            &|x| bn.forward_act(x, slope),
            &|x| burn_leaky_relu_if(batchnorm_reference(&bn, x), slope),
        );
        // Running statistics: the same update as Burn's formula.
        let fresh = BatchNorm2d::<Ad>::new(c, 0.01, 1e-3, &dev());
        let (_, counts) = count_paths(|| fresh.forward_act(x.clone(), slope));
        assert_fast_path(&format!("{name} running stats"), counts);
        let x3 = x.inner().reshape([n, c, h * w]);
        let mean = x3.clone().mean_dim(2).mean_dim(0);
        let var = (x3 - mean.clone()).square().mean_dim(2).mean_dim(0);
        let rm = mean.reshape([c]).mul_scalar(0.01).add_scalar(0.0);
        let rv = var.reshape([c]).mul_scalar(0.01).add_scalar(0.99);
        let running_mean = fresh.running_mean.value_sync().inner();
        assert_close(running_mean, rm, 1e-4, "running mean");
        let running_var = fresh.running_var.value_sync().inner();
        assert_close(running_var, rv, 1e-4, "running var");
    }
}

/// The model's LeakyReLU (`layers::leaky_relu`, one kernel on the CPU) gives Burn's values and
/// gradients exactly.
#[test]
fn leaky_relu_matches_burn_exactly() {
    let _turn = common::rng_turn();
    Ad::seed(&dev(), 5);
    for slope in [0.01, 0.2] {
        compare_within(
            0.0,
            &format!("leaky_relu {slope}"),
            randn([3, 4, 5, 6]),
            Params::default(),
            &|x| facegan_model::layers::leaky_relu(x, slope),
            &|x| activation::leaky_relu(x, slope),
        );
    }
}

/// The fast dropout keeps about `1 - p` of the values, scaled by `1 / (1 - p)` like Burn's, with
/// the same mask for the same seed and the gradient masked and scaled the same way.
#[test]
fn dropout_masks_and_scales_like_burn() {
    let _turn = common::rng_turn();
    let d = DropoutConfig::new(0.1).init();
    let x = randn([8, 16, 12, 10]).add_scalar(5.0); // no zeros in x
    let no_params = Params::default();
    let mut r = None;
    Ad::seed(&dev(), 6);
    let ((y, dx, _, _), counts) =
        count_paths(|| run(&x, &mut r, &no_params, &|x| ops::dropout(&d, x)));
    assert_fast_path("dropout", counts);
    Ad::seed(&dev(), 6);
    let (y2, _, _, _) = run(&x, &mut r, &no_params, &|x| ops::dropout(&d, x));
    let (y, dx, y2) = (
        y.into_data().to_vec::<f32>().unwrap(),
        dx.into_data().to_vec::<f32>().unwrap(),
        y2.into_data().to_vec::<f32>().unwrap(),
    );
    assert_eq!(y, y2, "same seed, same mask");
    let xs = x.inner().into_data().to_vec::<f32>().unwrap();
    let rs = r.unwrap().inner().into_data().to_vec::<f32>().unwrap();
    let scale = (1.0 / 0.9f64) as f32;
    let mut kept = 0;
    for i in 0..xs.len() {
        if y[i] == 0.0 {
            assert_eq!(dx[i], 0.0);
        } else {
            kept += 1;
            assert_eq!(y[i], xs[i] * scale);
            assert_eq!(dx[i], rs[i] * scale);
        }
    }
    let frac = kept as f64 / xs.len() as f64;
    assert!((frac - 0.9).abs() < 0.02, "kept {frac}");
}
