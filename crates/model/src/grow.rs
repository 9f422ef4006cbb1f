//! Progressive growing (Karras et al. 2018, "Progressive Growing of GANs"): training starts with
//! the first resolution steps of G and the last ones of D at a fraction of the image size, and
//! adds a step at a time, fading each new one in. A [`Level`] says which part of the networks
//! runs; the schedule that picks it from the images shown is the training config's
//! (`TrainConfig::grow`). A model grows when its config has `progressive = true`: G then has an
//! RGB output after every resolution step and D an RGB input before every step but the first
//! (`Generator::to_rgb_steps`, `Discriminator::from_rgb`).

use crate::ModelConfig;

/// The part of a progressive G and D that runs: G's first `steps` resolution steps (and D's last
/// `steps`), at `size()`; the newest of them faded in by `alpha` (1: fully in). During a fade,
/// G's image is `alpha` x the new step's output plus `1 - alpha` x the previous size's output
/// upsampled, and D sees its input both through the new step and, downsampled, through the
/// previous entry, mixed the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub steps: usize,
    pub alpha: f32,
}

impl Level {
    /// The whole networks at the full size.
    pub fn full(cfg: &ModelConfig) -> Self {
        Level {
            steps: cfg.g_channels.len(),
            alpha: 1.0,
        }
    }

    pub fn is_full(&self, cfg: &ModelConfig) -> bool {
        *self == Self::full(cfg)
    }

    /// Whether the newest step is still fading in.
    pub fn fading(&self) -> bool {
        self.alpha < 1.0
    }

    /// Image height and width at this level: the full size halved once per step not running.
    pub fn size(&self, cfg: &ModelConfig) -> (usize, usize) {
        let f = 1 << (cfg.g_channels.len() - self.steps.min(cfg.g_channels.len()));
        (cfg.height / f, cfg.width / f)
    }

    /// Whether this level can run on `cfg`'s networks; the message says why not.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<(), String> {
        let n = cfg.g_channels.len();
        if !(1..=n).contains(&self.steps) {
            return Err(format!(
                "a level runs 1 to {n} resolution steps, not {}",
                self.steps
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(format!("a fade's alpha is in [0, 1], not {}", self.alpha));
        }
        if self.fading() && self.steps < 2 {
            return Err("the first resolution step has nothing to fade in from".into());
        }
        if !self.is_full(cfg) && !cfg.progressive {
            return Err(
                "only a progressive model (progressive = true) runs below its full size".into(),
            );
        }
        Ok(())
    }
}
