//! The train/holdout split: CelebA's official partition file when present, else a stable hash
//! of each image's relative path (so adding files never moves an existing image between splits).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use facegan_shard::Split;

/// Decides the split of each relative path.
pub enum Splitter {
    /// Hash of the relative path against the holdout fraction.
    Hash { fraction: f64 },
    /// CelebA `list_eval_partition.txt`: partition 0 is train, 1 (val) and 2 (test) are holdout.
    /// Files the list does not name fall back to the hash.
    Partition {
        file: PathBuf,
        by_name: HashMap<String, u8>,
        fraction: f64,
    },
}

/// Name of CelebA's partition file.
pub const PARTITION_FILE: &str = "list_eval_partition.txt";

impl Splitter {
    /// Looks for `list_eval_partition.txt` in `input` and up to two folders above it.
    pub fn discover(input: &Path, fraction: f64) -> Result<Splitter> {
        if !(0.0..1.0).contains(&fraction) {
            bail!("--holdout must be in [0, 1), got {fraction}");
        }
        let mut dir = Some(input);
        for _ in 0..3 {
            let Some(d) = dir else { break };
            let candidate = d.join(PARTITION_FILE);
            if candidate.is_file() {
                return Self::from_partition_file(&candidate, fraction);
            }
            dir = d.parent();
        }
        Ok(Splitter::Hash { fraction })
    }

    pub fn from_partition_file(file: &Path, fraction: f64) -> Result<Splitter> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read the partition file", file.display()))?;
        let mut by_name = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let (Some(name), Some(part), None) = (it.next(), it.next(), it.next()) else {
                bail!(
                    "{}:{}: expected `NAME PARTITION`, got {line:?}",
                    file.display(),
                    n + 1
                );
            };
            let part: u8 = part.parse().ok().filter(|p| *p <= 2).with_context(|| {
                format!("{}:{}: partition must be 0, 1 or 2", file.display(), n + 1)
            })?;
            by_name.insert(name.to_string(), part);
        }
        Ok(Splitter::Partition {
            file: file.to_path_buf(),
            by_name,
            fraction,
        })
    }

    /// A short description for the shard settings.
    pub fn source(&self) -> String {
        match self {
            Splitter::Hash { .. } => "hash".into(),
            Splitter::Partition { file, .. } => format!("partition:{}", file.display()),
        }
    }

    pub fn fraction(&self) -> f64 {
        match self {
            Splitter::Hash { fraction } | Splitter::Partition { fraction, .. } => *fraction,
        }
    }

    pub fn split(&self, rel_path: &str) -> Split {
        if let Splitter::Partition { by_name, .. } = self {
            let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
            if let Some(p) = by_name.get(name) {
                return if *p == 0 {
                    Split::Train
                } else {
                    Split::Holdout
                };
            }
        }
        hash_split(rel_path, self.fraction())
    }
}

/// Holdout iff the path's hash falls in the lowest `fraction` of the u64 range.
pub fn hash_split(rel_path: &str, fraction: f64) -> Split {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(rel_path.as_bytes(), 0x5eed_f00d);
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    if unit < fraction {
        Split::Holdout
    } else {
        Split::Train
    }
}
