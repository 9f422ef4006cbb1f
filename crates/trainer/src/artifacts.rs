//! Files a run writes besides checkpoints and `metrics.csv`: the progress GIF, the loss and
//! quality charts (plotters, PNG; eval's report page embeds them) and `train.log`. Image grids,
//! GIF encoding and atomic writes come from `facegan-common`, which the other stages share.

use std::io::Write;
use std::path::Path;

use crate::metrics_csv::EpochMetrics;
use anyhow::{Context, Result};
use facegan_common::images::{save_png, write_gif};

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

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// One line of a chart: its legend name, colour and points.
struct Line {
    name: &'static str,
    rgb: (u8, u8, u8),
    points: Vec<(f64, f64)>,
}

/// Draws line series on one 800x480 chart (y from 0) and saves it as a PNG.
fn write_line_chart(
    path: &Path,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    (max_x, max_y): (f64, f64),
    lines: Vec<Line>,
) -> Result<()> {
    use plotters::prelude::*;
    register_font();
    let (w, h) = (800u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: plot: {e}", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(&e))?;
        for line in lines {
            let color = RGBColor(line.rgb.0, line.rgb.1, line.rgb.2);
            chart
                .draw_series(LineSeries::new(line.points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(line.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).expect("plot buffer size");
    Ok(save_png(path, &img)?)
}

/// The largest finite value of `values` (at least `floor`), times 1.1: a y range.
fn y_max(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values.filter(|v| v.is_finite()).fold(floor, f64::max) * 1.1
}

/// One line of a chart drawn from rows of `T`: legend name, colour and the y value of a row.
type Series<T> = (&'static str, (u8, u8, u8), fn(&T) -> f64);

/// The chart lines of `series` over `rows`, with x from `x`.
fn lines_of<T>(rows: &[T], x: impl Fn(&T) -> f64, series: &[Series<T>]) -> Vec<Line> {
    series
        .iter()
        .map(|&(name, rgb, y)| Line {
            name,
            rgb,
            points: rows.iter().map(|r| (x(r), y(r))).collect(),
        })
        .collect()
}

/// Draws the per-epoch losses (and mean D outputs) as `loss.png`.
pub fn write_loss_plot(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let max_epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
    let max_loss = y_max(rows.iter().flat_map(|r| [r.loss_d, r.loss_g]), 1.0);
    let series: [Series<EpochMetrics>; 4] = [
        ("loss_d", (200, 40, 40), |r| r.loss_d),
        ("loss_g", (40, 80, 200), |r| r.loss_g),
        ("D(x)", (40, 160, 60), |r| r.d_real),
        ("D(G(z))", (230, 140, 20), |r| r.d_fake),
    ];
    write_line_chart(
        path,
        "facegan losses per epoch",
        ("epoch", "loss / mean D output"),
        (max_epoch, max_loss),
        lines_of(rows, |r| r.epoch as f64, &series),
    )
}

/// Draws the quality curve (SWD and its floor against training minutes) as `quality.png`.
pub fn write_quality_plot(path: &Path, rows: &[QualityPoint]) -> Result<()> {
    let max_x = rows.iter().map(|r| r.train_minutes).fold(0.1f64, f64::max);
    let max_y = y_max(rows.iter().flat_map(|r| [r.swd, r.swd_finest]), 1.0);
    let series: [Series<QualityPoint>; 4] = [
        ("SWD (average)", (40, 80, 200), |r| r.swd),
        ("SWD finest level", (200, 40, 40), |r| r.swd_finest),
        ("floor (average)", (120, 160, 230), |r| r.floor),
        ("floor finest", (230, 140, 140), |r| r.floor_finest),
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
