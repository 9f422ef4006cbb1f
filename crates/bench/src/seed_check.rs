//! The `seed` step's check against the tutorial's own Keras code (`make check-seed`,
//! `tools/keras_seed_oracle.py`): fixed inputs both frameworks can reproduce, and a dump of
//! facegan's side (initial weights, inputs, forward outputs, per-step losses, weights after
//! [`STEPS`] steps) for the oracle to compare with. Dropout is switched off in both (its masks
//! are random draws that two frameworks cannot share); everything else is the `seed` preset.
//!
//! The dump is `index.json` (name, shape and f32 offset of each tensor, facegan's NCHW layouts)
//! beside `tensors.bin` (little-endian f32).

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use facegan_model::{Discriminator, Generator};
use serde::{Deserialize, Serialize};

use facegan_trainer::gan::Gan;
use facegan_trainer::TrainConfig;

/// Images per step in the check.
pub const BATCH: usize = 8;
/// Steps compared.
pub const STEPS: usize = 3;

/// The `seed` preset with dropout off: what both frameworks run.
pub fn check_config() -> TrainConfig {
    let mut cfg = TrainConfig::preset("seed").expect("the seed preset exists");
    cfg.model.d_dropout = 0.0;
    cfg
}

/// SplitMix64: a tiny generator both this crate and the Python oracle could write, though the
/// oracle reads the values from the dump.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Step `step`'s real batch, `[BATCH, 3, H, W]` in [0, 1] (multiples of 1/255, like pixels):
/// a smooth per-image gradient plus noise, so BatchNorm sees structure.
pub fn real_batch(cfg: &TrainConfig, step: usize) -> Vec<f32> {
    let (h, w) = (cfg.model.height, cfg.model.width);
    let mut s = 0xFACE_0000 + step as u64;
    let mut out = Vec::with_capacity(BATCH * 3 * h * w);
    for n in 0..BATCH {
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let base = 96.0 + 64.0 * ((y as f32 / h as f32) + (c as f32 - n as f32 * 0.1));
                    let jitter = (splitmix(&mut s) % 64) as f32;
                    out.push((base + jitter + x as f32 * 0.5).clamp(0.0, 255.0).round() / 255.0);
                }
            }
        }
    }
    out
}

/// Step `step`'s latent batch, `[BATCH, latent]`, uniform in [-2, 2).
pub fn noise_batch(cfg: &TrainConfig, step: usize) -> Vec<f32> {
    let mut s = 0x0015_E000 + step as u64;
    (0..BATCH * cfg.model.latent)
        .map(|_| (splitmix(&mut s) >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0)
        .collect()
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    (
        shape,
        t.into_data().convert::<f32>().to_vec().expect("f32 tensor"),
    )
}

/// Every weight and BatchNorm statistic of G and D, named, in facegan's layouts.
pub fn named_weights<B: Backend>(
    g: &Generator<B>,
    d: &Discriminator<B>,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut put = |name: String, (shape, v): (Vec<usize>, Vec<f32>)| out.push((name, shape, v));
    put("g.project.weight".into(), values(g.project.weight.val()));
    for (i, b) in g.blocks.iter().enumerate() {
        let t = b
            .conv
            .transposed
            .as_ref()
            .expect("the seed's G upsamples by transposed conv");
        put(format!("g.up{i}.weight"), values(t.weight.val()));
        put(
            format!("g.up{i}.bias"),
            values(t.bias.as_ref().expect("bias").val()),
        );
        if let Some(n) = &b.norm {
            batchnorm_weights(&format!("g.bn{i}"), n, &mut put);
        }
    }
    put("g.to_rgb.weight".into(), values(g.to_rgb.weight.val()));
    put(
        "g.to_rgb.bias".into(),
        values(g.to_rgb.bias.as_ref().expect("bias").val()),
    );
    for (i, b) in d.blocks.iter().enumerate() {
        put(format!("d.conv{i}.weight"), values(b.conv.weight.val()));
        put(
            format!("d.conv{i}.bias"),
            values(b.conv.bias.as_ref().expect("bias").val()),
        );
        if let Some(n) = &b.norm {
            batchnorm_weights(&format!("d.bn{i}"), n, &mut put);
        }
    }
    put("d.head.weight".into(), values(d.head.weight.val()));
    put(
        "d.head.bias".into(),
        values(d.head.bias.as_ref().expect("bias").val()),
    );
    out
}

/// A BatchNorm's gamma, beta and (synced) running statistics, named `PREFIX.gamma` etc.
fn batchnorm_weights<B: Backend>(
    prefix: &str,
    n: &facegan_model::layers::BatchNorm2d<B>,
    put: &mut impl FnMut(String, (Vec<usize>, Vec<f32>)),
) {
    put(format!("{prefix}.gamma"), values(n.gamma.val()));
    put(format!("{prefix}.beta"), values(n.beta.val()));
    put(
        format!("{prefix}.mean"),
        values(n.running_mean.value_sync()),
    );
    put(format!("{prefix}.var"), values(n.running_var.value_sync()));
}

/// Per-step outputs of facegan's side: `[loss_d, loss_g, mean D(x), mean D(G(z))]`.
pub fn run_steps<B: AutodiffBackend>(
    gan: &mut Gan<B>,
    cfg: &TrainConfig,
    steps: usize,
) -> Vec<[f32; 4]> {
    let device = B::Device::default();
    let (h, w, latent) = (cfg.model.height, cfg.model.width, cfg.model.latent);
    (0..steps)
        .map(|k| {
            let real = Tensor::<B, 4>::from_data(
                TensorData::new(real_batch(cfg, k), [BATCH, 3, h, w]),
                &device,
            );
            let z = Tensor::<B, 2>::from_data(
                TensorData::new(noise_batch(cfg, k), [BATCH, latent]),
                &device,
            );
            let stats = gan.step_with_noise(real, z, k as u64);
            let v = stats
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("stats");
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct IndexEntry {
    name: String,
    shape: Vec<usize>,
    offset: usize,
}

/// Writes facegan's side of the check to `dir` (see the module doc).
pub fn write_dump<B: AutodiffBackend>(dir: &Path) -> Result<()> {
    let cfg = check_config();
    let device = B::Device::default();
    let (h, w, latent) = (cfg.model.height, cfg.model.width, cfg.model.latent);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut gan = Gan::<B>::new(&cfg, &device);
    for (name, shape, v) in named_weights(&gan.g, &gan.d) {
        tensors.push((format!("init.{name}"), shape, v));
    }
    for k in 0..STEPS {
        tensors.push((
            format!("real.{k}"),
            vec![BATCH, 3, h, w],
            real_batch(&cfg, k),
        ));
        tensors.push((
            format!("noise.{k}"),
            vec![BATCH, latent],
            noise_batch(&cfg, k),
        ));
    }
    // Forward outputs of the initial networks, on a second copy built from the same seed (a
    // training-mode forward moves BatchNorm's running statistics).
    {
        let probe = Gan::<B>::new(&cfg, &device);
        let z = Tensor::<B, 2>::from_data(
            TensorData::new(noise_batch(&cfg, 0), [BATCH, latent]),
            &device,
        );
        let real = Tensor::<B, 4>::from_data(
            TensorData::new(real_batch(&cfg, 0), [BATCH, 3, h, w]),
            &device,
        );
        let (g_eval, d_eval) = (probe.g.valid(), probe.d.valid());
        let (s, v) = values(g_eval.forward(z.clone().inner()));
        tensors.push(("forward.g_infer".into(), s, v));
        let (s, v) = values(sigmoid(d_eval.forward(real.clone().inner())));
        tensors.push(("forward.d_infer".into(), s, v));
        let (s, v) = values(probe.g.forward(z).inner());
        tensors.push(("forward.g_train".into(), s, v));
        let (s, v) = values(sigmoid(probe.d.forward(real).inner()));
        tensors.push(("forward.d_train".into(), s, v));
    }
    let stats = run_steps(&mut gan, &cfg, STEPS);
    for (k, s) in stats.iter().enumerate() {
        tensors.push((format!("stats.{k}"), vec![4], s.to_vec()));
    }
    for (name, shape, v) in named_weights(&gan.g, &gan.d) {
        tensors.push((format!("final.{name}"), shape, v));
    }

    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut data = Vec::new();
    let mut index = Vec::new();
    for (name, shape, v) in tensors {
        index.push(IndexEntry {
            name,
            shape,
            offset: data.len() / 4,
        });
        for x in v {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(dir.join("tensors.bin"), data)
        .with_context(|| format!("{}: cannot write tensors.bin", dir.display()))?;
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_string_pretty(&index)?,
    )
    .with_context(|| format!("{}: cannot write index.json", dir.display()))?;
    Ok(())
}
