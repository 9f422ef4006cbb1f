//! `metrics.csv`: one row per epoch of a training run (losses, mean D outputs, time, the latest
//! quality probe). Read back on resume (rows up to the checkpoint are kept) and drawn as
//! `loss.png`. Read and written with the `csv` crate; the column layout and number formats are
//! fixed here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use facegan_common::{write_atomic, FileError};

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
    /// The latest quality probe's SWD at the end of the epoch (empty when probes are off; the
    /// column is missing in files written before probes existed).
    #[serde(default)]
    pub swd: Option<f64>,
}

/// The header line, in column order.
pub const METRICS_COLUMNS: [&str; 10] = [
    "epoch",
    "step",
    "images_seen",
    "loss_d",
    "loss_g",
    "d_real",
    "d_fake",
    "seconds",
    "img_per_s",
    "swd",
];

impl EpochMetrics {
    /// The row's fields as written: losses and D outputs to 6 decimals, seconds to 3, img/s
    /// to 2, SWD to 3 (empty when absent).
    fn fields(&self) -> [String; 10] {
        [
            self.epoch.to_string(),
            self.step.to_string(),
            self.images_seen.to_string(),
            format!("{:.6}", self.loss_d),
            format!("{:.6}", self.loss_g),
            format!("{:.6}", self.d_real),
            format!("{:.6}", self.d_fake),
            format!("{:.3}", self.seconds),
            format!("{:.2}", self.img_per_s),
            self.swd.map_or(String::new(), |v| format!("{v:.3}")),
        ]
    }
}

/// A `metrics.csv` row that cannot be read, naming the file (and, in csv's text, the line).
#[derive(Debug, thiserror::Error)]
#[error("{path}: bad metrics row: {error}")]
pub struct MetricsError {
    pub path: PathBuf,
    pub error: csv::Error,
}

/// Reads `metrics.csv`. A file that is missing or cannot be read has no rows (the run then
/// rebuilds them); blank lines are skipped; rows from before the `swd` column (9 fields) read
/// with no SWD. A malformed row is an error naming the file and its line.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, MetricsError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let bad_row = |error| MetricsError {
        path: path.to_path_buf(),
        error,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(bad_row)?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad_row)?;
        // A line of only white space trims to one empty field: skipped, as a blank line is.
        if record.iter().all(str::is_empty) {
            continue;
        }
        rows.push(record.deserialize(Some(&headers)).map_err(bad_row)?);
    }
    Ok(rows)
}

/// Writes all rows (with the header) to `metrics.csv`, atomically.
pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<(), FileError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let encode = |w: &mut csv::Writer<Vec<u8>>| -> csv::Result<()> {
        w.write_record(METRICS_COLUMNS)?;
        for r in rows {
            w.write_record(r.fields())?;
        }
        w.flush()?;
        Ok(())
    };
    encode(&mut w).expect("CSV encoding to memory");
    let bytes = w.into_inner().expect("CSV buffer");
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, swd: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch,
            step: 118 * epoch as u64,
            images_seen: 7552 * epoch as u64,
            loss_d: 1.0286274,
            loss_g: 1.2532741,
            d_real: 0.634491,
            d_fake: 0.340143,
            seconds: 120.7071,
            img_per_s: 62.5612,
            swd,
        }
    }

    #[test]
    fn writes_the_fixed_format_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        write_metrics(&p, &[row(1, Some(68.50149)), row(2, None)]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "epoch,step,images_seen,loss_d,loss_g,d_real,d_fake,seconds,img_per_s,swd\n\
             1,118,7552,1.028627,1.253274,0.634491,0.340143,120.707,62.56,68.501\n\
             2,236,15104,1.028627,1.253274,0.634491,0.340143,120.707,62.56,\n"
        );
        let back = read_metrics(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].swd, Some(68.501));
        assert_eq!(back[1].swd, None);
        assert_eq!(back[1].loss_d, 1.028627);
    }

    /// Reads `text` as a `metrics.csv` file.
    fn read_text(text: &str) -> Result<Vec<EpochMetrics>, MetricsError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        std::fs::write(&p, text).unwrap();
        read_metrics(&p)
    }

    #[test]
    fn reads_files_from_before_the_swd_column_and_a_missing_file() {
        let rows = read_text(
            "epoch,step,images_seen,loss_d,loss_g,d_real,d_fake,seconds,img_per_s\n\
             1,118,7552,0.5,1.5,0.7,0.3,10.0,755.2\n",
        )
        .unwrap();
        assert_eq!((rows[0].epoch, rows[0].swd), (1, None));
        let dir = tempfile::tempdir().unwrap();
        assert!(read_metrics(&dir.path().join("none.csv"))
            .unwrap()
            .is_empty());
        // Blank lines are skipped, and a 9-field row under the 10-column header has no SWD.
        let rows = read_text(
            "epoch,step,images_seen,loss_d,loss_g,d_real,d_fake,seconds,img_per_s,swd\n\n  \n\
             2,236,15104,0.5,1.5,0.7,0.3,10.0,755.2\n",
        )
        .unwrap();
        assert_eq!((rows.len(), rows[0].epoch, rows[0].swd), (1, 2, None));
    }

    #[test]
    fn a_bad_row_names_the_file_and_line() {
        let err = read_text(
            "epoch,step,images_seen,loss_d,loss_g,d_real,d_fake,seconds,img_per_s,swd\n\
             1,118,7552,0.5,1.5,0.7,0.3,10.0,755.2,\n\
             2,236,oops,0.5,1.5,0.7,0.3,10.0,755.2,\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("metrics.csv") && err.contains("line: 3"),
            "{err}"
        );
    }
}
