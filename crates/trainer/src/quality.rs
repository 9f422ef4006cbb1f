//! The live quality curve: every `eval_every` images the trainer scores the generator it samples
//! from (the EMA when there is one, in eval mode) against the shard's holdout, with the eval
//! stage's sliced Wasserstein distance ([`facegan_metrics::swd`]) on fixed latents. It uses eval's
//! seed (7) and holdout sample, so when both score as many images (`eval_images` per side here,
//! `--n` there; both capped at the holdout's size) the last point of the curve is the number
//! `facegan eval` reports for the same weights (the end-to-end test checks this).
//!
//! The holdout's pyramids and the train-vs-holdout floor are computed once, when training starts;
//! each probe then costs one batched G forward, the fakes' pyramids and one SWD.

use std::time::Instant;

use burn::tensor::backend::Backend;
use facegan_metrics::swd::{self, sample_ids, to_planes, Planes, SwdResult};
use facegan_model::generator::{generate_batched, seeded_latents};
use facegan_model::Generator;
pub use facegan_rundir::quality_csv::{read_quality, write_quality, QualityPoint};
use facegan_shard::{Shard, Split};

/// `facegan eval`'s default seed: the probe uses the same holdout sample and latents.
pub const EVAL_SEED: u64 = 7;

/// What the probe compares against, prepared once per training process.
pub struct QualityProbe {
    holdout: Vec<Vec<Planes>>,
    floor: SwdResult,
    latents: Vec<f32>,
    latent: usize,
    h: usize,
    w: usize,
}

impl QualityProbe {
    /// Prepares the probe, or `None` when the shard has no holdout (nothing to score against).
    /// Reseeds the backend RNG (for the latents): call it before training steps, which reseed
    /// it themselves every step.
    pub fn new<B: Backend>(
        shard: &Shard,
        latent: usize,
        max_images: usize,
        device: &B::Device,
    ) -> Option<Self> {
        let holdout = shard.indices(Split::Holdout);
        let train = shard.indices(Split::Train);
        let n = max_images.min(holdout.len()).min(train.len());
        if n == 0 {
            return None;
        }
        let (h, w) = (shard.height(), shard.width());
        let pyramids_of = |ids: &[usize]| {
            let planes: Vec<Planes> = ids
                .iter()
                .map(|&i| Planes::from_hwc_u8(h, w, shard.image(i)))
                .collect();
            swd::pyramids(&planes)
        };
        let holdout = pyramids_of(&sample_ids(&holdout, n, EVAL_SEED ^ 1));
        let train = pyramids_of(&sample_ids(&train, n, EVAL_SEED ^ 2));
        let floor = swd::swd_with_spread(&train, &holdout, EVAL_SEED, swd::SPREAD_ROUNDS);
        Some(QualityProbe {
            holdout,
            floor,
            latents: seeded_latents::<B>(n, latent, EVAL_SEED, device),
            latent,
            h,
            w,
        })
    }

    /// Images per side.
    pub fn images(&self) -> usize {
        self.holdout.len()
    }

    /// The train-vs-holdout floor.
    pub fn floor(&self) -> &SwdResult {
        &self.floor
    }

    /// Scores `g` (use an inference-mode generator) against the holdout, with the score's spread.
    pub fn score<B: Backend>(&self, g: &Generator<B>, device: &B::Device) -> (SwdResult, f64) {
        let t = Instant::now();
        let fakes = generate_batched(g, &self.latents, self.latent, 64, device);
        let fake = swd::pyramids(&to_planes(&fakes, self.h, self.w));
        let result =
            swd::swd_with_spread(&fake, &self.holdout, EVAL_SEED, swd::PROBE_SPREAD_ROUNDS);
        (result, t.elapsed().as_secs_f64())
    }
}

/// When the next probe is due: every `every` images, postponed while the time trained since the
/// last probe is under 19x what that probe cost (so probes stay under 5% of training time).
#[derive(Debug, Clone, Default)]
pub struct ProbeSchedule {
    pub every: u64,
    last_cost: f64,
    since_last: Option<Instant>,
}

impl ProbeSchedule {
    pub fn new(every: u64) -> Self {
        ProbeSchedule {
            every,
            ..Default::default()
        }
    }

    /// Whether a probe should run now, `images_seen` images in, with `next_at` the image count
    /// the last probe set.
    pub fn due(&self, images_seen: u64, next_at: u64) -> bool {
        if self.every == 0 || images_seen < next_at {
            return false;
        }
        match self.since_last {
            Some(t) => t.elapsed().as_secs_f64() >= 19.0 * self.last_cost,
            None => true,
        }
    }

    /// Records a probe that took `seconds`.
    pub fn done(&mut self, seconds: f64) {
        self.last_cost = seconds;
        self.since_last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_waits_for_the_image_count_and_keeps_probes_under_5_percent() {
        let mut s = ProbeSchedule::new(100);
        assert!(s.due(0, 0), "the first probe runs at once");
        assert!(!s.due(99, 100) && s.due(100, 100) && s.due(150, 100));
        s.done(0.0); // a free probe: never postponed
        assert!(s.due(100, 100));
        s.done(3600.0); // an hour-long probe: the next one waits 19 hours of training
        assert!(!s.due(1_000_000, 100));
        assert!(!ProbeSchedule::new(0).due(1_000_000, 0), "0 = off");
    }
}
