//! The eval report: [`EvalReport`] (written as `report.json`), its one-line summary, and the
//! self-contained `report.html` page (images inlined as base64): grids, metrics table, the
//! trainer's loss and quality charts, interpolation and nearest neighbours.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use facegan_common::write_atomic;
use facegan_rundir::checkpoint::CheckpointInfo;
use facegan_rundir::TrainState;
use serde::Serialize;

use crate::memorisation::Neighbours;
use crate::scores::DAccuracy;
use crate::swd::{self, SwdResult};
use crate::EvalOptions;

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub tool_version: String,
    pub run: String,
    pub data: String,
    pub source: String,
    pub checkpoint: Option<serde_json::Value>,
    pub config: Option<facegan_rundir::TrainConfig>,
    pub settings: serde_json::Value,
    pub swd_fake_vs_holdout: SwdResult,
    pub swd_train_vs_holdout: SwdResult,
    pub d_accuracy_holdout: Option<DAccuracy>,
    pub d_accuracy_train: Option<DAccuracy>,
    pub nearest_neighbours: Vec<Neighbours>,
    pub nn_level: (usize, usize),
    pub swd_seconds: f64,
    /// What the fakes were scored against (`holdout`, `train`, `folder DIR`): the reference of
    /// `swd_fake_vs_holdout` and of the Inception scores (the field names predate `--against`).
    pub against: String,
    /// The real sample the floor (`swd_train_vs_holdout`) compares with the reference.
    pub floor_second_sample: String,
    /// FID, KID, precision/recall (absent without Inception weights).
    pub inception: Option<crate::inception_scores::InceptionScores>,
    /// The scores at each truncation PSI (`--truncation-sweep`; empty without it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncation: Vec<crate::truncation::TruncationScore>,
    pub seconds: f64,
    #[serde(skip)]
    pub html_path: PathBuf,
}

impl EvalReport {
    pub fn summary_line(&self) -> String {
        let acc = self
            .d_accuracy_holdout
            .as_ref()
            .map(|a| {
                format!(
                    ", D accuracy on holdout {:.3} (real {:.3}, fake {:.3})",
                    a.balanced, a.real, a.fake
                )
            })
            .unwrap_or_default();
        let fake = &self.swd_fake_vs_holdout;
        format!(
            "SWD x1e3 vs {} {:.2}{} (noise floor {} vs {} {:.2}{}; per level {}){acc}, {} images per side, {:.1} s",
            self.against,
            fake.average,
            pm(fake.spread.as_ref().map(|s| s.average)),
            self.floor_second_sample,
            self.against,
            self.swd_train_vs_holdout.average,
            pm(self.swd_train_vs_holdout.spread.as_ref().map(|s| s.average)),
            fake.per_level
                .iter()
                .enumerate()
                .map(|(l, v)| format!("{v:.2}{}", pm(fake.spread.as_ref().map(|s| s.per_level[l]))))
                .collect::<Vec<_>>()
                .join("/"),
            self.swd_fake_vs_holdout.images_per_side,
            self.seconds
        )
    }
}

/// The report's `checkpoint` entry: where it is, how far it trained, and a hash of its
/// generator weights.
pub(crate) fn checkpoint_json((info, s): &(CheckpointInfo, TrainState)) -> serde_json::Value {
    let hash = std::fs::read(info.dir.join("generator.bin"))
        .map(|b| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&b)))
        .unwrap_or_default();
    serde_json::json!({
        "dir": info.dir.display().to_string(),
        "epoch": s.epoch,
        "step": s.step,
        "images_seen": s.images_seen,
        "generator_xxh3": hash,
    })
}

/// The report's `settings` entry: the options and the SWD's constants.
pub(crate) fn settings_json(opts: &EvalOptions, images_per_side: usize) -> serde_json::Value {
    serde_json::json!({"n": opts.n, "images_per_side": images_per_side, "seed": opts.seed,
        "against": match &opts.against {
            crate::Against::Holdout => "holdout".to_string(),
            crate::Against::Train => "train".to_string(),
            crate::Against::Dir(d) => d.display().to_string(),
        },
        "checkpoint": format!("{:?}", opts.checkpoint),
        "swd": {"patch": swd::PATCH, "patches_per_image": swd::PATCHES_PER_IMAGE,
                "dir_repeats": swd::DIR_REPEATS, "dirs_per_repeat": swd::DIRS_PER_REPEAT}})
}

/// Writes `report.json` and `report.html` into `dir` (the report's folder: `RUN/eval/` unless
/// `--out` named another).
pub fn write(dir: &Path, r: &EvalReport) -> Result<()> {
    write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )?;
    write_html(dir, r)
}

fn inline_image(path: &Path, mime: &str) -> String {
    match std::fs::read(path) {
        Ok(b) => format!(
            "<img src=\"data:{mime};base64,{}\" alt=\"{}\">",
            base64::engine::general_purpose::STANDARD.encode(b),
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        Err(_) => format!(
            "<p class=\"missing\">({} not available)</p>",
            path.display()
        ),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart the trainer drew into the run folder `run`, inlined with its caption, or `missing`
/// when the run has no such file.
fn run_chart(run: &Path, file: &str, caption: &str, missing: &str) -> String {
    match run.join(file) {
        p if p.is_file() => format!(
            "<figure>{}<figcaption>{caption}</figcaption></figure>",
            inline_image(&p, "image/png")
        ),
        _ => format!("<p>{missing}</p>"),
    }
}

fn quality_figure(run: &Path) -> String {
    run_chart(
        run,
        "quality.png",
        "SWD of the sampling generator against the holdout while training \
         (quality.png; the best point is kept as checkpoints/best)",
        "No quality curve: the run was trained with its quality probe off.",
    )
}

fn loss_figure(run: &Path) -> String {
    run_chart(
        run,
        "loss.png",
        "Per-epoch losses and mean D outputs (loss.png, drawn by the trainer)",
        "No loss chart (the run has no loss.png).",
    )
}

/// ` ± S` for a measured spread (std over bootstrap rounds), nothing without one.
fn pm(spread: Option<f64>) -> String {
    spread.map(|s| format!(" ± {s:.2}")).unwrap_or_default()
}

/// The metrics table's rows: source, SWD (average and per level, beside the floor), D
/// accuracy, checkpoint and timings.
fn metrics_rows(r: &EvalReport) -> String {
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        rows.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v)))
    };
    row("source of fakes", r.source.clone());
    row(
        "images per side",
        r.swd_fake_vs_holdout.images_per_side.to_string(),
    );
    let rounds = r
        .swd_fake_vs_holdout
        .spread
        .as_ref()
        .map(|s| {
            format!(
                " (± std over {} bootstrap rounds of images, patches and directions)",
                s.rounds
            )
        })
        .unwrap_or_default();
    row("fakes scored against", r.against.clone());
    row(
        "SWD x1e3, fakes vs reference (avg)",
        format!(
            "{:.3}{}{rounds}",
            r.swd_fake_vs_holdout.average,
            pm(r.swd_fake_vs_holdout.spread.as_ref().map(|s| s.average))
        ),
    );
    row(
        &format!(
            "SWD x1e3, {} vs reference (noise floor)",
            r.floor_second_sample
        ),
        format!(
            "{:.3}{}",
            r.swd_train_vs_holdout.average,
            pm(r.swd_train_vs_holdout.spread.as_ref().map(|s| s.average))
        ),
    );
    for (i, ((a, b), (hh, ww))) in r
        .swd_fake_vs_holdout
        .per_level
        .iter()
        .zip(&r.swd_train_vs_holdout.per_level)
        .zip(&r.swd_fake_vs_holdout.level_sizes)
        .enumerate()
    {
        let spread = |s: &swd::SwdResult| pm(s.spread.as_ref().map(|s| s.per_level[i]));
        row(
            &format!("SWD level {i} ({hh}x{ww})"),
            format!(
                "{a:.3}{} (floor {b:.3}{})",
                spread(&r.swd_fake_vs_holdout),
                spread(&r.swd_train_vs_holdout)
            ),
        );
    }
    if let Some(a) = &r.d_accuracy_holdout {
        row(
            "D accuracy, holdout reals vs fakes (balanced)",
            format!("{:.3} (real {:.3}, fake {:.3})", a.balanced, a.real, a.fake),
        );
        row(
            "mean D output, holdout real / fake",
            format!("{:.3} / {:.3}", a.mean_d_real, a.mean_d_fake),
        );
    }
    if let Some(a) = &r.d_accuracy_train {
        row(
            "D accuracy, train reals vs fakes (balanced)",
            format!("{:.3} (real {:.3}, fake {:.3})", a.balanced, a.real, a.fake),
        );
    }
    match &r.inception {
        Some(i) => {
            row(
                "FID",
                format!(
                    "{:.2} ({} {} vs {} fake images; {}; {})",
                    i.fid, i.real_images, i.reals, i.fake_images, i.weights, i.resize
                ),
            );
            row(
                "KID",
                crate::inception_scores::kid_text(&i.kid, i.real_images.min(i.fake_images)),
            );
            row(
                "precision / recall",
                format!("{:.3} / {:.3} (k = {})", i.precision, i.recall, i.k),
            );
        }
        None => row(
            "FID, KID, precision/recall",
            "not computed: no Inception weights (facegan eval --inception FILE)".to_string(),
        ),
    }
    for t in &r.truncation {
        let pr = t.inception.as_ref().map_or(String::new(), |i| {
            format!(
                "; FID {:.2}, precision {:.3}, recall {:.3}",
                i.fid, i.precision, i.recall
            )
        });
        row(
            &format!("truncation PSI {}: SWD (finest level)", t.psi),
            format!(
                "{:.3}{} ({:.3}){pr}",
                t.swd.average,
                pm(t.swd.spread.as_ref().map(|s| s.average)),
                t.swd.finest()
            ),
        );
    }
    if let Some(c) = &r.checkpoint {
        row("checkpoint", c.to_string());
    }
    row("SWD time", format!("{:.2} s", r.swd_seconds));
    row("eval time", format!("{:.2} s", r.seconds));
    row("tool", r.tool_version.clone());
    rows
}

/// One `<li>` per checked fake: its nearest training images and their distances.
fn neighbours_list(r: &EvalReport) -> String {
    r.nearest_neighbours
        .iter()
        .map(|n| {
            format!(
                "<li>fake {}: {}</li>",
                n.fake_index,
                esc(&n
                    .train_paths
                    .iter()
                    .zip(&n.distances)
                    .map(|(p, d)| format!("{p} ({d:.2})"))
                    .collect::<Vec<_>>()
                    .join(", "))
            )
        })
        .collect()
}

/// Writes the self-contained `report.html` into `dir` (the report's folder), with the charts of
/// the run the report names.
pub fn write_html(dir: &Path, r: &EvalReport) -> Result<()> {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facegan eval: {run}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.row {{ display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }}
figure {{ margin: 0; }} figcaption {{ font-size: 13px; color: #555; }}
img {{ image-rendering: pixelated; max-width: 100%; }}
table {{ border-collapse: collapse; font-size: 14px; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #eee; font-weight: 600; }}
</style></head><body>
<h1>facegan evaluation: {run}</h1>
<div class="row">
<figure>{grid}<figcaption>Generated (grid.png)</figcaption></figure>
<figure>{real}<figcaption>Held-out real faces (real.png)</figcaption></figure>
</div>
<h2>Metrics</h2><table>{rows}</table>
<h2>Quality during training</h2>{quality}
<h2>Training curves</h2>{losses}
<h2>Interpolation</h2>
<div class="row"><figure>{interp}<figcaption>Spherical interpolation rows (interp.png)</figcaption></figure>
<figure>{gif}<figcaption>interp.gif</figcaption></figure></div>
<h2>Nearest training images (memorisation check)</h2>
<figure>{nn}<figcaption>Each row: a generated face, then its 3 nearest training images by L2 at {nh}x{nw}.</figcaption></figure>
<ul>{nn_text}</ul>
</body></html>
"#,
        run = esc(&r.run),
        grid = inline_image(&dir.join("grid.png"), "image/png"),
        real = inline_image(&dir.join("real.png"), "image/png"),
        interp = inline_image(&dir.join("interp.png"), "image/png"),
        gif = inline_image(&dir.join("interp.gif"), "image/gif"),
        nn = inline_image(&dir.join("nn.png"), "image/png"),
        losses = loss_figure(Path::new(&r.run)),
        quality = quality_figure(Path::new(&r.run)),
        rows = metrics_rows(r),
        nn_text = neighbours_list(r),
        nh = r.nn_level.0,
        nw = r.nn_level.1,
    );
    write_atomic(&dir.join("report.html"), html.as_bytes()).context("cannot write report.html")
}
