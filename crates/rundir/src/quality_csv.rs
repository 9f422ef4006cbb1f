//! `quality.csv`: the run's live quality curve, one row per probe (written by the trainer,
//! read by it on resume, by `facegan compare` and by the charts). Rows written before the
//! spread columns existed still load (their spreads are 0), and so do rows without a size
//! (they are at the run's full size).

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// One point of the quality curve (a row of `quality.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityPoint {
    pub step: u64,
    pub images_seen: u64,
    /// Training wall time so far (what `--minutes` counts), in minutes.
    pub train_minutes: f64,
    /// SWD x1e3, the average over pyramid levels.
    pub swd: f64,
    /// SWD of the finest pyramid level (full resolution).
    pub swd_finest: f64,
    /// The train-vs-holdout floor (average, finest level) at the same image count.
    pub floor: f64,
    pub floor_finest: f64,
    /// Seconds this probe took.
    pub probe_seconds: f64,
    /// The spread (std over bootstrap rounds, see `swd::swd_spread`) of `swd`, `swd_finest` and
    /// `floor`; 0 in curves written before it was measured.
    #[serde(default)]
    pub swd_std: f64,
    #[serde(default)]
    pub swd_finest_std: f64,
    #[serde(default)]
    pub floor_std: f64,
    /// `HxW` of a probe below the full size (progressive growing scores against the holdout at
    /// the size it trains at); empty at the full size. Curves, charts and `best` use only the
    /// full-size points.
    #[serde(default)]
    pub size: String,
}

impl QualityPoint {
    pub const CSV_COLUMNS: [&'static str; 12] = [
        "step",
        "images_seen",
        "train_minutes",
        "swd",
        "swd_finest",
        "floor",
        "floor_finest",
        "probe_seconds",
        "swd_std",
        "swd_finest_std",
        "floor_std",
        "size",
    ];

    /// Whether the probe scored the run's full size (not a smaller phase of progressive growing).
    pub fn at_full_size(&self) -> bool {
        self.size.is_empty()
    }

    /// The row's fields as written: minutes and probe seconds to 3 decimals, scores in full.
    fn csv_fields(&self) -> [String; 12] {
        [
            self.step.to_string(),
            self.images_seen.to_string(),
            format!("{:.3}", self.train_minutes),
            self.swd.to_string(),
            self.swd_finest.to_string(),
            self.floor.to_string(),
            self.floor_finest.to_string(),
            format!("{:.3}", self.probe_seconds),
            self.swd_std.to_string(),
            self.swd_finest_std.to_string(),
            self.floor_std.to_string(),
            self.size.clone(),
        ]
    }
}

/// Reads `quality.csv` (a missing file is an empty curve); names the file and line on a bad row.
pub fn read_quality(path: &Path) -> Result<Vec<QualityPoint>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<QualityPoint>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: bad quality row: {e}", path.display()))
}

/// Writes the whole curve (with the header) to `quality.csv`, atomically.
pub fn write_quality(path: &Path, rows: &[QualityPoint]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(QualityPoint::CSV_COLUMNS)?;
    for r in rows {
        w.write_record(r.csv_fields())?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("CSV buffer: {e}"))?;
    Ok(facegan_common::write_atomic(path, &bytes)?)
}
