//! The generator: Linear (no bias) -> LeakyReLU -> reshape to C0 x H0 x W0, then stride-2
//! transposed convolutions (optional BatchNorm, LeakyReLU each, plus `block_convs` stride-1 3x3
//! convolutions per resolution step), then a 3x3 conv to RGB and a sigmoid.
//! For the seed preset: 64 -> 64x6x5 -> 256 -> 128 -> 128 -> 64 -> 3 at 96x80.

use burn::module::Module;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::{backend::Backend, Tensor};

use crate::cpu::ops as cpu;
use crate::layers::{conv3x3, conv_transpose3x3_up, dense, leaky_relu, BatchNorm2d};
use crate::ModelConfig;

/// A stride-1 3x3 convolution, optional BatchNorm, LeakyReLU (the extra depth of a G block).
#[derive(Module, Debug)]
pub struct GeneratorRefine<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Option<BatchNorm2d<B>>,
}

/// One G stage: transposed conv (x2 upsampling), optional BatchNorm, LeakyReLU, then the
/// stage's extra convolutions.
#[derive(Module, Debug)]
pub struct GeneratorBlock<B: Backend> {
    pub conv: ConvTranspose2d<B>,
    pub norm: Option<BatchNorm2d<B>>,
    pub refine: Vec<GeneratorRefine<B>>,
}

#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    pub project: Linear<B>,
    pub blocks: Vec<GeneratorBlock<B>>,
    pub to_rgb: Conv2d<B>,
    pub start: [usize; 3],
    pub slope: f64,
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
                    conv: conv_transpose3x3_up(cin, cout, device),
                    norm: bn_layer(bn, cout),
                    refine: (0..cfg.block_convs)
                        .map(|_| GeneratorRefine {
                            conv: conv3x3(cout, cout, 1, device),
                            norm: bn_layer(bn, cout),
                        })
                        .collect(),
                };
                cin = cout;
                block
            })
            .collect();
        Generator {
            project: dense(cfg.latent, c0 * h0 * w0, false, device),
            blocks,
            to_rgb: conv3x3(cin, 3, 1, device),
            start: [c0, h0, w0],
            slope: cfg.leaky_slope,
        }
    }

    /// Noise `[N, latent]` -> images in [0, 1], `[N, 3, H, W]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        let n = z.dims()[0];
        let [c0, h0, w0] = self.start;
        let x = leaky_relu(self.project.forward(z), self.slope);
        let mut x: Tensor<B, 4> = x.reshape([n, c0, h0, w0]);
        for block in &self.blocks {
            x = match &block.norm {
                Some(norm) => {
                    norm.forward_act(cpu::conv_transpose2d(&block.conv, x), Some(self.slope))
                }
                None => cpu::conv_transpose2d_act(&block.conv, x, Some(self.slope)),
            };
            for refine in &block.refine {
                x = norm_and_act(cpu::conv2d(&refine.conv, x), &refine.norm, self.slope);
            }
        }
        sigmoid(cpu::conv2d(&self.to_rgb, x))
    }
}
