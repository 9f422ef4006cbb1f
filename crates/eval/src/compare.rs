//! `facegan compare RUN...`: several runs' live quality curves in one view, the view a user
//! needs to pick a recipe. Two charts, SWD against images shown (`compare-images.png`) and
//! against training minutes (`compare-minutes.png`), each curve with the band of its spread, and
//! a table of each run's last and best scores (`compare.md`, also printed). A difference inside
//! the bands is inside the noise.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use facegan_common::charts::{write_line_chart, y_max, Line};
use facegan_common::write_atomic;
use facegan_rundir::quality_csv::{read_quality, QualityPoint};

/// One run's curve and its name in the charts.
#[derive(Debug, Clone)]
pub struct RunCurve {
    pub name: String,
    pub run: PathBuf,
    pub preset: Option<String>,
    pub points: Vec<QualityPoint>,
}

/// Colours for up to 8 runs, then repeated.
const PALETTE: [(u8, u8, u8); 8] = [
    (40, 80, 200),
    (200, 40, 40),
    (40, 160, 60),
    (230, 140, 20),
    (140, 60, 180),
    (20, 160, 170),
    (120, 120, 120),
    (180, 120, 60),
];

/// Reads each run's `quality.csv` (its full-size points) and its preset from `config.toml`; a
/// run without a curve is an error that names it.
pub fn read_curves(runs: &[PathBuf]) -> Result<Vec<RunCurve>> {
    runs.iter()
        .map(|run| {
            let path = run.join("quality.csv");
            if !path.is_file() {
                bail!(
                    "{}: no quality.csv (is it a run directory, trained with eval_every > 0?)",
                    run.display()
                );
            }
            // The full size only: a growing run's smaller phases score other images.
            let mut points = read_quality(&path)?;
            points.retain(|p| p.at_full_size());
            if points.is_empty() {
                bail!(
                    "{}: its quality curve has no points at the full size yet",
                    path.display()
                );
            }
            let preset = std::fs::read_to_string(run.join("config.toml"))
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .and_then(|t| t.get("preset").and_then(|p| p.as_str().map(String::from)));
            let name = run
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| run.display().to_string());
            Ok(RunCurve {
                name,
                run: run.clone(),
                preset,
                points,
            })
        })
        .collect()
}

/// The point with the lowest SWD.
fn best(points: &[QualityPoint]) -> &QualityPoint {
    points
        .iter()
        .filter(|p| p.swd.is_finite())
        .min_by(|a, b| a.swd.total_cmp(&b.swd))
        .unwrap_or(&points[0])
}

fn pm(value: f64, std: f64) -> String {
    if std > 0.0 {
        format!("{value:.2} ± {std:.2}")
    } else {
        format!("{value:.2}")
    }
}

/// The table of last and best scores, as Markdown.
pub fn table(curves: &[RunCurve]) -> String {
    let mut out = String::from(
        "| run | preset | images shown | training minutes | last SWD x1e3 | last finest level | best SWD x1e3 (at images) | floor |\n|---|---|---|---|---|---|---|---|\n",
    );
    for c in curves {
        let last = c.points.last().expect("curves have points");
        let b = best(&c.points);
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} | {} ({}) | {} |\n",
            c.name,
            c.preset.as_deref().unwrap_or("?"),
            last.images_seen,
            last.train_minutes,
            pm(last.swd, last.swd_std),
            pm(last.swd_finest, last.swd_finest_std),
            pm(b.swd, b.swd_std),
            b.images_seen,
            pm(last.floor, last.floor_std),
        ));
    }
    out
}

/// Draws one chart of every run's SWD (with its band) against `x`.
fn chart(
    path: &Path,
    curves: &[RunCurve],
    x_desc: &str,
    x: fn(&QualityPoint) -> f64,
) -> Result<()> {
    let max_x = curves
        .iter()
        .flat_map(|c| c.points.iter().map(x))
        .fold(1e-3, f64::max);
    let max_y = y_max(
        curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.swd + p.swd_std)),
        1.0,
    );
    let lines = curves
        .iter()
        .enumerate()
        .map(|(i, c)| Line {
            name: c.name.clone(),
            rgb: PALETTE[i % PALETTE.len()],
            points: c.points.iter().map(|p| (x(p), p.swd)).collect(),
            spread: c.points.iter().map(|p| p.swd_std).collect(),
        })
        .collect();
    write_line_chart(
        path,
        "facegan compare: SWD vs holdout (± std; lower is better)",
        (x_desc, "SWD x1e3"),
        (max_x, max_y),
        lines,
    )
}

/// What [`compare`] wrote.
pub struct Comparison {
    pub table: String,
    pub files: Vec<PathBuf>,
}

/// Compares `runs`, writing the two charts and the table into `out` (created).
pub fn compare(runs: &[PathBuf], out: &Path) -> Result<Comparison> {
    if runs.is_empty() {
        bail!("name at least one run directory");
    }
    let curves = read_curves(runs)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the folder", out.display()))?;
    let by_images = out.join("compare-images.png");
    let by_minutes = out.join("compare-minutes.png");
    chart(&by_images, &curves, "images shown", |p| {
        p.images_seen as f64
    })?;
    chart(
        &by_minutes,
        &curves,
        "training minutes (as trained, not quiet)",
        |p| p.train_minutes,
    )?;
    let table = table(&curves);
    let md = out.join("compare.md");
    write_atomic(
        &md,
        format!(
            "# facegan compare\n\n{table}\n![by images shown](compare-images.png)\n\n![by training minutes](compare-minutes.png)\n"
        )
        .as_bytes(),
    )?;
    Ok(Comparison {
        table,
        files: vec![by_images, by_minutes, md],
    })
}
