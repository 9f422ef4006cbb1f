//! facegan-latents: the latent file, one format for every command that reads or writes
//! generator inputs (`sample --latents` / `--save-latents`, `interp`, `project`).
//!
//! A safetensors file (readable by any safetensors library) holding one tensor, `z`: f32,
//! `[n, latent]`, row `i` the input of face `i`. Its metadata (all strings):
//! - `format`: `facegan-latents`; `version`: `1` (a reader refuses other values);
//! - `latent`: the latent size, `count`: n;
//! - `model`: the generator's `[model]` config as TOML (the networks the latents were made
//!   for; a file for another model is refused with the settings that differ);
//! - `run` and `checkpoint`: the run directory and checkpoint folder the latents came from;
//! - `source`: how they were made (`seed 7`, `seed 7, truncation 0.7`, `projected from
//!   face.jpg`, `slerp of ...`).
//!
//! Latents drawn from a seed (facegan's prior is N(0, I)) suit any run with the same latent
//! size; projected ones fit the generator they were found for, and `run` says which.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The `format` value.
pub const FORMAT: &str = "facegan-latents";
/// The `version` this code writes and reads.
pub const VERSION: &str = "1";
/// The tensor's name.
pub const TENSOR: &str = "z";

/// Latents and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Latents {
    /// `[count * latent]`, row-major.
    pub z: Vec<f32>,
    pub latent: usize,
    /// The generator's `[model]` config as TOML.
    pub model: String,
    pub run: String,
    pub checkpoint: String,
    pub source: String,
}

impl Latents {
    /// How many latents.
    pub fn count(&self) -> usize {
        self.z.len() / self.latent.max(1)
    }

    /// Latent `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.z[i * self.latent..(i + 1) * self.latent]
    }

    /// Writes the file atomically (temp file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        assert_eq!(self.z.len() % self.latent.max(1), 0, "whole latents");
        let bytes: Vec<u8> = self.z.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![self.count(), self.latent], &bytes)
            .context("a tensor of count x latent f32")?;
        let meta: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("version", VERSION.to_string()),
            ("latent", self.latent.to_string()),
            ("count", self.count().to_string()),
            ("model", self.model.clone()),
            ("run", self.run.clone()),
            ("checkpoint", self.checkpoint.clone()),
            ("source", self.source.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let out = safetensors::serialize([(TENSOR, view)], Some(meta))
            .with_context(|| format!("{}: cannot encode the latents", path.display()))?;
        facegan_common::write_atomic(path, &out)?;
        Ok(())
    }

    /// Reads a latent file, refusing anything that is not one, with the file and the problem
    /// in the message.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let what = |problem: String| {
            anyhow::anyhow!(
                "{}: not a facegan latent file ({problem}); write one with `facegan sample --save-latents FILE` or `facegan project`",
                path.display()
            )
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| what(format!("{e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        if get("format") != FORMAT {
            return Err(what(format!("format {:?}", get("format"))));
        }
        if get("version") != VERSION {
            bail!(
                "{}: latent file version {:?}; this facegan reads version {VERSION}",
                path.display(),
                get("version")
            );
        }
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| what(format!("{e}")))?;
        let t = tensors
            .tensor(TENSOR)
            .map_err(|_| what(format!("no tensor {TENSOR:?}")))?;
        let shape = t.shape().to_vec();
        if t.dtype() != Dtype::F32 || shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
            return Err(what(format!(
                "tensor {TENSOR:?} is {:?} {shape:?}, not f32 [count, latent]",
                t.dtype()
            )));
        }
        let latent: usize = get("latent").parse().unwrap_or(0);
        if latent != shape[1] {
            return Err(what(format!(
                "metadata latent {:?} but the tensor is {shape:?}",
                get("latent")
            )));
        }
        let z: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(bad) = z.iter().position(|v| !v.is_finite()) {
            return Err(what(format!(
                "latent {} holds a non-finite value",
                bad / latent
            )));
        }
        Ok(Latents {
            z,
            latent,
            model: get("model"),
            run: get("run"),
            checkpoint: get("checkpoint"),
            source: get("source"),
        })
    }

    /// Whether the latents were drawn from the prior (`source` `seed ...`), so suit any
    /// generator of their latent size.
    pub fn drawn_from_a_seed(&self) -> bool {
        self.source.starts_with("seed ")
    }

    /// Refuses latents made for another latent size, or, unless drawn from a seed, found for
    /// another model (projected, or morphed between projected faces); `differences` lists the
    /// settings in which the file's model TOML differs from the generator's (empty when they
    /// agree).
    pub fn check_fits(
        &self,
        path: &Path,
        latent: usize,
        differences: impl FnOnce(&str) -> Vec<String>,
    ) -> Result<()> {
        if self.latent != latent {
            bail!(
                "{}: latents of size {}, but this generator takes {latent} (made for {} {})",
                path.display(),
                self.latent,
                self.run,
                self.checkpoint
            );
        }
        if !self.model.is_empty() && !self.drawn_from_a_seed() {
            let differ = differences(&self.model);
            if !differ.is_empty() {
                bail!(
                    "{}: made for another generator ({}, {}): {}",
                    path.display(),
                    self.run,
                    self.checkpoint,
                    differ.join("; ")
                );
            }
        }
        Ok(())
    }
}
