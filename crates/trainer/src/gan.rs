//! The GAN and its training step: the seed's two-pass update (D on real and detached fake, then
//! G through the updated D), with the loss, learning rates, betas and D:G ratio from the config.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::{sigmoid, softplus};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Distribution, Int, Tensor, TensorData};
use facegan_model::{Discriminator, Generator};

use crate::config::{LossKind, TrainConfig};

/// Keras' probability clip for binary cross-entropy.
const BCE_EPS: f64 = 1e-7;

/// Mean loss of logits against an all-ones (`target_real`) or all-zeros target.
pub fn adversarial_loss<B: Backend>(
    kind: LossKind,
    logits: Tensor<B, 2>,
    target_real: bool,
) -> Tensor<B, 1> {
    match kind {
        LossKind::Seed => {
            let p = sigmoid(logits).clamp(BCE_EPS, 1.0 - BCE_EPS);
            let nll = if target_real {
                p.log().neg()
            } else {
                p.neg().add_scalar(1.0).log().neg()
            };
            nll.mean()
        }
        LossKind::Logistic => {
            // -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
            let x = if target_real { logits.neg() } else { logits };
            softplus(x, 1.0).mean()
        }
    }
}

pub type AdamFor<M, B> = OptimizerAdaptor<Adam, M, B>;

/// Both networks and both optimizers.
pub struct Gan<B: AutodiffBackend> {
    pub g: Generator<B>,
    pub d: Discriminator<B>,
    pub opt_g: AdamFor<Generator<B>, B>,
    pub opt_d: AdamFor<Discriminator<B>, B>,
    pub cfg: TrainConfig,
}

/// Device-side statistics of one step (read back only every `sync_every` steps):
/// `[loss_d, loss_g, mean D(x), mean D(G(z))]`.
pub type StepStats<B> = Tensor<<B as AutodiffBackend>::InnerBackend, 1>;

pub fn adam(cfg: &TrainConfig) -> AdamConfig {
    AdamConfig::new()
        .with_beta_1(cfg.beta1 as f32)
        .with_beta_2(cfg.beta2 as f32)
        .with_epsilon(cfg.adam_epsilon as f32)
}

/// Uploads a `[N, 3, H, W]` u8 batch and maps it to [0, 1] floats on the device.
pub fn upload_images<B: Backend>(
    pixels: Vec<u8>,
    n: usize,
    h: usize,
    w: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let data = TensorData::new(pixels, [n, 3, h, w]);
    Tensor::<B, 4, Int>::from_data(data, (device, DType::U8))
        .float()
        .div_scalar(255.0)
}

/// Latent noise for one step, from the (per-step seeded) backend RNG.
pub fn noise<B: Backend>(n: usize, latent: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random([n, latent], Distribution::Normal(0.0, 1.0), device)
}

/// The backend RNG seed for global step `step`: every random draw of a step (noise, dropout)
/// depends only on (seed, step), which makes resume bit-exact.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&[seed.to_le_bytes(), step.to_le_bytes()].concat())
}

impl<B: AutodiffBackend> Gan<B> {
    /// Fresh networks initialised from `cfg.seed`.
    pub fn new(cfg: &TrainConfig, device: &B::Device) -> Self {
        B::seed(device, cfg.seed);
        let g = Generator::new(&cfg.model, device);
        let d = Discriminator::new(&cfg.model, device);
        Gan {
            g,
            d,
            opt_g: adam(cfg).init(),
            opt_d: adam(cfg).init(),
            cfg: cfg.clone(),
        }
    }

    /// One training step on a real batch `[N, 3, H, W]` in [0, 1]: `d_steps` discriminator
    /// updates, then one generator update. Returns device-side stats.
    pub fn step(&mut self, real: Tensor<B, 4>, step: u64) -> StepStats<B> {
        let device = real.device();
        let n = real.dims()[0];
        B::seed(&device, step_seed(self.cfg.seed, step));
        let fake = self
            .g
            .forward(noise::<B>(n, self.cfg.model.latent, &device));
        let mut d_stats = None;
        for _ in 0..self.cfg.d_steps {
            d_stats = Some(self.d_step(real.clone(), fake.clone()));
        }
        let (loss_d, d_real) = d_stats.expect("d_steps >= 1");
        let (loss_g, d_fake) = self.g_step(fake);
        Tensor::cat(vec![loss_d, loss_g, d_real, d_fake], 0)
    }

    /// Discriminator update: real -> 1, detached fake -> 0. Touches only D (and its optimizer).
    /// Returns (loss, mean D(x)) on the inner backend.
    pub fn d_step(
        &mut self,
        real: Tensor<B, 4>,
        fake: Tensor<B, 4>,
    ) -> (Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>) {
        let kind = self.cfg.loss;
        let out_real = self.d.forward(real);
        let out_fake = self.d.forward(fake.detach());
        let loss = adversarial_loss(kind, out_real.clone(), true)
            + adversarial_loss(kind, out_fake, false);
        let grads = GradientsParams::from_grads(loss.backward(), &self.d);
        self.d = self.opt_d.step(self.cfg.lr_d, self.d.clone(), grads);
        (loss.inner(), sigmoid(out_real.inner()).mean())
    }

    /// Generator update through the current D: fake -> 1. Only G's parameters are stepped.
    /// Returns (loss, mean D(G(z))) on the inner backend.
    pub fn g_step(
        &mut self,
        fake: Tensor<B, 4>,
    ) -> (Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>) {
        let out = self.d.forward(fake);
        let loss = adversarial_loss(self.cfg.loss, out.clone(), true);
        let grads = GradientsParams::from_grads(loss.backward(), &self.g);
        self.g = self.opt_g.step(self.cfg.lr_g, self.g.clone(), grads);
        (loss.inner(), sigmoid(out.inner()).mean())
    }

    /// The generator in eval mode (BatchNorm running statistics), for samples.
    pub fn generator_eval(&self) -> Generator<B::InnerBackend> {
        self.g.valid()
    }
}
