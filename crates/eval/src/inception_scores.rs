//! FID, KID and precision/recall (k = 3) of the fakes against the same real images SWD uses,
//! on pytorch-fid's Inception-v3 features, when its weight file is given or found (see
//! `facegan_inception::weights`). The reals' features are cached beside the shard, keyed by
//! the exact image bytes, the weights' SHA-256 and the resize, so a second eval pays only for
//! the fakes. Images go in as 8-bit RGB (the generator's output rounded, as a PNG of it would
//! be), the way pytorch-fid reads a folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_inception::{weights, Resize, WeightsId, FEATURES};
use facegan_metrics::fid::{self, Kid};
use serde::{Deserialize, Serialize};

/// The network an eval scores with: the checked weight file and the resize to 299x299
/// (`--fid-resize`).
#[derive(Debug, Clone)]
pub struct InceptionSetup {
    pub weights: WeightsId,
    pub resize: Resize,
}
/// Nearest neighbours of precision and recall.
pub const PR_K: usize = 3;

/// The Inception-based scores of one eval, with what they were computed on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InceptionScores {
    pub fid: f64,
    pub kid: Kid,
    pub precision: f64,
    pub recall: f64,
    pub k: usize,
    pub real_images: usize,
    pub fake_images: usize,
    /// Which reals (the holdout sample SWD uses).
    pub reals: String,
    pub weights: String,
    pub weights_sha256: String,
    pub resize: String,
    /// Whether the reals' features came from the cache.
    pub real_features_cached: bool,
    pub seconds: f64,
}

impl InceptionScores {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "FID {:.2}, KID {}, precision {:.3}, recall {:.3} ({} real vs {} fake images, {}{}{})",
            self.fid,
            kid_text(&self.kid, self.real_images.min(self.fake_images)),
            self.precision,
            self.recall,
            self.real_images,
            self.fake_images,
            self.reals,
            if self.resize == Resize::default().description() {
                String::new()
            } else {
                format!("; resize {}", self.resize)
            },
            if self.weights_sha256 == weights::SHA256 {
                String::new()
            } else {
                format!("; {}", self.weights)
            }
        )
    }
}

/// KID with its spread; when every subset is the whole set (n at most clean-fid's 1,000) the
/// subsets cannot spread, and the text says so instead of printing ± 0.
pub fn kid_text(kid: &Kid, n: usize) -> String {
    if kid.subset_size >= n {
        format!(
            "{:.5} (one subset: all {n} images; a spread over subsets needs more than {})",
            kid.mean,
            fid::KID_MAX_SUBSET
        )
    } else {
        format!(
            "{:.5} ± {:.5} (std over {} subsets of {})",
            kid.mean, kid.std, kid.subsets, kid.subset_size
        )
    }
}

/// `[n, 3, h, w]` f32 planes in [0, 1] as `n` images of `h * w * 3` RGB bytes.
pub fn planes_to_rgb(planes: &[f32], h: usize, w: usize) -> Vec<Vec<u8>> {
    planes
        .chunks_exact(3 * h * w)
        .map(|img| {
            let mut out = vec![0u8; 3 * h * w];
            for p in 0..h * w {
                for c in 0..3 {
                    out[3 * p + c] = (img[c * h * w + p].clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            out
        })
        .collect()
}

/// Where the features of `reals` are cached: `SHARD.inception/KEY-N.f32`, KEY a hash of the
/// images' bytes, the weights' SHA-256 and the resize.
fn cache_path(shard: &Path, reals: &[Vec<u8>], setup: &InceptionSetup) -> PathBuf {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for img in reals {
        h.update(img);
    }
    h.update(setup.weights.sha256.as_bytes());
    h.update(setup.resize.description().as_bytes());
    let mut dir = shard.as_os_str().to_owned();
    dir.push(".inception");
    PathBuf::from(dir).join(format!("{:016x}-{}.f32", h.digest(), reals.len()))
}

fn read_cache(path: &Path, n: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() == n * FEATURES * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

/// Features of 8-bit RGB images of `h` x `w`.
fn features<B: Backend>(
    net: &facegan_inception::FidInception<B>,
    images: &[Vec<u8>],
    h: usize,
    w: usize,
    resize: Resize,
    device: &B::Device,
) -> Vec<f32> {
    facegan_inception::features::<B>(net, images.len(), h, w, resize, |i| &images[i], device)
}

/// Scores `fakes` against `reals` (both `[n, 3, h, w]` planes in [0, 1]) with `setup`'s
/// network; `shard` locates the reals' feature cache, `seed` the KID subsets.
#[allow(clippy::too_many_arguments)]
pub fn score<B: Backend>(
    setup: &InceptionSetup,
    shard: &Path,
    reals: &[f32],
    fakes: &[f32],
    h: usize,
    w: usize,
    seed: u64,
    device: &B::Device,
) -> Result<InceptionScores> {
    let start = Instant::now();
    let (id, resize) = (&setup.weights, setup.resize);
    let net = weights::load::<B>(id, device)?;
    let real_rgb = planes_to_rgb(reals, h, w);
    let fake_rgb = planes_to_rgb(fakes, h, w);
    let cache = cache_path(shard, &real_rgb, setup);
    let (real_f, cached) = match read_cache(&cache, real_rgb.len()) {
        Some(f) => (f, true),
        None => {
            let f = features(&net, &real_rgb, h, w, resize, device);
            let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
            let written = cache
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .map_err(anyhow::Error::from)
                .and_then(|_| Ok(facegan_common::write_atomic(&cache, &bytes)?));
            if let Err(e) = written {
                eprintln!(
                    "note: the real images' Inception features are not cached ({}: {e})",
                    cache.display()
                );
            }
            (f, false)
        }
    };
    let fake_f = features(&net, &fake_rgb, h, w, resize, device);
    let fid = fid::fid(
        &fid::FeatureStats::of(&real_f, FEATURES)?,
        &fid::FeatureStats::of(&fake_f, FEATURES)?,
    )?;
    let kid = fid::kid(
        &real_f,
        &fake_f,
        FEATURES,
        fid::KID_SUBSETS,
        fid::KID_MAX_SUBSET,
        seed,
    )?;
    let (precision, recall) = fid::precision_recall(&real_f, &fake_f, FEATURES, PR_K)?;
    Ok(InceptionScores {
        fid,
        kid,
        precision,
        recall,
        k: PR_K,
        real_images: real_rgb.len(),
        fake_images: fake_rgb.len(),
        reals: "holdout".into(),
        weights: id.label(),
        weights_sha256: id.sha256.clone(),
        resize: resize.description().into(),
        real_features_cached: cached,
        seconds: start.elapsed().as_secs_f64(),
    })
}
