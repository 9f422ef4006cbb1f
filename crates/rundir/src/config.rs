//! The training config: a preset's model plus the training hyper-parameters, as one serde/TOML
//! value. `config.toml` in a run directory is this struct, fully resolved.

use anyhow::{bail, Context, Result};
use facegan_model::{Level, ModelConfig};
use serde::{Deserialize, Serialize};

pub use crate::grow::GrowSchedule;

/// The adversarial loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// The seed's: Keras' `BinaryCrossentropy()` on D's sigmoid output. Keras computes it from
    /// the logits the sigmoid layer cached (`sigmoid_cross_entropy_with_logits`: gradient
    /// `p - t`, no probability clip; `make check-seed` confirms it against Keras), so it has the
    /// values and gradients of `logistic`.
    Seed,
    /// Non-saturating logistic loss computed on logits with softplus (numerically stable).
    Logistic,
    /// Hinge loss: D minimises `relu(1 - D(x)) + relu(1 + D(G(z)))`, G minimises `-D(G(z))`.
    Hinge,
}

/// How one training step updates the two networks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// The tutorial's: one forward of G, D on the reals and on the fakes, then D's gradient
    /// from D's loss and G's from G's loss through the same (not yet updated) D; both
    /// optimizers apply together.
    Simultaneous,
    /// PyTorch's DCGAN example: D steps on the reals and the detached fakes (`d_steps` times),
    /// then G steps through the updated D. The default of configs written before `step`
    /// existed.
    #[default]
    Alternating,
}

/// The recommended preset for each image size (height, width, preset): measured best on a
/// 2-core CPU (docs/results.md). `facegan train` without `--preset` or `--config` trains the one
/// for its shard's size; `warmup` and `bench-train` default to the one for their `--size`.
pub const RECOMMENDED_PRESETS: &[(usize, usize, &str)] =
    &[(48, 40, "faces48"), (96, 80, "faces96")];

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub preset: String,
    pub model: ModelConfig,
    pub epochs: usize,
    pub batch: usize,
    pub loss: LossKind,
    /// `simultaneous` (the tutorial's step) or `alternating` (D first, then G through the
    /// updated D).
    #[serde(default)]
    pub step: StepKind,
    pub lr_d: f64,
    pub lr_g: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_epsilon: f64,
    /// Keras' Adam: `adam_epsilon` added to `sqrt(v)` before the bias correction (the
    /// tutorial's optimizer) rather than to `sqrt(v_hat)` (Burn's and PyTorch's); see
    /// the trainer's `adam` module.
    #[serde(default)]
    pub keras_adam: bool,
    /// Discriminator steps per generator step.
    pub d_steps: usize,
    /// Seed of every random choice: initial weights, shuffles, noise, dropout.
    pub seed: u64,
    /// Write a checkpoint every this many epochs (the last epoch always gets one).
    pub checkpoint_every: usize,
    /// Checkpoints kept; older ones are deleted.
    pub keep_checkpoints: usize,
    /// Read losses back from the device every this many steps (fewer host syncs on a GPU).
    pub sync_every: usize,
    /// One-sided label smoothing: D's target for real images is `1 - label_smoothing`
    /// (`seed` and `logistic` losses only).
    #[serde(default)]
    pub label_smoothing: f64,
    /// Instance noise: the standard deviation of Gaussian noise added to every image D sees,
    /// annealed linearly to 0 over the run (0 = off).
    #[serde(default)]
    pub instance_noise: f64,
    /// DiffAugment policy: a comma-separated subset of `color,translation,cutout` (empty = off).
    #[serde(default)]
    pub diffaugment: String,
    /// Decay of the exponential moving average of G's weights (0 = off; about 0.999).
    #[serde(default)]
    pub ema_beta: f64,
    /// The EMA's warm-up: at step t the decay is `min(ema_beta, (1 + t) / (ema_warmup + t))`,
    /// so until `ema_beta` caps it the sampling generator averages about the last
    /// 1 / `ema_warmup` of the steps so far (10: the last tenth; at 0.999 the cap is reached
    /// after about 9,000 steps). At least 1.
    #[serde(default = "default_ema_warmup")]
    pub ema_warmup: f64,
    /// Learning-rate decay: over the last `lr_decay` fraction of the run's epochs (0 = off, at
    /// most 1), both learning rates fall linearly to 0, so the run ends on a settled generator.
    /// Steps count, not time: `--max-images` / `--max-steps` pause a run without moving its
    /// schedule, and a run that only `--minutes` ends (no `--epochs`) does not decay.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lr_decay: f64,
    /// Weight of the R1 gradient penalty on reals, `gamma / 2 * E |grad_x D(x)|^2` (0 = off).
    #[serde(default)]
    pub r1_gamma: f64,
    /// Score the sampling generator against the holdout (SWD, see the trainer's `quality` module) every
    /// this many images (0 = off); probes are postponed to stay under `eval_time_share` of
    /// training time.
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// The most of the training time probes may take (default 0.05): a probe is postponed while
    /// the time trained since the last one is under `1 / share - 1` times what that one cost.
    /// 1 never postpones: a probe every `eval_every` images exactly, on any machine.
    #[serde(
        default = "default_eval_time_share",
        skip_serializing_if = "is_default_eval_time_share"
    )]
    pub eval_time_share: f64,
    /// Images per side in those probes (at most the holdout's size).
    #[serde(default = "default_eval_images")]
    pub eval_images: usize,
    /// Wall-time budget in minutes (`--minutes`): training stops with a checkpoint when the run
    /// has trained this long in total (across resumes); the epoch count still bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<f64>,
    /// Where a fine-tuned run started (`train --init-from`): the source checkpoint's folder
    /// and what it had trained; G, its EMA and D started from there, the optimizers fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// Progressive growing (`[grow]`, a progressive model only): the sizes the networks train at
    /// and for how many images (see [`GrowSchedule`]). Absent: the full size throughout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grow: Option<GrowSchedule>,
}

/// Each model setting in which `source` differs from `this`: `name source vs this`.
pub fn model_differences(source: &ModelConfig, this: &ModelConfig) -> Vec<String> {
    let table = |m: &ModelConfig| match toml::Value::try_from(m) {
        Ok(toml::Value::Table(t)) => t,
        _ => Default::default(),
    };
    let (a, b) = (table(source), table(this));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&toml::Value>| v.map_or("unset".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k} {} vs {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

/// The most D updates per G update a config may ask for (more makes one step take minutes).
pub const MAX_D_STEPS: usize = 100;

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn default_ema_warmup() -> f64 {
    10.0
}

fn default_eval_every() -> u64 {
    10_000
}

fn default_eval_time_share() -> f64 {
    0.05
}

fn is_default_eval_time_share(v: &f64) -> bool {
    *v == default_eval_time_share()
}

fn default_eval_images() -> usize {
    2_000
}

impl TrainConfig {
    /// The level the networks run at after `images_seen` images: the [`GrowSchedule`]'s, else
    /// the full networks.
    pub fn level_at(&self, images_seen: u64) -> Level {
        match &self.grow {
            Some(g) => g.level_at(&self.model, images_seen),
            None => Level::full(&self.model),
        }
    }

    /// The step the G EMA's warm-up (the trainer's `beta_t = min(ema_beta, (1 + t) / (10 + t))`)
    /// counts from, at global step `step` after `images_seen` images: the step itself, or once a
    /// growing run has reached its second size, the steps shown since the current size began.
    /// A new size's layers start from their random weights; without the restart the EMA would
    /// average them in for thousands of steps (at `ema_beta` 0.999), and the generator that
    /// samples would trail the trained one long after the fade.
    pub fn ema_warmup_step(&self, step: u64, images_seen: u64) -> u64 {
        match self.grow.as_ref().map(|g| g.size_began_at(images_seen)) {
            Some(began) if began > 0 => (images_seen - began) / self.batch.max(1) as u64,
            _ => step,
        }
    }

    /// The learning rates' factor at `progress` (the fraction of the run done, in [0, 1]): 1,
    /// then over the last `lr_decay` of the run linearly down to 0 (see [`Self::lr_decay`]).
    pub fn lr_scale(&self, progress: f64) -> f64 {
        if self.lr_decay > 0.0 {
            ((1.0 - progress) / self.lr_decay).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    /// The preset's full config with the seed's training settings (BCE, Adam 1e-4, batch 64,
    /// 200 epochs, Keras' Adam epsilon 1e-7).
    pub fn preset(name: &str) -> Result<Self> {
        let Some(model) = ModelConfig::preset(name) else {
            bail!(
                "unknown preset {name:?}; choose one of: {}",
                ModelConfig::PRESETS.join(", ")
            );
        };
        let mut cfg = TrainConfig {
            preset: name.to_string(),
            model,
            epochs: 200,
            batch: 64,
            loss: LossKind::Seed,
            step: StepKind::Simultaneous,
            lr_d: 1e-4,
            lr_g: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            adam_epsilon: 1e-7,
            keras_adam: true,
            d_steps: 1,
            seed: 0,
            checkpoint_every: 1,
            keep_checkpoints: 3,
            sync_every: 10,
            label_smoothing: 0.0,
            instance_noise: 0.0,
            diffaugment: String::new(),
            ema_beta: 0.0,
            ema_warmup: default_ema_warmup(),
            lr_decay: 0.0,
            r1_gamma: 0.0,
            eval_every: default_eval_every(),
            eval_time_share: default_eval_time_share(),
            eval_images: default_eval_images(),
            minutes: None,
            init_from: None,
            grow: None,
        };
        match name {
            "tiny" => {
                cfg.epochs = 2;
                cfg.batch = 16;
                cfg.sync_every = 1;
            }
            "demo" => {
                // faces48's model and loss, sized to about 5 minutes on a 2-core CPU: batch 32
                // (faster per image than 64 on the synthetic set), Adam 4e-4 for both networks
                // and no DiffAugment (the synthetic faces are clean and the run short: 14
                // epochs). On the demo's synthetic set at about 15,000 images it scores SWD 47.1
                // where faces48's own settings score 75.8 (docs/results.md).
                cfg = Self::preset("faces48")?;
                cfg.preset = name.to_string();
                cfg.batch = 32;
                cfg.epochs = 14;
                cfg.eval_every = 5_000;
                cfg.lr_d = 4e-4;
                cfg.lr_g = 4e-4;
                cfg.diffaugment = String::new();
            }
            "celeba48" => {
                // The fixes for the seed's D-outruns-G weakness, together: non-saturating
                // logistic loss, two time-scale learning rates (D 2x G), DiffAugment, and an EMA
                // of G for samples and eval (spectral norm and minibatch stddev are in the model).
                cfg.loss = LossKind::Logistic;
                cfg.step = StepKind::Alternating;
                cfg.lr_g = 1e-4;
                cfg.lr_d = 2e-4;
                cfg.beta1 = 0.5;
                cfg.beta2 = 0.99;
                cfg.adam_epsilon = 1e-8;
                cfg.keras_adam = false;
                cfg.diffaugment = "color,translation,cutout".into();
                cfg.ema_beta = 0.999;
                cfg.epochs = 10;
            }
            "seed48" => cfg.epochs = 10,
            "faces48" | "faces96" | "grow96" => {
                // The celeba48 training recipe (logistic loss, beta (0.5, 0.99), EMA of G), with
                // Adam 2e-4 for G and DiffAugment by translation only: measured for quality per
                // CPU minute in docs/results.md (run TRANS at 48x40: lower SWD at the hour than
                // colour + translation on both seeds; TRANS96 at 96x80: lower SWD at 3 hours).
                // faces48's D learns at half G's rate (run TRANS-DHALFLR: held-out D accuracy
                // inside 0.5-0.7 and lower SWD at the hour on both seeds); faces96's D keeps
                // 2e-4, the rate measured at 96x80.
                let model = cfg.model.clone();
                cfg = Self::preset("celeba48")?;
                cfg.preset = name.to_string();
                cfg.model = model;
                cfg.lr_g = 2e-4;
                cfg.lr_d = if name == "faces48" { 1e-4 } else { 2e-4 };
                cfg.diffaugment = "translation".into();
                cfg.epochs = 60;
                if name == "grow96" {
                    // faces96's networks and settings, grown (Karras et al. 2018): 24x20,
                    // then 48x40, then 96x80 for the rest. These networks keep the work per
                    // resolution step about constant, so the smaller sizes are only 2x and
                    // 1.3x as fast as 96x80 (`make bench-presets`): the schedule spends most
                    // images at the full size and uses the small ones to lay out the faces.
                    cfg.grow = Some(GrowSchedule {
                        sizes: vec![[24, 20], [48, 40], [96, 80]],
                        images: vec![30_000, 60_000],
                        fade: 20_000,
                    });
                }
            }
            _ => {}
        }
        Ok(cfg)
    }

    /// The recommended preset for a shard's image size (from [`RECOMMENDED_PRESETS`]): what
    /// `facegan train` trains when it is given no preset or config. A size without one is an
    /// error that lists the sizes that have one.
    pub fn recommended_preset(height: usize, width: usize) -> Result<&'static str> {
        match RECOMMENDED_PRESETS
            .iter()
            .find(|&&(h, w, _)| (h, w) == (height, width))
        {
            Some(&(_, _, preset)) => Ok(preset),
            None => bail!(
                "no recommended preset for {height}x{width} images; sizes with one: {}. \
                 Preprocess at one of them (--size), or name a preset (--preset; `seed` is the \
                 tutorial's networks at 96x80) or a --config",
                RECOMMENDED_PRESETS
                    .iter()
                    .map(|(h, w, p)| format!("{h}x{w} ({p})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The config a command line asks for: `--config FILE` (a partial TOML on a base preset),
    /// else `--preset NAME`; then `--batch` and `--seed`. A `--preset` that disagrees with the
    /// config file's is refused. `None` when neither is given: training then takes the
    /// recommended preset for its shard's size ([`Self::recommended_preset`]).
    pub fn from_args(
        config: Option<&std::path::Path>,
        preset: Option<&str>,
        batch: Option<usize>,
        seed: Option<u64>,
    ) -> Result<Option<Self>> {
        let cfg = match (config, preset) {
            (Some(path), _) => Self::from_toml_file(path)?,
            (None, Some(p)) => Self::preset(p)?,
            (None, None) => return Ok(None),
        };
        if let (Some(_), Some(p)) = (config, preset) {
            if cfg.preset != p {
                bail!(
                    "--preset {p} disagrees with the config file's preset {}",
                    cfg.preset
                );
            }
        }
        Ok(Some(cfg.with_overrides(batch, seed)))
    }

    /// This config with `--batch` and `--seed` applied, where given.
    pub fn with_overrides(mut self, batch: Option<usize>, seed: Option<u64>) -> Self {
        if let Some(b) = batch {
            self.batch = b;
        }
        if let Some(s) = seed {
            self.seed = s;
        }
        self
    }

    /// Loads a TOML file. It may be partial: `preset = "..."` (default `seed`) picks the base and
    /// every other key overrides it.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("{}: bad config", path.display()))
    }

    pub fn from_toml_str(text: &str) -> Result<Self> {
        let overrides: toml::Table = toml::from_str(text)?;
        let preset = overrides
            .get("preset")
            .and_then(|v| v.as_str())
            .unwrap_or("seed")
            .to_string();
        let mut base = toml::Table::try_from(Self::preset(&preset)?)?;
        merge(&mut base, overrides);
        let cfg: TrainConfig = toml::Value::Table(base).try_into()?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    /// Refuses a shard whose image size differs from the model's.
    pub fn check_shard(&self, shard: &facegan_shard::Shard) -> Result<()> {
        let (h, w) = (shard.height(), shard.width());
        let (mh, mw) = (self.model.height, self.model.width);
        if (h, w) != (mh, mw) {
            bail!(
                "{}: shard images are {h}x{w} but preset {:?} needs {mh}x{mw}; rerun `facegan preprocess --size {mh}x{mw}` or pick a preset of that size",
                shard.path().display(),
                self.preset,
            );
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if let Err(e) = self.model.validate() {
            bail!("model config: {e}");
        }
        if self.batch == 0 || self.epochs == 0 || self.d_steps == 0 || self.sync_every == 0 {
            bail!("batch, epochs, d_steps and sync_every must be > 0");
        }
        if self.keep_checkpoints == 0 || self.checkpoint_every == 0 {
            bail!("keep_checkpoints and checkpoint_every must be > 0");
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            bail!("label_smoothing must be in [0, 0.5)");
        }
        if self.label_smoothing > 0.0 && self.loss == LossKind::Hinge {
            bail!("label_smoothing applies to the seed and logistic losses, not hinge");
        }
        for (name, v) in [
            ("instance_noise", self.instance_noise),
            ("r1_gamma", self.r1_gamma),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{name} must be a finite number >= 0 (got {v})");
            }
        }
        for (name, v) in [
            ("lr_d", self.lr_d),
            ("lr_g", self.lr_g),
            ("adam_epsilon", self.adam_epsilon),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                bail!("{name} must be a finite number > 0 (got {v})");
            }
        }
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                bail!("{name} must be in [0, 1) (got {v})");
            }
        }
        if self.step == StepKind::Simultaneous && self.d_steps != 1 {
            bail!(
                "d_steps must be 1 with step = \"simultaneous\" (got {}); use step = \"alternating\" for several D steps per G step",
                self.d_steps
            );
        }
        if self.d_steps > MAX_D_STEPS {
            bail!(
                "d_steps must be at most {MAX_D_STEPS} (got {})",
                self.d_steps
            );
        }
        if !(0.0..=1.0).contains(&self.lr_decay) {
            bail!("lr_decay must be in [0, 1] (got {})", self.lr_decay);
        }
        if !(0.0..1.0).contains(&self.ema_beta) {
            bail!("ema_beta must be in [0, 1)");
        }
        if !(self.ema_warmup >= 1.0 && self.ema_warmup.is_finite()) {
            bail!("ema_warmup must be at least 1 (10 is the default)");
        }
        if !(self.eval_time_share > 0.0 && self.eval_time_share <= 1.0) {
            bail!(
                "eval_time_share must be in (0, 1] (got {})",
                self.eval_time_share
            );
        }
        if self.minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
            bail!("minutes must be a positive number");
        }
        diffaugment_ops(&self.diffaugment)?;
        if let Some(g) = &self.grow {
            g.validate(&self.model)?;
            if self.r1_gamma > 0.0 {
                bail!("r1_gamma does not combine with [grow] (R1 runs the full-size D)");
            }
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (k, v) in overrides {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The augmentations DiffAugment knows, by the names a config's `diffaugment` policy uses.
pub const DIFFAUGMENT_OPS: [&str; 3] = ["color", "translation", "cutout"];

/// The augmentations a `diffaugment` policy turns on: `""` or `"none"` is none, otherwise a
/// comma-separated subset of [`DIFFAUGMENT_OPS`].
pub fn diffaugment_ops(policy: &str) -> Result<Vec<&str>> {
    let mut ops = Vec::new();
    for part in policy.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "none" => {}
            op if DIFFAUGMENT_OPS.contains(&op) => ops.push(op),
            other => bail!(
                "unknown DiffAugment policy {other:?}; use a comma-separated subset of color, translation, cutout"
            ),
        }
    }
    Ok(ops)
}
