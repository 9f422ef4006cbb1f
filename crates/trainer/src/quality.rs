//! The live quality curve: every `eval_every` images the trainer scores the generator it samples
//! from (the EMA when there is one, in eval mode) against the shard's holdout, with the eval
//! stage's sliced Wasserstein distance ([`facegan_metrics::swd`]) on fixed latents. It uses eval's
//! seed (7) and holdout sample, so when both score as many images (`eval_images` per side here,
//! `--n` there; both capped at the holdout's size) the last point of the curve is the number
//! `facegan eval` reports for the same weights (the end-to-end test checks this).
//!
//! The holdout's pyramids and the train-vs-holdout floor are computed once, when training starts;
//! each probe then costs one batched G forward, the fakes' pyramids and one SWD. A growing run
//! (progressive growing) is scored below its full size against the holdout shrunk to that size
//! (2x2-block means, as its real images), with a floor at that size, each made on first use. A
//! probe's cost ([`ProbeScore::seconds`], which spaces the next probe) is the scoring alone: that
//! one-time preparation is timed apart ([`ProbeScore::prepared_seconds`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::tensor::backend::Backend;
use facegan_metrics::swd::{self, sample_ids, to_planes, Planes, SwdResult};
use facegan_model::generator::{generate_batched_at, seeded_latents};
use facegan_model::{Generator, Level, ModelConfig};
pub use facegan_rundir::quality_csv::{read_quality, write_quality, QualityPoint};
use facegan_shard::{Shard, Split};

/// `facegan eval`'s default seed: the probe uses the same holdout sample and latents.
pub const EVAL_SEED: u64 = 7;

/// The holdout's pyramids at one size, and the train-vs-holdout floor there.
type Reference = (Vec<Vec<Planes>>, SwdResult);

/// What the probe compares against, prepared once per training process.
pub struct QualityProbe {
    holdout: Vec<Vec<Planes>>,
    floor: SwdResult,
    latents: Vec<f32>,
    latent: usize,
    h: usize,
    w: usize,
    shard: Arc<Shard>,
    holdout_ids: Vec<usize>,
    train_ids: Vec<usize>,
    /// The holdout's pyramids and the floor at smaller sizes, by shrink factor (made on first
    /// use).
    smaller: Mutex<HashMap<usize, Arc<Reference>>>,
}

/// One probe's result: the score, the floor it is measured against, and the size it scored
/// (`None`: the full size).
pub struct ProbeScore {
    pub swd: SwdResult,
    pub floor: SwdResult,
    pub size: Option<(usize, usize)>,
    /// The scoring's seconds: G's forward, the fakes' pyramids and the SWD.
    pub seconds: f64,
    /// Seconds spent making this size's holdout pyramids and floor, on the first probe at a
    /// smaller size (0 once made, and always 0 at the full size, prepared with the probe).
    pub prepared_seconds: f64,
}

/// `[3, H, W]` planes of `pixels` (HWC u8) shrunk `factor` times (means of `factor x factor`
/// blocks), on the [0, 255] scale.
fn shrunk_planes(pixels: &[u8], h: usize, w: usize, factor: usize) -> Planes {
    let (sh, sw) = (h / factor, w / factor);
    let mut data = vec![0f32; 3 * sh * sw];
    for y in 0..sh * factor {
        for x in 0..sw * factor {
            for c in 0..3 {
                data[(c * sh + y / factor) * sw + x / factor] +=
                    f32::from(pixels[(y * w + x) * 3 + c]);
            }
        }
    }
    let scale = 1.0 / (factor * factor) as f32;
    data.iter_mut().for_each(|v| *v *= scale);
    Planes::new(sh, sw, data)
}

impl QualityProbe {
    /// Prepares the probe, or `None` when the shard has no holdout (nothing to score against).
    /// Reseeds the backend RNG (for the latents): call it before training steps, which reseed
    /// it themselves every step.
    pub fn new<B: Backend>(
        shard: &Arc<Shard>,
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
        let holdout_ids = sample_ids(&holdout, n, EVAL_SEED ^ 1);
        let train_ids = sample_ids(&train, n, EVAL_SEED ^ 2);
        let (holdout, floor) = pyramids_and_floor(shard, &holdout_ids, &train_ids, 1);
        Some(QualityProbe {
            holdout,
            floor,
            latents: seeded_latents::<B>(n, latent, EVAL_SEED, device),
            latent,
            h,
            w,
            shard: shard.clone(),
            holdout_ids,
            train_ids,
            smaller: Mutex::new(HashMap::new()),
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

    /// Scores `g` (use an inference-mode generator) at `level` (`model` gives its size; `None`
    /// or the full level: the full size) against the holdout at that size, with the score's
    /// spread and that size's floor.
    pub fn score_at<B: Backend>(
        &self,
        g: &Generator<B>,
        level: Level,
        model: Option<&ModelConfig>,
        device: &B::Device,
    ) -> ProbeScore {
        let (h, w) = model.map_or((self.h, self.w), |m| level.size(m));
        let factor = self.h / h;
        let prepare = Instant::now();
        let smaller = (factor > 1).then(|| self.smaller_size(factor));
        let prepared = smaller.as_ref().is_some_and(|(_, made)| *made);
        let prepared_seconds = match prepared {
            true => prepare.elapsed().as_secs_f64(),
            false => 0.0,
        };
        let (holdout, floor) = match &smaller {
            Some((s, _)) => (&s.0, &s.1),
            None => (&self.holdout, &self.floor),
        };
        let t = Instant::now();
        let fakes = generate_batched_at(g, &self.latents, self.latent, 64, level, device);
        let fake = swd::pyramids(&to_planes(&fakes, h, w));
        let swd = swd::swd_with_spread(&fake, holdout, EVAL_SEED, swd::PROBE_SPREAD_ROUNDS);
        ProbeScore {
            swd,
            floor: floor.clone(),
            size: (factor > 1 || level.fading()).then_some((h, w)),
            seconds: t.elapsed().as_secs_f64(),
            prepared_seconds,
        }
    }

    /// The holdout's pyramids and the floor at `factor` times smaller, made once; `true` when
    /// this call made them.
    fn smaller_size(&self, factor: usize) -> (Arc<Reference>, bool) {
        let mut cache = self.smaller.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(made) = cache.get(&factor) {
            return (made.clone(), false);
        }
        let made = Arc::new(pyramids_and_floor(
            &self.shard,
            &self.holdout_ids,
            &self.train_ids,
            factor,
        ));
        cache.insert(factor, made.clone());
        (made, true)
    }
}

/// The holdout images' pyramids and the train-vs-holdout floor (with its spread), at the
/// shard's size shrunk `factor` times.
fn pyramids_and_floor(
    shard: &Shard,
    holdout_ids: &[usize],
    train_ids: &[usize],
    factor: usize,
) -> Reference {
    let (h, w) = (shard.height(), shard.width());
    let pyramids_of = |ids: &[usize]| {
        let planes: Vec<Planes> = ids
            .iter()
            .map(|&i| match factor {
                1 => Planes::from_hwc_u8(h, w, shard.image(i)),
                f => shrunk_planes(shard.image(i), h, w, f),
            })
            .collect();
        swd::pyramids(&planes)
    };
    let holdout = pyramids_of(holdout_ids);
    let train = pyramids_of(train_ids);
    let floor = swd::swd_with_spread(&train, &holdout, EVAL_SEED, swd::SPREAD_ROUNDS);
    (holdout, floor)
}

/// When the next probe is due: every `every` images, postponed while the time trained since the
/// last probe is under `1 / share - 1` times what that probe cost (so probes stay under `share`
/// of training time: 19x at the default 0.05; share 1 never postpones).
#[derive(Debug, Clone, Default)]
pub struct ProbeSchedule {
    pub every: u64,
    share: f64,
    last_cost: f64,
    since_last: Option<Instant>,
}

impl ProbeSchedule {
    pub fn new(every: u64, share: f64) -> Self {
        ProbeSchedule {
            every,
            share,
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
            Some(t) => t.elapsed().as_secs_f64() >= (1.0 / self.share - 1.0) * self.last_cost,
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
        let mut s = ProbeSchedule::new(100, 0.05);
        assert!(s.due(0, 0), "the first probe runs at once");
        assert!(!s.due(99, 100) && s.due(100, 100) && s.due(150, 100));
        s.done(0.0); // a free probe: never postponed
        assert!(s.due(100, 100));
        s.done(3600.0); // an hour-long probe: the next one waits 19 hours of training
        assert!(!s.due(1_000_000, 100));
        assert!(!ProbeSchedule::new(0, 0.05).due(1_000_000, 0), "0 = off");
    }

    #[test]
    fn a_time_share_of_1_probes_at_every_count_however_long_a_probe_takes() {
        let mut s = ProbeSchedule::new(100, 1.0);
        s.done(3600.0);
        assert!(!s.due(199, 200) && s.due(200, 200));
        let mut half = ProbeSchedule::new(100, 0.5);
        half.done(3600.0); // waits as long as the probe took
        assert!(!half.due(200, 200));
    }
}
