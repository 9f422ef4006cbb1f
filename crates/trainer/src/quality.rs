//! The live quality curve: every `eval_every` images the trainer scores the generator it samples
//! from (the EMA when there is one, in eval mode) against the shard's holdout, with the eval
//! stage's sliced Wasserstein distance ([`facegan_metrics::swd`]) on fixed latents. It uses eval's
//! seed (7) and holdout sample, so when both score as many images (`eval_images` per side here,
//! `--n` there; both capped at the holdout's size) the last point of the curve is the number
//! `facegan eval` reports for the same weights (the end-to-end test checks this).
//!
//! The holdout's pyramids and the train-vs-holdout floor are computed once, when training starts;
//! each probe then costs one batched G forward, the fakes' pyramids and one SWD.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_metrics::swd::{self, sample_ids, to_planes, Planes, SwdResult};
use facegan_model::generator::{generate_batched, seeded_latents};
use facegan_model::Generator;
use facegan_shard::{Shard, Split};
use serde::{Deserialize, Serialize};

/// `facegan eval`'s default seed: the probe uses the same holdout sample and latents.
pub const EVAL_SEED: u64 = 7;

/// One point of the quality curve (a row of `quality.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityPoint {
    pub step: u64,
    pub images_seen: u64,
    /// Training wall time so far (what `--minutes` counts), in minutes.
    pub train_minutes: f64,
    /// SWD x1e3, the average over pyramid levels.
    pub swd: f64,
    /// SWD of the finest pyramid level (full resolution).
    pub swd_finest: f64,
    /// The train-vs-holdout floor (average, finest level) at the same image count.
    pub floor: f64,
    pub floor_finest: f64,
    /// Seconds this probe took.
    pub probe_seconds: f64,
}

impl QualityPoint {
    pub const CSV_COLUMNS: [&'static str; 8] = [
        "step",
        "images_seen",
        "train_minutes",
        "swd",
        "swd_finest",
        "floor",
        "floor_finest",
        "probe_seconds",
    ];

    /// The row's fields as written: minutes and probe seconds to 3 decimals, scores in full.
    fn csv_fields(&self) -> [String; 8] {
        [
            self.step.to_string(),
            self.images_seen.to_string(),
            format!("{:.3}", self.train_minutes),
            self.swd.to_string(),
            self.swd_finest.to_string(),
            self.floor.to_string(),
            self.floor_finest.to_string(),
            format!("{:.3}", self.probe_seconds),
        ]
    }
}

/// Reads `quality.csv` (a missing file is an empty curve); names the file and line on a bad row.
pub fn read_quality(path: &Path) -> Result<Vec<QualityPoint>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<QualityPoint>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: bad quality row: {e}", path.display()))
}

/// Writes the whole curve (with the header) to `quality.csv`, atomically.
pub fn write_quality(path: &Path, rows: &[QualityPoint]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(QualityPoint::CSV_COLUMNS)?;
    for r in rows {
        w.write_record(r.csv_fields())?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("CSV buffer: {e}"))?;
    Ok(facegan_common::write_atomic(path, &bytes)?)
}

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
        let floor = swd::swd(&train, &holdout, EVAL_SEED);
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

    /// Scores `g` (use an inference-mode generator) against the holdout.
    pub fn score<B: Backend>(&self, g: &Generator<B>, device: &B::Device) -> (SwdResult, f64) {
        let t = Instant::now();
        let fakes = generate_batched(g, &self.latents, self.latent, 64, device);
        let fake = swd::pyramids(&to_planes(&fakes, self.h, self.w));
        let result = swd::swd(&fake, &self.holdout, EVAL_SEED);
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
