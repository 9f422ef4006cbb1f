//! Files a run writes besides checkpoints: sample grids (PNG), the progress GIF, the loss plot,
//! `metrics.csv` and `train.log`. Every file is written atomically (temp file, fsync, rename).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Atomic file write (temp file, fsync, rename), shared with the other stages.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(facegan_shard::write_atomic(path, bytes)?)
}

/// Encodes an RGB image as PNG in memory.
pub fn png_bytes(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding to memory");
    out.into_inner()
}

pub fn save_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    write_atomic(path, &png_bytes(img))
}

/// Lays out `n` images given as `[n, 3, h, w]` floats in [0, 1] (CHW each) on a grid with
/// `cols` columns and a 2-pixel gap.
pub fn grid_from_chw(data: &[f32], n: usize, h: usize, w: usize, cols: usize) -> image::RgbImage {
    grid(&chw_to_rgb_images(&data[..n * 3 * h * w], h, w), cols)
}

/// Splits `[n, 3, h, w]` floats in [0, 1] into RGB images (clamped, rounded to u8).
pub fn chw_to_rgb_images(data: &[f32], h: usize, w: usize) -> Vec<image::RgbImage> {
    data.chunks_exact(3 * h * w)
        .map(|img| {
            image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let at = |c: usize| {
                    (img[c * h * w + y as usize * w + x as usize].clamp(0.0, 1.0) * 255.0).round()
                        as u8
                };
                image::Rgb([at(0), at(1), at(2)])
            })
        })
        .collect()
}

/// Tiles same-sized images on a grid with a 2-pixel gap.
pub fn grid(images: &[image::RgbImage], cols: usize) -> image::RgbImage {
    let gap = 2u32;
    let (w, h) = images.first().map(|i| i.dimensions()).unwrap_or((1, 1));
    let cols = cols.max(1).min(images.len().max(1));
    let rows = images.len().div_ceil(cols).max(1);
    let mut out = image::RgbImage::from_pixel(
        cols as u32 * (w + gap) + gap,
        rows as u32 * (h + gap) + gap,
        image::Rgb([24, 24, 24]),
    );
    for (i, img) in images.iter().enumerate() {
        let x = gap + (i % cols) as u32 * (w + gap);
        let y = gap + (i / cols) as u32 * (h + gap);
        image::imageops::overlay(&mut out, img, x as i64, y as i64);
    }
    out
}

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
    write_gif(out, &frames, 250)
}

/// Writes an animated GIF (looping, `delay_ms` a frame), atomically.
pub fn write_gif(path: &Path, frames: &[image::RgbImage], delay_ms: u32) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 20);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)?;
        for f in frames {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            enc.encode_frame(image::Frame::from_parts(
                rgba,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay_ms, 1),
            ))?;
        }
    }
    write_atomic(path, &bytes)
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: u64,
    pub images_seen: u64,
    pub loss_d: f64,
    pub loss_g: f64,
    pub d_real: f64,
    pub d_fake: f64,
    pub seconds: f64,
    pub img_per_s: f64,
    /// The latest quality probe's SWD at the end of the epoch (empty when probes are off).
    #[serde(default)]
    pub swd: Option<f64>,
}

pub const METRICS_HEADER: &str =
    "epoch,step,images_seen,loss_d,loss_g,d_real,d_fake,seconds,img_per_s,swd";

impl EpochMetrics {
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{:.6},{:.6},{:.6},{:.6},{:.3},{:.2},{}",
            self.epoch,
            self.step,
            self.images_seen,
            self.loss_d,
            self.loss_g,
            self.d_real,
            self.d_fake,
            self.seconds,
            self.img_per_s,
            self.swd.map_or(String::new(), |v| format!("{v:.3}"))
        )
    }
}

/// Reads `metrics.csv` (missing file = no rows). Names the file and line on a bad row.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = || format!("{}:{}: bad metrics row {line:?}", path.display(), i + 1);
        if f.len() != 9 && f.len() != 10 {
            anyhow::bail!(bad());
        }
        let num = |k: usize| f[k].parse::<f64>().with_context(bad);
        rows.push(EpochMetrics {
            epoch: f[0].parse().with_context(bad)?,
            step: f[1].parse().with_context(bad)?,
            images_seen: f[2].parse().with_context(bad)?,
            loss_d: num(3)?,
            loss_g: num(4)?,
            d_real: num(5)?,
            d_fake: num(6)?,
            seconds: num(7)?,
            img_per_s: num(8)?,
            swd: match f.get(9) {
                Some(v) if !v.trim().is_empty() => Some(v.trim().parse().with_context(bad)?),
                _ => None,
            },
        });
    }
    Ok(rows)
}

pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut text = String::from(METRICS_HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(&r.csv_row());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
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
    save_png(path, &img)
}

/// The largest finite value of `values` (at least `floor`), times 1.1: a y range.
fn y_max(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values.filter(|v| v.is_finite()).fold(floor, f64::max) * 1.1
}

/// Draws the per-epoch losses (and mean D outputs) as `loss.png`.
pub fn write_loss_plot(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let max_epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
    let max_loss = y_max(rows.iter().flat_map(|r| [r.loss_d, r.loss_g]), 1.0);
    let line = |name, rgb, f: fn(&EpochMetrics) -> f64| Line {
        name,
        rgb,
        points: rows.iter().map(|r| (r.epoch as f64, f(r))).collect(),
    };
    write_line_chart(
        path,
        "facegan losses per epoch",
        ("epoch", "loss / mean D output"),
        (max_epoch, max_loss),
        vec![
            line("loss_d", (200, 40, 40), |r| r.loss_d),
            line("loss_g", (40, 80, 200), |r| r.loss_g),
            line("D(x)", (40, 160, 60), |r| r.d_real),
            line("D(G(z))", (230, 140, 20), |r| r.d_fake),
        ],
    )
}

/// Draws the quality curve (SWD and its floor against training minutes) as `quality.png`.
pub fn write_quality_plot(path: &Path, rows: &[crate::quality::QualityPoint]) -> Result<()> {
    type Point = crate::quality::QualityPoint;
    let max_x = rows.iter().map(|r| r.train_minutes).fold(0.1f64, f64::max);
    let max_y = y_max(rows.iter().flat_map(|r| [r.swd, r.swd_finest]), 1.0);
    let line = |name, rgb, f: fn(&Point) -> f64| Line {
        name,
        rgb,
        points: rows.iter().map(|r| (r.train_minutes, f(r))).collect(),
    };
    write_line_chart(
        path,
        "facegan quality (SWD vs holdout, lower is better)",
        ("training minutes", "SWD x1e3"),
        (max_x, max_y),
        vec![
            line("SWD (average)", (40, 80, 200), |r| r.swd),
            line("SWD finest level", (200, 40, 40), |r| r.swd_finest),
            line("floor (average)", (120, 160, 230), |r| r.floor),
            line("floor finest", (230, 140, 140), |r| r.floor_finest),
        ],
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
