//! `facegan eval --truncation-sweep`: the truncation trick's trade measured. The eval's own
//! latents, scaled toward the prior's mean by each PSI of `sample::SWEEP_PSI`, scored like the
//! untruncated fakes: SWD against the same reference with its spread, and FID, KID and
//! precision/recall when Inception weights are present (precision should rise and recall fall
//! as PSI drops: fidelity bought with variety). Also `truncation.png`, one row of faces per PSI.

use std::path::Path;

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_common::images::{chw_to_rgb_images, grid, save_png};
use serde::Serialize;

use crate::generate::{generate, latents, to_planes, Models};
use crate::inception_scores::{self, InceptionScores, InceptionSetup};
use crate::inputs::Reference;
use crate::sample::{truncate, SWEEP_PSI};
use crate::swd::{self, SwdResult};

/// The faces per row of `truncation.png`.
const GRID_COLUMNS: usize = 8;

/// The scores at one PSI.
#[derive(Debug, Clone, Serialize)]
pub struct TruncationScore {
    pub psi: f32,
    pub swd: SwdResult,
    pub inception: Option<InceptionScores>,
}

/// Scores `n` fakes per PSI of [`SWEEP_PSI`] (the eval's latents, seeded by `seed`) against
/// `reference`, and writes `truncation.png` into `out_dir`. PSI 1 is the eval's own fakes
/// (`untruncated`, `[n, 3, h, w]`) with the scores it already has (`untruncated_scores`):
/// they are not generated or scored again.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sweep<B: Backend>(
    models: &Models<B>,
    reference: &Reference,
    (h, w): (usize, usize),
    untruncated: &[f32],
    untruncated_scores: (&SwdResult, Option<&InceptionScores>),
    seed: u64,
    inception: Option<(&InceptionSetup, &Path)>,
    out_dir: &Path,
    device: &B::Device,
) -> Result<Vec<TruncationScore>> {
    let per_image = 3 * h * w;
    let n = (untruncated.len() / per_image).min(reference.n);
    let grid_faces =
        |fakes: &[f32]| chw_to_rgb_images(&fakes[..GRID_COLUMNS.min(n) * per_image], h, w);
    let mut rows = grid_faces(untruncated);
    let mut scores = vec![TruncationScore {
        psi: 1.0,
        swd: untruncated_scores.0.clone(),
        inception: untruncated_scores.1.cloned(),
    }];
    let real = &reference.images[..n * per_image];
    let pyr_ref = swd::pyramids(&to_planes(real, h, w));
    let z = latents::<B>(n, models.latent, seed, device);
    for psi in SWEEP_PSI.into_iter().filter(|&psi| psi != 1.0) {
        let mut zt = z.clone();
        truncate(&mut zt, psi);
        let fakes = generate(&models.g, &zt, models.latent, device);
        rows.extend(grid_faces(&fakes));
        let pyr = swd::pyramids(&to_planes(&fakes, h, w));
        let swd = swd::swd_with_spread(&pyr, &pyr_ref, seed, swd::SPREAD_ROUNDS);
        let inception = match inception {
            Some((setup, shard)) => Some(inception_scores::score::<B>(
                setup, shard, real, &fakes, h, w, seed, device,
            )?),
            None => None,
        }
        .map(|mut s| {
            s.reals = reference.name.clone();
            s
        });
        scores.push(TruncationScore {
            psi,
            swd,
            inception,
        });
    }
    save_png(
        &out_dir.join("truncation.png"),
        &grid(&rows, GRID_COLUMNS.min(n)),
    )?;
    Ok(scores)
}

/// One line per PSI for the terminal.
pub fn summary(scores: &[TruncationScore]) -> Vec<String> {
    scores
        .iter()
        .map(|s| {
            let spread = s
                .swd
                .spread
                .as_ref()
                .map_or(String::new(), |p| format!(" ± {:.2}", p.average));
            let finest = s.swd.finest();
            let pr = s.inception.as_ref().map_or(String::new(), |i| {
                format!(
                    ", FID {:.2}, precision {:.3}, recall {:.3}",
                    i.fid, i.precision, i.recall
                )
            });
            format!(
                "truncation PSI {}: SWD {:.2}{spread} (finest {finest:.2}){pr}",
                s.psi, s.swd.average
            )
        })
        .collect()
}
