//! Seed corpora, made fresh by facegan itself (no third-party data in the repository): a real
//! shard from preprocess on synthetic faces (and its version 1 form), a real `state.json` from a
//! one-step `tiny` training run, every preset's full config TOML plus partial ones, and real JPEG
//! and PNG faces, the messages a run's orchestrator and nodes exchange (Burn's own encoders);
//! each with malformed cases (bad magic, cut files, exabyte length
//! prefixes, 2-billion-pixel sides, a decompression bomb, NaN settings). Files in the corpus
//! folder (inputs that found new coverage earlier, or a user's own shards) are added too.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use facegan_trainer::{TrainConfig, TrainOptions};

/// The seed inputs of target `name`, made in `scratch`.
pub fn make(name: &str, scratch: &Path) -> Result<Vec<Vec<u8>>> {
    Ok(match name {
        "shard" => shards(scratch)?,
        "state" => states(scratch)?,
        "config" => configs()?,
        "image" => images()?,
        "orchestrator" => burn_collective::fuzzing::seeds().0,
        "node" => node_messages(),
        other => anyhow::bail!("unknown target {other}"),
    })
}

/// A real shard of `n` synthetic faces at 16x16 (20% holdout).
fn synth_shard(scratch: &Path, n: usize) -> Result<std::path::PathBuf> {
    let faces = scratch.join(format!("faces{n}"));
    facegan_preprocess::synth::write_synth_set(&faces, n, 42)?;
    let out = scratch.join(format!("seed{n}.shard"));
    let mut cfg = facegan_preprocess::PreprocessConfig::new(&faces, &out);
    cfg.height = 16;
    cfg.width = 16;
    cfg.holdout = 0.2;
    facegan_preprocess::run(&cfg, &AtomicBool::new(false))?;
    Ok(out)
}

fn reseal(b: &mut [u8]) {
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..72]);
    b[72..80].copy_from_slice(&sum.to_le_bytes());
    if u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")) >= 2 {
        let sum = xxhash_rust::xxh3::xxh3_64(&b[..88]);
        b[88..96].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Recomputes a shard's metadata checksum (when its offsets are in range) and header checksums.
pub fn reseal_shard(b: &mut [u8]) {
    if b.len() < 96 {
        return;
    }
    let at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let (off, len) = (at(40) as usize, at(48) as usize);
    if let Some(meta) = off.checked_add(len).and_then(|end| b.get(off..end)) {
        let sum = xxhash_rust::xxh3::xxh3_64(meta);
        b[80..88].copy_from_slice(&sum.to_le_bytes());
    }
    reseal(b);
}

fn shards(scratch: &Path) -> Result<Vec<Vec<u8>>> {
    let good = std::fs::read(synth_shard(scratch, 6)?)?;
    let mut v1 = good.clone();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    v1[80..96].fill(0);
    reseal(&mut v1);
    let mut huge = good.clone();
    huge[24..28].copy_from_slice(&2_154_230_017u32.to_le_bytes());
    huge[28..32].copy_from_slice(&2_854_344_542u32.to_le_bytes());
    reseal(&mut huge);
    let mut bad_prefix = v1.clone();
    // The first path's length prefix claims exabytes.
    if let Some(at) = bad_prefix.windows(5).position(|w| w == b"synth") {
        bad_prefix[at - 1] = 0xFD;
    }
    let mut magic = good.clone();
    magic[0] = b'G';
    Ok(vec![
        good.clone(),
        v1,
        huge,
        bad_prefix,
        magic,
        good[..good.len() / 2].to_vec(),
        good[..100].to_vec(),
    ])
}

fn states(scratch: &Path) -> Result<Vec<Vec<u8>>> {
    let data = synth_shard(scratch, 40)?;
    let run = scratch.join("run");
    let opts = TrainOptions {
        data,
        run: run.clone(),
        config: Some(TrainConfig::preset("tiny")?),
        config_from_file: false,
        asked_batch: None,
        asked_seed: None,
        epochs_override: None,
        minutes_override: None,
        new: true,
        progress: false,
        max_steps: Some(1),
        max_images: None,
        keep_at_images: Vec::new(),
        init_from: None,
        faults: Default::default(),
    };
    facegan_trainer::train::<facegan_trainer::device::CpuBackend>(&opts, &Default::default())?;
    let ckpt =
        facegan_trainer::checkpoint::latest(&run)?.context("the seed run wrote a checkpoint")?;
    let good = std::fs::read(ckpt.dir.join("state.json"))?;
    let text = String::from_utf8(good.clone())?;
    Ok(vec![
        good.clone(),
        text.replacen("\"epoch\": 0", "\"epoch\": 18446744073709551615", 1)
            .into_bytes(),
        text.replacen("\"batch\": 16", "\"batch\": 0", 1)
            .into_bytes(),
        text.replacen("\"bn_momentum\": 0.01", "\"bn_momentum\": NaN", 1)
            .into_bytes(),
        good[..good.len() / 2].to_vec(),
    ])
}

fn configs() -> Result<Vec<Vec<u8>>> {
    let mut v: Vec<Vec<u8>> = facegan_model::ModelConfig::PRESETS
        .iter()
        .map(|p| TrainConfig::preset(p).map(|c| c.to_toml().into_bytes()))
        .collect::<Result<_>>()?;
    for partial in [
        "preset = \"faces48\"\nlr_g = 1e-3\n[model]\npadding = \"keras\"\ng_upsample = \"resize\"\n",
        "preset = \"seed\"\nstep = \"alternating\"\nd_steps = 3\n",
        "preset = \"celeba48\"\nbn_momentum = nan\n",
        "preset = \"tiny\"\ndiffaugment = \"color,translation,cutout\"\nr1_gamma = 1.0\nema_beta = 0.999\n",
        "[model]\nheight = 4294967295\nwidth = 0\n",
        "preset = \"seed\"\nd_steps = 1000000\nminutes = -1\n",
    ] {
        v.push(partial.as_bytes().to_vec());
    }
    Ok(v)
}

fn images() -> Result<Vec<Vec<u8>>> {
    let face = facegan_preprocess::synth::draw_face(7, 3);
    let jpeg = facegan_preprocess::synth::encode_jpeg(&face);
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(face.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let mut gray = Vec::new();
    image::DynamicImage::ImageRgb8(face).to_luma8().write_to(
        &mut std::io::Cursor::new(&mut gray),
        image::ImageFormat::Png,
    )?;
    // A PNG whose header declares 60,000 x 60,000 pixels, whose data is a few bytes.
    let bomb = facegan_preprocess::synth::png_declaring(60_000, 60_000);
    Ok(vec![
        jpeg.clone(),
        png,
        gray,
        bomb,
        jpeg[..jpeg.len() / 2].to_vec(),
    ])
}

/// Well-formed node messages: data service messages (prefix 0) and a sync request (prefix 1),
/// and a few malformed ones.
fn node_messages() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = burn_communication::data_service::data_messages_for_fuzzing()
        .into_iter()
        .map(|m| [vec![0], m].concat())
        .collect();
    out.extend(
        burn_collective::fuzzing::seeds()
            .1
            .into_iter()
            .map(|m| [vec![1], m].concat()),
    );
    out.push(vec![0, 0xc1]);
    out.push(vec![
        1, 0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    out
}
