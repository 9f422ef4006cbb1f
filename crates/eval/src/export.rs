//! `facegan export`: the generator as safetensors (burn-store's PyTorch adapter: the dense
//! layer's weight transposed to `[out, in]`; BatchNorm keeps facegan's `gamma`/`beta` names)
//! and metadata (preset, image size, latent size, epoch, the `[model]` config). The export is
//! read back and checked; docs/export.md lists it tensor by tensor.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use facegan_common::write_atomic;
use facegan_model::Generator;
use facegan_rundir::networks;

use crate::{find_checkpoint, generate::latents, CheckpointChoice};

type B = burn::backend::Flex;

/// Exports and verifies; returns a one-line description.
pub fn export_safetensors(run: &Path, choice: CheckpointChoice, out: &Path) -> Result<String> {
    let (info, state) = find_checkpoint(run, choice)?;
    let device = Default::default();
    let (g, weights) = networks::load_sampling_generator::<B>(&info.dir, &state.config, &device)?;
    let m = &state.config.model;
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("preset", state.config.preset.clone())
        .metadata("height", m.height.to_string())
        .metadata("width", m.width.to_string())
        .metadata("latent", m.latent.to_string())
        .metadata("epoch", state.epoch.to_string())
        .metadata("weights", weights)
        .metadata("images_seen", state.images_seen.to_string())
        .metadata("output", "NCHW RGB in [0, 1]")
        .metadata("model_config", toml::to_string(m).unwrap_or_default());
    g.save_into(&mut store)
        .context("cannot serialize the generator")?;
    let bytes = store
        .get_bytes()
        .context("cannot serialize the generator")?;
    write_atomic(out, &bytes)?;

    // Read back into a fresh generator and compare outputs.
    let mut loaded = Generator::<B>::new(&state.config.model, &device);
    let mut back = SafetensorsStore::from_file(out).with_from_adapter(PyTorchToBurnAdapter);
    let result = loaded
        .load_from(&mut back)
        .with_context(|| format!("{}: exported file does not load back", out.display()))?;
    if !result.missing.is_empty() {
        bail!(
            "{}: tensors missing on reload: {:?}",
            out.display(),
            result.missing
        );
    }
    let z = latents::<B>(4, m.latent, 1, &device);
    let zt = || Tensor::<B, 2>::from_data(TensorData::new(z.clone(), [4, m.latent]), &device);
    let a = g.forward(zt()).into_data().to_vec::<f32>().expect("f32");
    let b = loaded
        .forward(zt())
        .into_data()
        .to_vec::<f32>()
        .expect("f32");
    if a != b {
        bail!(
            "{}: reloaded generator gives different outputs",
            out.display()
        );
    }
    Ok(format!(
        "exported {} (preset {}, {}x{}, latent {}, epoch {}, {} bytes); reloaded outputs identical",
        out.display(),
        state.config.preset,
        m.height,
        m.width,
        m.latent,
        state.epoch,
        bytes.len()
    ))
}
