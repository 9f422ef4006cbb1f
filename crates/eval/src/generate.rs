//! Running a trained generator (eval mode) and discriminator in batches, and spherical
//! interpolation between latents.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use facegan_model::{Discriminator, Generator};

const BATCH: usize = 64;

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
    let per = 3 * h * w;
    let n = images.len() / per;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        let m = BATCH.min(n - start);
        let x = Tensor::<B, 4>::from_data(
            TensorData::new(
                images[start * per..(start + m) * per].to_vec(),
                [m, 3, h, w],
            ),
            device,
        );
        let p = burn::tensor::activation::sigmoid(d.forward(x));
        out.extend(p.into_data().to_vec::<f32>().expect("f32"));
    }
    out
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
