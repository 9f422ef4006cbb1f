//! A checkpoint's networks ([`Models`]), run in eval mode in batches: latents to images, images
//! to D's probabilities; and spherical interpolation between latents.

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_model::{Discriminator, Generator};
use facegan_rundir::checkpoint::CheckpointInfo;
use facegan_rundir::{networks, TrainState};

const BATCH: usize = 64;

/// The networks of one checkpoint, loaded for inference.
pub struct Models<B: Backend> {
    /// The sampling generator: the EMA weights when the checkpoint has them.
    pub g: Generator<B>,
    pub d: Discriminator<B>,
    pub latent: usize,
    /// Which generator weights `g` holds (the checkpoint file's stem).
    pub weights: &'static str,
}

impl<B: Backend> Models<B> {
    pub fn load((info, state): &(CheckpointInfo, TrainState), device: &B::Device) -> Result<Self> {
        let (g, weights) =
            networks::load_sampling_generator::<B>(&info.dir, &state.config, device)?;
        let d = networks::load_discriminator::<B>(&info.dir, &state.config, device)?;
        Ok(Models {
            g,
            d,
            latent: state.config.model.latent,
            weights,
        })
    }
}

/// Seeded standard-normal latents `[n, latent]`, row-major.
pub fn latents<B: Backend>(n: usize, latent: usize, seed: u64, device: &B::Device) -> Vec<f32> {
    facegan_model::generator::seeded_latents::<B>(n, latent, seed, device)
}

/// Generates images from latents; returns `[n, 3, H, W]` floats in [0, 1].
pub fn generate<B: Backend>(
    g: &Generator<B>,
    z: &[f32],
    latent: usize,
    device: &B::Device,
) -> Vec<f32> {
    facegan_model::generator::generate_batched(g, z, latent, BATCH, device)
}

/// D's probability of "real" for each `[3, H, W]` image in [0, 1] (eval mode).
pub fn discriminate<B: Backend>(
    d: &Discriminator<B>,
    images: &[f32],
    h: usize,
    w: usize,
    device: &B::Device,
) -> Vec<f32> {
    facegan_model::generator::in_batches(
        images,
        3 * h * w,
        BATCH,
        |m| [m, 3, h, w],
        device,
        |x| {
            let p = burn::tensor::activation::sigmoid(d.forward(x));
            p.into_data().to_vec::<f32>().expect("f32")
        },
    )
}

/// Spherical interpolation between two latents.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = (dot / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.abs() < 1e-5 {
        return a.iter().zip(b).map(|(x, y)| x + (y - x) * t).collect();
    }
    let s = omega.sin();
    let (wa, wb) = (((1.0 - t) * omega).sin() / s, (t * omega).sin() / s);
    a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
}

pub use facegan_metrics::swd::to_planes;
