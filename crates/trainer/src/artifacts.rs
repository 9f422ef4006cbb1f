//! Files a run writes besides checkpoints and `metrics.csv`: the progress GIF, the loss and
//! quality charts (plotters, PNG; eval's report page embeds them) and `train.log`. Image grids,
//! GIF encoding and atomic writes come from `facegan-common`, which the other stages share.

use std::io::Write;
use std::path::Path;

use crate::metrics_csv::EpochMetrics;
use anyhow::{Context, Result};
use facegan_common::charts::{lines_of, write_line_chart, y_max, Series};
use facegan_common::images::write_gif;

use crate::quality::QualityPoint;

/// Rebuilds `progress.gif` from the sample grids (at most `max_frames`, evenly spaced, always the
/// last), half size, 0.25 s a frame.
pub fn write_progress_gif(samples_dir: &Path, out: &Path, max_frames: usize) -> Result<()> {
    let mut frames: Vec<_> = std::fs::read_dir(samples_dir)
        .with_context(|| format!("{}: cannot list", samples_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    frames.sort();
    if frames.is_empty() {
        return Ok(());
    }
    let pick: Vec<_> = if frames.len() <= max_frames {
        frames
    } else {
        let last = frames.len() - 1;
        (0..max_frames)
            .map(|i| frames[i * last / (max_frames - 1)].clone())
            .collect()
    };
    let frames = pick
        .iter()
        .map(|p| {
            let img = image::open(p)
                .with_context(|| format!("{}: cannot read", p.display()))?
                .to_rgb8();
            let (w, h) = img.dimensions();
            Ok(image::imageops::resize(
                &img,
                w.div_ceil(2),
                h.div_ceil(2),
                image::imageops::FilterType::Triangle,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(write_gif(out, &frames, 250)?)
}

/// Draws the per-epoch losses (and mean D outputs) as `loss.png`.
pub fn write_loss_plot(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let max_epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
    let max_loss = y_max(rows.iter().flat_map(|r| [r.loss_d, r.loss_g]), 1.0);
    let series: [Series<EpochMetrics>; 4] = [
        ("loss_d", (200, 40, 40), |r| r.loss_d, |_| 0.0),
        ("loss_g", (40, 80, 200), |r| r.loss_g, |_| 0.0),
        ("D(x)", (40, 160, 60), |r| r.d_real, |_| 0.0),
        ("D(G(z))", (230, 140, 20), |r| r.d_fake, |_| 0.0),
    ];
    write_line_chart(
        path,
        "facegan losses per epoch",
        ("epoch", "loss / mean D output"),
        (max_epoch, max_loss),
        lines_of(rows, |r| r.epoch as f64, &series),
    )
}

/// Draws the quality curve (SWD and its floor against training minutes, each with the band of
/// its spread when measured) as `quality.png`: the full-size points (a growing run's smaller
/// phases score other images).
pub fn write_quality_plot(path: &Path, rows: &[QualityPoint]) -> Result<()> {
    let rows: Vec<QualityPoint> = rows.iter().filter(|r| r.at_full_size()).cloned().collect();
    let rows = rows.as_slice();
    let max_x = rows.iter().map(|r| r.train_minutes).fold(0.1f64, f64::max);
    let max_y = y_max(
        rows.iter()
            .flat_map(|r| [r.swd + r.swd_std, r.swd_finest + r.swd_finest_std]),
        1.0,
    );
    let series: [Series<QualityPoint>; 4] = [
        (
            "SWD (average, ± std)",
            (40, 80, 200),
            |r| r.swd,
            |r| r.swd_std,
        ),
        (
            "SWD finest level",
            (200, 40, 40),
            |r| r.swd_finest,
            |r| r.swd_finest_std,
        ),
        (
            "floor (average)",
            (120, 160, 230),
            |r| r.floor,
            |r| r.floor_std,
        ),
        ("floor finest", (230, 140, 140), |r| r.floor_finest, |_| 0.0),
    ];
    write_line_chart(
        path,
        "facegan quality (SWD vs holdout, lower is better)",
        ("training minutes", "SWD x1e3"),
        (max_x, max_y),
        lines_of(rows, |r| r.train_minutes, &series),
    )
}

/// Appends a line to `train.log`.
pub fn log_line(run: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.join("train.log"))
    {
        let _ = writeln!(f, "{line}");
    }
}
