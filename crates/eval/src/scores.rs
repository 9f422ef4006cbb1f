//! The numbers of an evaluation: the SWD of the fakes against the holdout beside the
//! train-vs-holdout noise floor, and the accuracy of D ([`DAccuracy`]) on reals and fakes.

use std::time::Instant;

use burn::tensor::backend::Backend;
use facegan_model::Discriminator;
use serde::Serialize;

use crate::generate::{discriminate, to_planes};
use crate::inputs::{Fakes, Reals, Reference};
use crate::swd::{self, SwdResult};

/// Accuracy of D (threshold 0.5) on reals and fakes, and its mean outputs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DAccuracy {
    pub real: f64,
    pub fake: f64,
    pub balanced: f64,
    pub mean_d_real: f64,
    pub mean_d_fake: f64,
    pub n_real: usize,
    pub n_fake: usize,
}

impl DAccuracy {
    /// From D's probabilities on real and fake images.
    pub fn from_probs(real: &[f32], fake: &[f32]) -> Self {
        let frac = |v: &[f32], f: &dyn Fn(f32) -> bool| {
            v.iter().filter(|&&p| f(p)).count() as f64 / v.len().max(1) as f64
        };
        let mean = |v: &[f32]| v.iter().map(|&p| p as f64).sum::<f64>() / v.len().max(1) as f64;
        let r = frac(real, &|p| p > 0.5);
        let f = frac(fake, &|p| p <= 0.5);
        DAccuracy {
            real: r,
            fake: f,
            balanced: (r + f) / 2.0,
            mean_d_real: mean(real),
            mean_d_fake: mean(fake),
            n_real: real.len(),
            n_fake: fake.len(),
        }
    }
}

/// SWD of the fakes and of the train sample, both against the holdout sample.
pub(crate) struct SwdScores {
    pub fake_vs_holdout: SwdResult,
    /// The noise floor: what two samples of real faces score.
    pub train_vs_holdout: SwdResult,
    pub seconds: f64,
}

/// SWD against the reference set on as many images per side as both have (pyramids built once
/// per set), and the floor (the reference's second real sample against it), each with its
/// spread.
pub(crate) fn swd_scores(
    reference: &Reference,
    fakes: &Fakes,
    (h, w): (usize, usize),
    seed: u64,
) -> SwdScores {
    let t = Instant::now();
    let n = fakes.n_side.min(reference.n);
    let pyr_hold = swd::pyramids(&to_planes(&reference.images, h, w));
    let pyr_train = swd::pyramids(&to_planes(&reference.second, h, w));
    let pyr_fake = swd::pyramids(&to_planes(&fakes.images, h, w));
    let rounds = swd::SPREAD_ROUNDS;
    let fake_vs_holdout = swd::swd_with_spread(&pyr_fake[..n], &pyr_hold[..n], seed, rounds);
    let train_vs_holdout = swd::swd_with_spread(&pyr_train[..n], &pyr_hold[..n], seed, rounds);
    SwdScores {
        fake_vs_holdout,
        train_vs_holdout,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// D's accuracy (eval mode) on the holdout sample and on the train sample, each against the
/// same `n_side` fakes: `(holdout, train)`.
pub(crate) fn d_accuracy<B: Backend>(
    d: &Discriminator<B>,
    reals: &Reals,
    fakes: &Fakes,
    device: &B::Device,
) -> (DAccuracy, DAccuracy) {
    let (h, w) = (reals.h, reals.w);
    let p_fake = discriminate(
        d,
        &fakes.images[..fakes.n_side * reals.per_image()],
        h,
        w,
        device,
    );
    let p_hold = discriminate(d, &reals.holdout, h, w, device);
    let p_train = discriminate(d, &reals.train, h, w, device);
    (
        DAccuracy::from_probs(&p_hold, &p_fake),
        DAccuracy::from_probs(&p_train, &p_fake),
    )
}
