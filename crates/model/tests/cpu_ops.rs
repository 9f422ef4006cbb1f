//! The CPU fast path against Burn's own ops on `Autodiff<Flex>`: forward values and the gradients
//! of every input and parameter agree within 1e-4 (relative to the largest magnitude).

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::DropoutConfig;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use facegan_model::config::Padding;
use facegan_model::cpu::ops;
use facegan_model::layers::{conv3x3, BatchNorm2d};

type Ad = Autodiff<Flex>;

fn dev() -> burn::tensor::Device<Ad> {
    Default::default()
}

fn randn<const D: usize>(shape: [usize; D]) -> Tensor<Ad, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

/// Max |a - b| <= 1e-4 * max(max |b|, 1e-6).
fn assert_close<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a = a.into_data().to_vec::<f32>().unwrap();
    let b = b.into_data().to_vec::<f32>().unwrap();
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err <= 1e-4 * scale,
        "{what}: max abs error {err} vs scale {scale}"
    );
}

/// A conv with a random (non-zero) bias.
fn conv(cin: usize, cout: usize, stride: usize) -> Conv2d<Ad> {
    let mut c = conv3x3::<Ad>(cin, cout, stride, Padding::Symmetric, &dev());
    c.bias = Some(Param::from_tensor(randn([cout])));
    c
}

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

/// Output, input gradient, gradients of the 4-d and of the 1-d parameters.
type Outcome<const D: usize, const E: usize> = (
    Tensor<Flex, E>,
    Tensor<Flex, D>,
    Vec<Tensor<Flex, 4>>,
    Vec<Tensor<Flex, 1>>,
);

/// Runs `f` on a fresh tracked copy of `x` and returns (output, d(sum(y * r))/dx, grads of
/// `params`).
fn run<const D: usize, const E: usize>(
    x: &Tensor<Ad, D>,
    r: &Tensor<Ad, E>,
    params: &dyn Fn() -> Vec<Tensor<Ad, 4>>,
    params1: &dyn Fn() -> Vec<Tensor<Ad, 1>>,
    f: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
) -> Outcome<D, E> {
    let x = x.clone().detach().require_grad();
    let y = f(x.clone());
    let grads = (y.clone() * r.clone()).sum().backward();
    let gp = params()
        .iter()
        .map(|p| p.grad(&grads).expect("param grad"))
        .collect();
    let gp1 = params1()
        .iter()
        .map(|p| p.grad(&grads).expect("param grad"))
        .collect();
    (y.inner(), x.grad(&grads).expect("x grad"), gp, gp1)
}

fn compare<const D: usize, const E: usize>(
    name: &str,
    x: Tensor<Ad, D>,
    r: Tensor<Ad, E>,
    params: &dyn Fn() -> Vec<Tensor<Ad, 4>>,
    params1: &dyn Fn() -> Vec<Tensor<Ad, 1>>,
    fast: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
    reference: &dyn Fn(Tensor<Ad, D>) -> Tensor<Ad, E>,
) {
    let (y1, dx1, gp1, gq1) = run(&x, &r, params, params1, fast);
    let (y0, dx0, gp0, gq0) = run(&x, &r, params, params1, reference);
    assert_close(y1, y0, &format!("{name} forward"));
    assert_close(dx1, dx0, &format!("{name} dx"));
    for (i, (a, b)) in gp1.into_iter().zip(gp0).enumerate() {
        assert_close(a, b, &format!("{name} param grad {i}"));
    }
    for (i, (a, b)) in gq1.into_iter().zip(gq0).enumerate() {
        assert_close(a, b, &format!("{name} vector param grad {i}"));
    }
}

#[test]
fn conv2d_matches_burn() {
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
        let c = conv(ci, co, s);
        let x = randn([n, ci, h, w]);
        let [oh, ow] = [(h + 2 - 3) / s + 1, (w + 2 - 3) / s + 1];
        let r = randn([n, co, oh, ow]);
        compare(
            &format!("conv2d {n}x{ci}->{co} {h}x{w} s{s}"),
            x,
            r,
            &|| vec![c.weight.val()],
            &|| vec![c.bias.as_ref().unwrap().val()],
            &|x| ops::conv2d(&c, x),
            &|x| c.forward(x),
        );
    }
}

#[test]
fn conv_transpose2d_matches_burn() {
    Ad::seed(&dev(), 2);
    // (n, cin, cout, h, w, stride, pad, pad_out)
    for (n, ci, co, h, w, s, p, op) in [
        (3, 6, 4, 5, 4, 2, 1, 1),
        (2, 4, 5, 6, 7, 1, 1, 0),
        (2, 3, 2, 4, 5, 2, 0, 0),
        (10, 8, 4, 6, 5, 2, 1, 1),
        (2, 16, 64, 24, 40, 2, 1, 1),
    ] {
        let c = conv_t(ci, co, s, p, op);
        let x = randn([n, ci, h, w]);
        let [oh, ow] = [(h - 1) * s + 3 + op - 2 * p, (w - 1) * s + 3 + op - 2 * p];
        let r = randn([n, co, oh, ow]);
        compare(
            &format!("conv_transpose2d {n}x{ci}->{co} {h}x{w} s{s} p{p} op{op}"),
            x,
            r,
            &|| vec![c.weight.val()],
            &|| vec![c.bias.as_ref().unwrap().val()],
            &|x| ops::conv_transpose2d(&c, x),
            &|x| c.forward(x),
        );
    }
}

#[test]
fn conv_transpose2d_with_leaky_relu_matches_burn() {
    Ad::seed(&dev(), 7);
    for (n, ci, co, h, w, slope) in [(3, 6, 4, 5, 4, 0.01), (10, 8, 5, 6, 5, 0.2)] {
        let c = conv_t(ci, co, 2, 1, 1);
        let x = randn([n, ci, h, w]);
        let r = randn([n, co, 2 * h, 2 * w]);
        compare(
            &format!("conv_transpose2d+leaky {n}x{ci}->{co} {h}x{w} {slope}"),
            x,
            r,
            &|| vec![c.weight.val()],
            &|| vec![c.bias.as_ref().unwrap().val()],
            &|x| ops::conv_transpose2d_act(&c, x, 0, Some(slope)),
            &|x| activation::leaky_relu(c.forward(x), slope),
        );
    }
}

#[test]
fn inference_convs_match_burn() {
    Ad::seed(&dev(), 3);
    let (c, t) = (conv(5, 7, 2), conv_t(5, 7, 2, 1, 1));
    let x = randn([3, 5, 10, 8]).inner();
    let (ci, ti) = (
        burn::module::AutodiffModule::valid(&c),
        burn::module::AutodiffModule::valid(&t),
    );
    assert_close(
        ops::conv2d(&ci, x.clone()),
        ci.forward(x.clone()),
        "conv2d (Flex)",
    );
    assert_close(
        ops::conv_transpose2d(&ti, x.clone()),
        ti.forward(x),
        "conv_t (Flex)",
    );
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

#[test]
fn batchnorm_leaky_matches_burn() {
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
        let r = randn([n, c, h, w]);
        compare(
            &format!("batchnorm {n}x{c} {h}x{w} {slope:?}"),
            x.clone(),
            r,
            &Vec::new,
            &|| vec![bn.gamma.val(), bn.beta.val()],
            &|x| bn.forward_act(x, slope),
            &|x| {
                let y = batchnorm_reference(&bn, x);
                match slope {
                    Some(k) => activation::leaky_relu(y, k),
                    None => y,
                }
            },
        );
        // Running statistics: the same update as Burn's formula.
        let fresh = BatchNorm2d::<Ad>::new(c, 0.01, 1e-3, &dev());
        let _ = fresh.forward_act(x.clone(), slope);
        let x3 = x.inner().reshape([n, c, h * w]);
        let mean = x3.clone().mean_dim(2).mean_dim(0);
        let var = (x3 - mean.clone()).square().mean_dim(2).mean_dim(0);
        let rm = mean.reshape([c]).mul_scalar(0.01).add_scalar(0.0);
        let rv = var.reshape([c]).mul_scalar(0.01).add_scalar(0.99);
        assert_close(fresh.running_mean.value_sync().inner(), rm, "running mean");
        assert_close(fresh.running_var.value_sync().inner(), rv, "running var");
    }
}

#[test]
fn leaky_relu_matches_burn() {
    Ad::seed(&dev(), 5);
    let x = randn([3, 4, 5, 6]);
    let r = randn([3, 4, 5, 6]);
    compare(
        "leaky_relu",
        x,
        r,
        &Vec::new,
        &Vec::new,
        &|x| ops::leaky_relu(x, 0.01),
        &|x| activation::leaky_relu(x, 0.01),
    );
}

#[test]
fn dropout_masks_and_scales_like_burn() {
    let d = DropoutConfig::new(0.1).init();
    let x = randn([8, 16, 12, 10]).add_scalar(5.0); // no zeros in x
    let r = randn([8, 16, 12, 10]);
    Ad::seed(&dev(), 6);
    let (y, dx, _, _) = run(&x, &r, &Vec::new, &Vec::new, &|x| ops::dropout(&d, x));
    Ad::seed(&dev(), 6);
    let (y2, _, _, _) = run(&x, &r, &Vec::new, &Vec::new, &|x| ops::dropout(&d, x));
    let (y, dx, y2) = (
        y.into_data().to_vec::<f32>().unwrap(),
        dx.into_data().to_vec::<f32>().unwrap(),
        y2.into_data().to_vec::<f32>().unwrap(),
    );
    assert_eq!(y, y2, "same seed, same mask");
    let xs = x.inner().into_data().to_vec::<f32>().unwrap();
    let rs = r.inner().into_data().to_vec::<f32>().unwrap();
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

/// The spectral-norm path: a convolution with a weight computed from the parameter (here
/// `0.5 * W`) matches Burn's functional conv, and the gradient reaches the parameter.
#[test]
fn weighted_conv2d_matches_burn() {
    Ad::seed(&dev(), 5);
    for (n, ci, co, h, w, s) in [(3, 5, 4, 11, 9, 2), (2, 4, 6, 8, 6, 1)] {
        let c = conv(ci, co, s);
        let x = randn([n, ci, h, w]);
        let [oh, ow] = [(h + 2 - 3) / s + 1, (w + 2 - 3) / s + 1];
        let r = randn([n, co, oh, ow]);
        compare(
            &format!("weighted conv2d {n}x{ci}->{co} {h}x{w} s{s}"),
            x,
            r,
            &|| vec![c.weight.val()],
            &|| vec![c.bias.as_ref().unwrap().val()],
            &|x| ops::conv2d_weighted(&c, c.weight.val().mul_scalar(0.5), x),
            &|x| {
                burn::tensor::module::conv2d(
                    x,
                    c.weight.val().mul_scalar(0.5),
                    c.bias.as_ref().map(|b| b.val()),
                    burn::tensor::ops::ConvOptions::new([s, s], [1, 1], [1, 1], 1),
                )
            },
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

/// Calls of the fast kernels and of Burn fallbacks that `f` makes.
fn count_paths(f: impl FnOnce()) -> (u64, u64) {
    let (fast, slow) = (
        facegan_model::cpu::fast_path_calls(),
        facegan_model::cpu::fallbacks(),
    );
    f();
    (
        facegan_model::cpu::fast_path_calls() - fast,
        facegan_model::cpu::fallbacks() - slow,
    )
}

#[test]
fn resize_conv_equals_nearest_upsample_then_conv() {
    use facegan_model::layers::UpConv;
    use facegan_model::Upsample;
    Ad::seed(&dev(), 11);
    for (n, ci, co, h, w, slope) in [
        (3, 5, 4, 6, 5, None),
        (2, 8, 3, 3, 4, Some(0.2)),
        (4, 16, 8, 12, 10, Some(0.2)),
    ] {
        let mut up = UpConv::<Ad>::new(Upsample::Resize, Padding::Symmetric, ci, co, &dev());
        let conv = up.resize.as_mut().unwrap();
        conv.bias = Some(Param::from_tensor(randn([co])));
        let c = conv.clone();
        let x = randn([n, ci, h, w]);
        let r = randn([n, co, 2 * h, 2 * w]);
        let (fast, slow) = count_paths(|| {
            compare(
                &format!("resize conv {n}x{ci}->{co} {h}x{w} {slope:?}"),
                x.clone(),
                r.clone(),
                &|| vec![c.weight.val()],
                &|| vec![c.bias.as_ref().unwrap().val()],
                &|x| up.forward_act(x, slope),
                &|x| {
                    let y = c.forward(upsample_nearest2(x));
                    match slope {
                        Some(k) => activation::leaky_relu(y, k),
                        None => y,
                    }
                },
            )
        });
        assert!(
            fast >= 1,
            "the resize conv ran on the fast kernels ({fast} calls)"
        );
        assert_eq!(slow, 0, "no fallback to Burn's ops");
    }
}

#[test]
fn transposed4_upsampling_matches_burn_on_the_fast_path() {
    use facegan_model::layers::UpConv;
    use facegan_model::Upsample;
    Ad::seed(&dev(), 12);
    let mut up = UpConv::<Ad>::new(Upsample::Transposed4, Padding::Symmetric, 6, 5, &dev());
    let t = up.transposed.as_mut().unwrap();
    t.bias = Some(Param::from_tensor(randn([5])));
    let t = t.clone();
    let (fast, slow) = count_paths(|| {
        compare(
            "transposed4",
            randn([3, 6, 5, 4]),
            randn([3, 5, 10, 8]),
            &|| vec![t.weight.val()],
            &|| vec![t.bias.as_ref().unwrap().val()],
            &|x| up.forward_act(x, Some(0.2)),
            &|x| activation::leaky_relu(t.forward(x), 0.2),
        )
    });
    assert!(fast >= 1 && slow == 0, "fast {fast}, fallbacks {slow}");
}

/// Keras' "same" padding of a stride-2 3x3 convolution on even sizes (0 before, 1 after): the
/// fast kernels against Burn's asymmetric convolution, values and gradients, with no fallback.
#[test]
fn keras_padded_conv2d_matches_burn_on_the_fast_path() {
    Ad::seed(&dev(), 13);
    for (n, ci, co, h, w) in [(3, 5, 4, 12, 10), (10, 3, 8, 16, 12), (2, 32, 16, 12, 10)] {
        let mut c = conv3x3::<Ad>(ci, co, 2, Padding::Keras, &dev());
        c.bias = Some(Param::from_tensor(randn([co])));
        let x = randn([n, ci, h, w]);
        let r = randn([n, co, h / 2, w / 2]);
        let (fast, slow) = count_paths(|| {
            compare(
                &format!("keras conv2d {n}x{ci}->{co} {h}x{w}"),
                x.clone(),
                r.clone(),
                &|| vec![c.weight.val()],
                &|| vec![c.bias.as_ref().unwrap().val()],
                &|x| ops::conv2d(&c, x),
                &|x| {
                    burn::tensor::module::conv2d(
                        x,
                        c.weight.val(),
                        c.bias.as_ref().map(|b| b.val()),
                        burn::tensor::ops::PaddedConvOptions::asymmetric(
                            [2, 2],
                            [0, 0],
                            [1, 1],
                            [1, 1],
                            1,
                        ),
                    )
                },
            )
        });
        assert!(fast >= 1, "the Keras-padded conv ran on the fast kernels");
        assert_eq!(slow, 0, "no fallback to Burn's ops");
    }
}

/// Keras' stride-2 3x3 `Conv2DTranspose(padding="same")`: padding 0 and the last row and column
/// cropped, on the fast kernels, against Burn's transposed convolution cropped by a slice.
#[test]
fn keras_padded_transposed3_matches_burn_on_the_fast_path() {
    use facegan_model::layers::UpConv;
    use facegan_model::Upsample;
    Ad::seed(&dev(), 14);
    for (n, ci, co, h, w, slope) in [(3, 6, 4, 6, 5, Some(0.01)), (10, 8, 5, 3, 4, None)] {
        let mut up = UpConv::<Ad>::new(Upsample::Transposed3, Padding::Keras, ci, co, &dev());
        assert_eq!(up.crop_end, 1);
        let t = up.transposed.as_mut().unwrap();
        t.bias = Some(Param::from_tensor(randn([co])));
        let t = t.clone();
        let (fast, slow) = count_paths(|| {
            compare(
                &format!("keras transposed3 {n}x{ci}->{co} {h}x{w} {slope:?}"),
                randn([n, ci, h, w]),
                randn([n, co, 2 * h, 2 * w]),
                &|| vec![t.weight.val()],
                &|| vec![t.bias.as_ref().unwrap().val()],
                &|x| up.forward_act(x, slope),
                &|x| {
                    let y = t.forward(x).slice([0..n, 0..co, 0..2 * h, 0..2 * w]);
                    match slope {
                        Some(k) => activation::leaky_relu(y, k),
                        None => y,
                    }
                },
            )
        });
        assert!(
            fast >= 1,
            "the Keras-padded transposed conv ran on the fast kernels"
        );
        assert_eq!(slow, 0, "no fallback to Burn's ops");
    }
}
