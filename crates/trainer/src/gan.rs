//! The GAN and its training step, of either kind ([`StepKind`]): the tutorial's simultaneous
//! update (D's and G's gradients from one pass, both applied together) or the alternating one
//! (D on real and detached fake, then G through the updated D), with the loss, learning rates,
//! betas and D:G ratio from the config, and the balancing options: label smoothing, instance
//! noise, DiffAugment, R1 and an EMA of G.

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::activation::{sigmoid, softplus};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Distribution, Int, Tensor, TensorData};
use facegan_model::{Discriminator, Generator, Level};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adam::GanAdam;
use crate::augment::DiffAugment;
use crate::config::{LossKind, StepKind, TrainConfig};
use crate::ema::{ema_decay, ema_update};
use crate::parallel::{self, Peer};
use crate::r1::{add_into, r1_gradients, R1_EVERY};

/// Taken while a step seeds Burn's backend RNG and draws its noise: the RNG is one per process,
/// and the peers of a data-parallel run are threads of one process.
static BACKEND_RNG_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Salt of the per-step augmentation RNG (kept apart from the backend RNG's stream).
const AUGMENT_SALT: u64 = 0xD1FF_A09E_0000_0001;

/// Mean loss of logits against a target of all ones (`target_real`) or all zeros, for the
/// `seed` and `logistic` losses; `target_real` with `smoothing` s uses the target 1 - s.
/// For `hinge` it is D's side: `relu(1 - x)` for reals, `relu(1 + x)` for fakes.
pub fn adversarial_loss<B: Backend>(
    kind: LossKind,
    logits: Tensor<B, 2>,
    target_real: bool,
) -> Tensor<B, 1> {
    smoothed_loss(kind, logits, target_real, 0.0)
}

fn smoothed_loss<B: Backend>(
    kind: LossKind,
    logits: Tensor<B, 2>,
    target_real: bool,
    smoothing: f64,
) -> Tensor<B, 1> {
    let t = if target_real { 1.0 - smoothing } else { 0.0 };
    match kind {
        // Keras' BinaryCrossentropy on a sigmoid output uses the sigmoid's cached logits
        // (`sigmoid_cross_entropy_with_logits`), so the seed's loss is the logistic one: no
        // probability clip, and a saturated fake still sends G the gradient p - 1.
        LossKind::Seed | LossKind::Logistic => {
            // -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
            let pos = (t > 0.0).then(|| softplus(logits.clone().neg(), 1.0).mul_scalar(t));
            let neg = (t < 1.0).then(|| softplus(logits, 1.0).mul_scalar(1.0 - t));
            mean_of_terms(pos, neg)
        }
        LossKind::Hinge => {
            let margin = if target_real { logits.neg() } else { logits };
            burn::tensor::activation::relu(margin.add_scalar(1.0)).mean()
        }
    }
}

/// Mean of the sum of a cross-entropy's two per-logit terms, either of which is skipped when
/// its weight is 0 (so the unsmoothed losses compute exactly what they did before smoothing).
fn mean_of_terms<B: Backend>(pos: Option<Tensor<B, 2>>, neg: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
    match (pos, neg) {
        (Some(a), Some(b)) => (a + b).mean(),
        (Some(a), None) | (None, Some(a)) => a.mean(),
        (None, None) => unreachable!("a target in [0, 1] weights at least one term"),
    }
}

/// D's loss: reals toward 1 (or `1 - smoothing`), fakes toward 0.
pub fn d_loss<B: Backend>(
    kind: LossKind,
    real_logits: Tensor<B, 2>,
    fake_logits: Tensor<B, 2>,
    smoothing: f64,
) -> Tensor<B, 1> {
    smoothed_loss(kind, real_logits, true, smoothing) + smoothed_loss(kind, fake_logits, false, 0.0)
}

/// G's loss: non-saturating (fakes toward 1) for `seed` and `logistic`, `-mean D(G(z))` for
/// `hinge`.
pub fn g_loss<B: Backend>(kind: LossKind, fake_logits: Tensor<B, 2>) -> Tensor<B, 1> {
    match kind {
        LossKind::Hinge => fake_logits.mean().neg(),
        _ => smoothed_loss(kind, fake_logits, true, 0.0),
    }
}

pub type AdamFor<M, B> = OptimizerAdaptor<GanAdam, M, B>;

/// Both networks, both optimizers, and the EMA of G when the config asks for one.
pub struct Gan<B: AutodiffBackend> {
    pub g: Generator<B>,
    pub d: Discriminator<B>,
    pub opt_g: AdamFor<Generator<B>, B>,
    pub opt_d: AdamFor<Discriminator<B>, B>,
    pub g_ema: Option<Generator<B::InnerBackend>>,
    pub cfg: TrainConfig,
    /// Fraction of the run done, in [0, 1]; set by the loop before each step (anneals the
    /// instance noise, decays the learning rates: [`TrainConfig::lr_scale`]).
    pub progress: f64,
    /// The part of the networks that trains (progressive growing; the whole networks
    /// otherwise): set by the loop before each step from the images shown
    /// ([`TrainConfig::level_at`]). The real batch must be at its size.
    pub level: Level,
    /// The step the EMA's warm-up counts from ([`TrainConfig::ema_warmup_step`]), set by the
    /// loop before each step (a growing run restarts it when a new size begins); `None`: the
    /// global step `step` is given.
    pub ema_step: Option<u64>,
    augment: DiffAugment,
    /// D updates made by this process's `step` calls since the step counter was last set (the
    /// R1 schedule); `step` sets it from the global step, so resume keeps the schedule.
    d_steps_done: u64,
    /// Host RNG of the current step's augmentation choices (reseeded every step).
    aug_rng: ChaCha8Rng,
    /// This GAN's place in a data-parallel run ([`Peer::SOLO`] on one device): its rows of each
    /// global batch, and whom it averages gradients with.
    pub peer: Peer,
}

/// Device-side statistics of one step (read back only every `sync_every` steps):
/// `[loss_d, loss_g, mean D(x), mean D(G(z))]`.
pub type StepStats<B> = Tensor<<B as AutodiffBackend>::InnerBackend, 1>;

/// A fresh Adam for one network, with the config's betas, epsilon and epsilon placement.
pub fn adam<B: AutodiffBackend, M: AutodiffModule<B>>(cfg: &TrainConfig) -> AdamFor<M, B> {
    OptimizerAdaptor::from(GanAdam {
        beta_1: cfg.beta1 as f32,
        beta_2: cfg.beta2 as f32,
        epsilon: cfg.adam_epsilon as f32,
        keras_epsilon: cfg.keras_adam,
    })
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
        let g_ema = (cfg.ema_beta > 0.0).then(|| g.valid());
        Self::from_parts(g, d, adam(cfg), adam(cfg), g_ema, cfg)
    }

    /// Assembles a GAN from restored parts (see `checkpoint::load_gan`).
    pub fn from_parts(
        g: Generator<B>,
        d: Discriminator<B>,
        opt_g: AdamFor<Generator<B>, B>,
        opt_d: AdamFor<Discriminator<B>, B>,
        g_ema: Option<Generator<B::InnerBackend>>,
        cfg: &TrainConfig,
    ) -> Self {
        Gan {
            g,
            d,
            opt_g,
            opt_d,
            g_ema,
            cfg: cfg.clone(),
            progress: 0.0,
            level: Level::full(&cfg.model),
            ema_step: None,
            augment: DiffAugment::parse(&cfg.diffaugment).unwrap_or_default(),
            aug_rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            d_steps_done: 0,
            peer: Peer::SOLO,
        }
    }

    /// A copy on `device` for peer `peer` of a data-parallel run: the same weights, optimizer
    /// states and parameter ids (which the gradient all-reduce matches tensors by).
    pub fn fork_for(&self, peer: Peer, device: &B::Device) -> Self {
        Gan {
            g: self.g.clone().fork(device),
            d: self.d.clone().fork(device),
            opt_g: self.opt_g.clone(),
            opt_d: self.opt_d.clone(),
            g_ema: self.g_ema.clone().map(|e| e.fork(device)),
            cfg: self.cfg.clone(),
            progress: self.progress,
            level: self.level,
            ema_step: self.ema_step,
            augment: self.augment,
            d_steps_done: self.d_steps_done,
            aug_rng: self.aug_rng.clone(),
            peer,
        }
    }

    /// What D sees of a batch: DiffAugment (if on), then instance noise (if on).
    fn d_input(&mut self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = images;
        if !self.augment.is_off() {
            x = self.augment.apply(x, &mut self.aug_rng);
        }
        let sigma = self.cfg.instance_noise * (1.0 - self.progress).max(0.0);
        if sigma > 0.0 {
            x = x.clone() + x.random_like(Distribution::Normal(0.0, sigma));
        }
        x
    }

    /// One training step on a real batch `[N, 3, H, W]` in [0, 1] (see [`StepKind`]).
    /// Returns device-side stats.
    /// On a peer of a data-parallel run, `real` is the peer's rows of the global batch and the
    /// noise is its rows of the global batch's noise.
    pub fn step(&mut self, real: Tensor<B, 4>, step: u64) -> StepStats<B> {
        let device = real.device();
        let n = real.dims()[0];
        let seed = step_seed(self.cfg.seed, step);
        // Peers other than 0 draw their own augmentations (they see other images).
        let peer_salt = (self.peer.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.aug_rng = ChaCha8Rng::seed_from_u64(seed ^ AUGMENT_SALT ^ peer_salt);
        self.d_steps_done = step * self.cfg.d_steps as u64;
        let z = {
            // The backend RNG is one per process: peers (threads) take turns to seed and draw.
            let _turn = BACKEND_RNG_TURN.lock().unwrap_or_else(|e| e.into_inner());
            B::seed(&device, seed);
            let z = noise::<B>(n * self.peer.count, self.cfg.model.latent, &device);
            if self.peer.is_solo() {
                z
            } else {
                // A lazy backend (burn-cuda's fusion) draws only when its stream flushes:
                // flush while this peer still holds the RNG.
                let _ = B::sync(&device);
                z.slice([self.peer.rows(n * self.peer.count)])
            }
        };
        let stats = self.step_with_noise(real, z, step);
        parallel::reduce(self.peer, stats, true)
    }

    /// [`Gan::step`] with the latent batch `z` given (the Keras oracle's check feeds both
    /// frameworks the same noise); the step's random state is whatever `step` set up.
    pub fn step_with_noise(
        &mut self,
        real: Tensor<B, 4>,
        z: Tensor<B, 2>,
        step: u64,
    ) -> StepStats<B> {
        let fake = self.g.forward_at(z, self.level);
        let [loss_d, loss_g, d_real, d_fake] = match self.cfg.step {
            StepKind::Simultaneous => self.simultaneous_step(real, fake),
            StepKind::Alternating => {
                let mut d_stats = None;
                for _ in 0..self.cfg.d_steps {
                    d_stats = Some(self.d_step(real.clone(), fake.clone()));
                }
                let (loss_d, d_real) = d_stats.expect("d_steps >= 1");
                let (loss_g, d_fake) = self.g_step(fake);
                [loss_d, loss_g, d_real, d_fake]
            }
        };
        if let Some(ema) = self.g_ema.take() {
            let decay = ema_decay(
                self.cfg.ema_beta,
                self.cfg.ema_warmup,
                self.ema_step.unwrap_or(step),
            );
            self.g_ema = Some(ema_update(ema, &self.g.valid(), decay));
        }
        Tensor::cat(vec![loss_d, loss_g, d_real, d_fake], 0)
    }

    /// The tutorial's step: D on the reals and on the fakes (each call its own BatchNorm batch
    /// statistics and dropout masks), D's gradients from D's loss, G's from G's loss through the
    /// same D outputs, then both optimizers apply. Burn frees a graph as it back-propagates, so
    /// G's loss runs the fake pass again through a frozen copy of D ([`Discriminator::frozen`])
    /// with the same augmentation and random draws: the same values as the tutorial's one fake
    /// pass, D's running statistics updated once per call as Keras does, and no D weight
    /// gradients computed for G. Returns `[loss_d, loss_g, mean D(x), mean D(G(z))]`.
    fn simultaneous_step(
        &mut self,
        real: Tensor<B, 4>,
        fake: Tensor<B, 4>,
    ) -> [Tensor<B::InnerBackend, 1>; 4] {
        let device = real.device();
        let plain_real = real.clone().inner();
        let real = self.d_input(real);
        let out_real = self.d.forward_at(real, self.level);
        // One seed for the fake pass, so that D's and G's copies of it draw the same masks.
        let fake_pass_seed = self.aug_rng.next_u64();
        let aug_state = self.aug_rng.clone();
        B::seed(&device, fake_pass_seed);
        let fake_for_d = self.d_input(fake.clone().detach());
        let out_fake = self.d.forward_at(fake_for_d, self.level);
        let (grads_d, loss_d) = self.d_gradients(out_real.clone(), out_fake, plain_real);

        self.aug_rng = aug_state;
        B::seed(&device, fake_pass_seed);
        let fake_for_g = self.d_input(fake);
        let out_g = self.d.frozen().forward_at(fake_for_g, self.level);
        let loss_g = g_loss(self.cfg.loss, out_g.clone());
        let grads_g = GradientsParams::from_grads(loss_g.backward(), &self.g);

        let grads_g = parallel::mean_gradients(self.peer, grads_g, &self.g);
        self.d = self.opt_d.step(self.lr_d(), self.d.clone(), grads_d);
        self.g = self.opt_g.step(self.lr_g(), self.g.clone(), grads_g);
        [
            loss_d,
            loss_g.inner(),
            sigmoid(out_real.inner()).mean(),
            sigmoid(out_g.inner()).mean(),
        ]
    }

    /// Discriminator update: real -> 1, detached fake -> 0. Touches only D (and its optimizer).
    /// Returns (loss, mean D(x)) on the inner backend.
    pub fn d_step(
        &mut self,
        real: Tensor<B, 4>,
        fake: Tensor<B, 4>,
    ) -> (Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>) {
        let plain_real = real.clone().inner();
        let real = self.d_input(real);
        let fake = self.d_input(fake.detach());
        let out_real = self.d.forward_at(real, self.level);
        let out_fake = self.d.forward_at(fake, self.level);
        let (grads, loss) = self.d_gradients(out_real.clone(), out_fake, plain_real);
        self.d = self.opt_d.step(self.lr_d(), self.d.clone(), grads);
        (loss, sigmoid(out_real.inner()).mean())
    }

    /// D's gradients from its loss on these outputs (reals toward 1, fakes toward 0), plus the
    /// R1 penalty on `plain_real` when it is due; counts one D update. Returns the gradients and
    /// the loss (penalty included) on the inner backend. Shared by both step kinds.
    fn d_gradients(
        &mut self,
        out_real: Tensor<B, 2>,
        out_fake: Tensor<B, 2>,
        plain_real: Tensor<B::InnerBackend, 4>,
    ) -> (GradientsParams, Tensor<B::InnerBackend, 1>) {
        let loss = d_loss(self.cfg.loss, out_real, out_fake, self.cfg.label_smoothing);
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.d);
        let mut loss = loss.inner();
        if self.cfg.r1_gamma > 0.0 && self.d_steps_done.is_multiple_of(R1_EVERY) {
            let weight = self.cfg.r1_gamma * R1_EVERY as f64;
            let r1 = r1_gradients(&self.d, &self.cfg.model, plain_real, weight);
            add_into(&mut grads, &self.d, r1.grads);
            loss = loss + r1.penalty.div_scalar(R1_EVERY as f64);
        }
        self.d_steps_done += 1;
        (parallel::mean_gradients(self.peer, grads, &self.d), loss)
    }

    /// Generator update through the current D: fake -> 1. Only G's parameters are stepped.
    /// Returns (loss, mean D(G(z))) on the inner backend.
    pub fn g_step(
        &mut self,
        fake: Tensor<B, 4>,
    ) -> (Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>) {
        let fake = self.d_input(fake);
        let out = self.d.forward_at(fake, self.level);
        let loss = g_loss(self.cfg.loss, out.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &self.g);
        let grads = parallel::mean_gradients(self.peer, grads, &self.g);
        self.g = self.opt_g.step(self.lr_g(), self.g.clone(), grads);
        (loss.inner(), sigmoid(out.inner()).mean())
    }

    /// D's learning rate for this step: `lr_d`, decayed by [`TrainConfig::lr_scale`].
    fn lr_d(&self) -> f64 {
        self.cfg.lr_d * self.cfg.lr_scale(self.progress)
    }

    /// G's learning rate for this step: `lr_g`, decayed by [`TrainConfig::lr_scale`].
    fn lr_g(&self) -> f64 {
        self.cfg.lr_g * self.cfg.lr_scale(self.progress)
    }

    /// The generator that draws samples, in eval mode (BatchNorm running statistics): the EMA
    /// when there is one, else G itself.
    pub fn generator_eval(&self) -> Generator<B::InnerBackend> {
        match &self.g_ema {
            Some(ema) => ema.clone(),
            None => self.g.valid(),
        }
    }
}
