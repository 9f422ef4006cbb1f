//! The generator: Linear (no bias) -> LeakyReLU -> reshape to C0 x H0 x W0, then x2 upsampling
//! layers ([`UpConv`]: 3x3 or 4x4 transposed convolutions, or resize-convolutions; optional
//! BatchNorm, LeakyReLU each, plus `block_convs` stride-1 3x3 convolutions per resolution step,
//! residual when `residual` is set), then a 3x3 conv to RGB and a sigmoid. A progressive model
//! ([`crate::grow`]) also has a 3x3 RGB conv after every step but the last, and
//! [`Generator::forward_at`] runs its first steps only, fading the newest in. A skip generator
//! (`g_skip`) has the same RGB layers and sums them all ([`Generator::forward`]). With `g_sle`,
//! each step's output from the third on is gated by the feature map three steps coarser
//! ([`Excitation`], FastGAN's skip-layer excitation).
//! For the seed preset: 64 -> 64x6x5 -> 256 -> 128 -> 128 -> 64 -> 3 at 96x80.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::activation::silu;
use burn::tensor::module::{adaptive_avg_pool2d, interpolate};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};

use crate::grow::Level;
use crate::layers::{conv3x3, dense, leaky_relu, BatchNorm2d, UpConv};
use crate::ops;
use crate::ModelConfig;

/// A stride-1 3x3 convolution, optional BatchNorm, LeakyReLU (the extra depth of a G block).
#[derive(Module, Debug)]
pub struct GeneratorRefine<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Option<BatchNorm2d<B>>,
}

/// One G stage: x2 upsampling layer (see [`UpConv`]), optional BatchNorm, LeakyReLU, then the
/// stage's extra convolutions (residual when the config says so).
#[derive(Module, Debug)]
pub struct GeneratorBlock<B: Backend> {
    pub conv: UpConv<B>,
    pub norm: Option<BatchNorm2d<B>>,
    pub refine: Vec<GeneratorRefine<B>>,
}

/// How many resolution steps an [`Excitation`] spans: output `i` (the bottom feature map is
/// output 0, `blocks[j]`'s output `j + 1`) gates output `i + 3`, 8x finer.
pub const EXCITATION_SPAN: usize = 3;

/// The side of the grid a coarse feature map is average-pooled to before its gates are computed
/// (FastGAN's 4x4).
pub const EXCITATION_POOL: usize = 4;

/// FastGAN's skip-layer excitation (Liu et al. 2021): gates for a fine feature map's channels
/// from a coarse one. The coarse map is average-pooled to 4x4 (PyTorch's adaptive pooling), then
/// `squeeze` (dense, no bias: FastGAN's 4x4 valid convolution), Swish, `excite` (dense, no bias:
/// its 1x1 convolution) and a sigmoid give one gate in (0, 1) per fine channel.
#[derive(Module, Debug)]
pub struct Excitation<B: Backend> {
    /// `[coarse channels x 16, fine channels]`.
    pub squeeze: Linear<B>,
    /// `[fine channels, fine channels]`.
    pub excite: Linear<B>,
}

impl<B: Backend> Excitation<B> {
    pub fn new(coarse: usize, fine: usize, device: &B::Device) -> Self {
        let pooled = coarse * EXCITATION_POOL * EXCITATION_POOL;
        Excitation {
            squeeze: dense(pooled, fine, false, device),
            excite: dense(fine, fine, false, device),
        }
    }

    /// `fine * gates(coarse)`, the gates broadcast over the fine map's height and width.
    pub fn forward(&self, coarse: Tensor<B, 4>, fine: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, _, _] = fine.dims();
        let pooled = adaptive_avg_pool2d(coarse, [EXCITATION_POOL, EXCITATION_POOL]);
        let pooled: Tensor<B, 2> = pooled.flatten(1, 3);
        let gates = self.excite.forward(silu(self.squeeze.forward(pooled)));
        fine * sigmoid(gates).reshape([n, c, 1, 1])
    }
}

#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    pub project: Linear<B>,
    pub blocks: Vec<GeneratorBlock<B>>,
    pub to_rgb: Conv2d<B>,
    pub start: [usize; 3],
    pub slope: f64,
    pub residual: bool,
    /// Progressive growing's RGB outputs: `to_rgb_steps[i]` after step `i`, for every step but
    /// the last (whose output is `to_rgb`); empty unless the model is progressive or skips.
    pub to_rgb_steps: Vec<Conv2d<B>>,
    /// Output skips (`g_skip`): the image is the sigmoid of every step's RGB output summed,
    /// each sum upsampled x2 before the next step's is added. A constant from the config (an
    /// empty record: checkpoints written before it existed load unchanged).
    pub skip: bool,
    /// Skip-layer excitations (`g_sle`): counting the bottom map as output 0 and `blocks[j]`'s
    /// as output `j + 1`, `excitations[i]` gates output `i + 3` (that of `blocks[i + 2]`) with
    /// output `i`; empty unless the config sets `g_sle`.
    pub excitations: Vec<Excitation<B>>,
}

fn norm_and_act<B: Backend>(
    x: Tensor<B, 4>,
    norm: &Option<BatchNorm2d<B>>,
    slope: f64,
) -> Tensor<B, 4> {
    match norm {
        Some(norm) => norm.forward_act(x, Some(slope)),
        None => leaky_relu(x, slope),
    }
}

impl<B: Backend> Generator<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let (h0, w0) = cfg.bottom_size();
        let c0 = cfg.g_start_channels;
        let mut cin = c0;
        let bn_layer = |bn: bool, c: usize| {
            bn.then(|| BatchNorm2d::new(c, cfg.bn_momentum, cfg.bn_epsilon, device))
        };
        let blocks = cfg
            .g_channels
            .iter()
            .zip(&cfg.g_batchnorm)
            .map(|(&cout, &bn)| {
                let block = GeneratorBlock {
                    conv: UpConv::new(cfg.g_upsample, cfg.padding, cin, cout, device),
                    norm: bn_layer(bn, cout),
                    refine: (0..cfg.block_convs)
                        .map(|_| GeneratorRefine {
                            conv: conv3x3(cout, cout, 1, cfg.padding, device),
                            norm: bn_layer(bn, cout),
                        })
                        .collect(),
                };
                cin = cout;
                block
            })
            .collect();
        let project = dense(cfg.latent, c0 * h0 * w0, false, device);
        let to_rgb = conv3x3(cin, 3, 1, cfg.padding, device);
        // Drawn last, so a progressive model's other layers start as the plain model's do.
        let steps = cfg.g_channels.len();
        let to_rgb_steps = match cfg.progressive || cfg.g_skip {
            true => cfg.g_channels[..steps - 1]
                .iter()
                .map(|&c| conv3x3(c, 3, 1, cfg.padding, device))
                .collect(),
            false => Vec::new(),
        };
        // Drawn after everything else too, so the rest starts as the plain model's.
        let widths: Vec<usize> = std::iter::once(c0)
            .chain(cfg.g_channels.iter().copied())
            .collect();
        let excitations = match cfg.g_sle {
            true => widths
                .iter()
                .zip(&widths[EXCITATION_SPAN..])
                .map(|(&coarse, &fine)| Excitation::new(coarse, fine, device))
                .collect(),
            false => Vec::new(),
        };
        Generator {
            project,
            blocks,
            to_rgb,
            start: [c0, h0, w0],
            slope: cfg.leaky_slope,
            residual: cfg.residual,
            to_rgb_steps,
            skip: cfg.g_skip,
            excitations,
        }
    }

    /// Noise `[N, latent]` -> images in [0, 1], `[N, 3, H, W]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        self.forward_at(z, self.full_level())
    }

    /// The whole network at the full size.
    pub fn full_level(&self) -> Level {
        Level {
            steps: self.blocks.len(),
            alpha: 1.0,
        }
    }

    /// Noise -> images in [0, 1] at `level`'s size: the first `level.steps` resolution steps,
    /// then that step's RGB layer; while the step fades in, blended with the previous step's
    /// image upsampled x2 (nearest), so at `alpha` 0 the output is exactly the previous
    /// level's, upsampled. `level` must suit the network ([`Level::validate`]).
    pub fn forward_at(&self, z: Tensor<B, 2>, level: Level) -> Tensor<B, 4> {
        if self.skip {
            assert_eq!(
                level,
                self.full_level(),
                "a skip generator runs at its full size"
            );
            return self.forward_skip(z);
        }
        let k = level.steps;
        assert!(
            (1..=self.blocks.len()).contains(&k) && (k == self.blocks.len() || self.grows()),
            "level {level:?} does not suit this generator"
        );
        let mut outputs = vec![self.bottom(z)];
        for i in 0..k - 1 {
            let x = self.step(i, &outputs);
            outputs.push(x);
        }
        let x = self.step(k - 1, &outputs);
        let previous = outputs.pop().expect("the bottom map at least");
        let image = sigmoid(ops::conv2d(self.rgb_layer(k), x));
        if !level.fading() {
            return image;
        }
        let a = f64::from(level.alpha);
        let upsampled = upsample2(sigmoid(ops::conv2d(self.rgb_layer(k - 1), previous)));
        image.mul_scalar(a) + upsampled.mul_scalar(1.0 - a)
    }

    /// The skip generator: after each step its RGB layer's output is added to the running RGB
    /// sum upsampled x2 (bilinear, half-pixel centres); the image is the sigmoid of the total.
    fn forward_skip(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        let mut outputs = vec![self.bottom(z)];
        let mut rgb: Option<Tensor<B, 4>> = None;
        for i in 0..self.blocks.len() {
            let x = self.step(i, &outputs);
            outputs.push(x.clone());
            let step_rgb = ops::conv2d(self.rgb_layer(i + 1), x.clone());
            rgb = Some(match rgb {
                Some(sum) => upsample2_bilinear(sum) + step_rgb,
                None => step_rgb,
            });
        }
        sigmoid(rgb.expect("a generator has at least one step"))
    }

    /// Step `i` (0-based) on the last of `outputs` (the bottom map, then each step's output so
    /// far), its output gated by the output `EXCITATION_SPAN` steps back when G has excitations.
    fn step(&self, i: usize, outputs: &[Tensor<B, 4>]) -> Tensor<B, 4> {
        let x = outputs.last().expect("the bottom map at least").clone();
        let x = self.block_forward(&self.blocks[i], x);
        match (i + 1).checked_sub(EXCITATION_SPAN) {
            Some(source) if !self.excitations.is_empty() => {
                self.excitations[source].forward(outputs[source].clone(), x)
            }
            _ => x,
        }
    }

    /// The dense layer, LeakyReLU and reshape: the first feature map `[N, C0, H0, W0]`.
    fn bottom(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        let n = z.dims()[0];
        let [c0, h0, w0] = self.start;
        leaky_relu(self.project.forward(z), self.slope).reshape([n, c0, h0, w0])
    }

    /// Whether the network has progressive growing's RGB layers.
    pub fn grows(&self) -> bool {
        !self.skip && !self.to_rgb_steps.is_empty()
    }

    /// The RGB layer after step `k` (1-based): `to_rgb` after the last.
    fn rgb_layer(&self, k: usize) -> &Conv2d<B> {
        match k == self.blocks.len() {
            true => &self.to_rgb,
            false => &self.to_rgb_steps[k - 1],
        }
    }

    /// One resolution step: upsampling layer, norm, LeakyReLU, then the extra convolutions.
    fn block_forward(&self, block: &GeneratorBlock<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = match &block.norm {
            Some(norm) => norm.forward_act(block.conv.forward_act(x, None), Some(self.slope)),
            None => block.conv.forward_act(x, Some(self.slope)),
        };
        for refine in &block.refine {
            let y = norm_and_act(
                ops::conv2d(&refine.conv, x.clone()),
                &refine.norm,
                self.slope,
            );
            x = if self.residual { x + y } else { y };
        }
        x
    }
}

/// `[N, C, H, W]` -> `[N, C, 2H, 2W]`, each pixel repeated in a 2x2 block (nearest neighbour).
pub fn upsample2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let x: Tensor<B, 6> = x.reshape([n, c, h, 1, w, 1]);
    x.expand([n, c, h, 2, w, 2]).reshape([n, c, 2 * h, 2 * w])
}

/// `[N, C, H, W]` -> `[N, C, 2H, 2W]` by bilinear interpolation with half-pixel centres
/// (PyTorch's `F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)`).
pub fn upsample2_bilinear<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let options = InterpolateOptions {
        mode: InterpolateMode::Bilinear,
        align_corners: false,
    };
    interpolate(x, [2 * h, 2 * w], options)
}

/// Seeded standard-normal latents `[n, latent]`, row-major (reseeds the backend RNG with `seed`).
/// The trainer's quality probe and `facegan eval` draw their latents with this, so the same seed
/// scores the same faces.
pub fn seeded_latents<B: Backend>(
    n: usize,
    latent: usize,
    seed: u64,
    device: &B::Device,
) -> Vec<f32> {
    B::seed(device, seed);
    Tensor::<B, 2>::random([n, latent], Distribution::Normal(0.0, 1.0), device)
        .into_data()
        .to_vec::<f32>()
        .expect("f32 latents")
}

/// Runs `f` on `data`, rows of `per_row` floats, in batches of at most `batch` rows (each batch
/// uploaded with the shape `shape(rows)`), and concatenates the outputs.
pub fn in_batches<B: Backend, const D: usize>(
    data: &[f32],
    per_row: usize,
    batch: usize,
    shape: impl Fn(usize) -> [usize; D],
    device: &B::Device,
    f: impl Fn(Tensor<B, D>) -> Vec<f32>,
) -> Vec<f32> {
    let n = data.len() / per_row;
    let batch = batch.max(1);
    let mut out = Vec::new();
    for start in (0..n).step_by(batch) {
        let m = batch.min(n - start);
        let rows = data[start * per_row..(start + m) * per_row].to_vec();
        out.extend(f(Tensor::from_data(
            TensorData::new(rows, shape(m)),
            device,
        )));
    }
    out
}

/// Runs `g` on row-major latents `z` in batches of `batch`; returns `[n, 3, H, W]` floats in
/// [0, 1]. Use an inference backend (or `g.valid()`) so BatchNorm uses its running statistics.
pub fn generate_batched<B: Backend>(
    g: &Generator<B>,
    z: &[f32],
    latent: usize,
    batch: usize,
    device: &B::Device,
) -> Vec<f32> {
    generate_batched_at(g, z, latent, batch, g.full_level(), device)
}

/// [`generate_batched`] at `level` (progressive growing): images at that level's size.
pub fn generate_batched_at<B: Backend>(
    g: &Generator<B>,
    z: &[f32],
    latent: usize,
    batch: usize,
    level: Level,
    device: &B::Device,
) -> Vec<f32> {
    in_batches(
        z,
        latent,
        batch,
        |m| [m, latent],
        device,
        |zt| {
            g.forward_at(zt, level)
                .into_data()
                .to_vec::<f32>()
                .expect("f32 images")
        },
    )
}
