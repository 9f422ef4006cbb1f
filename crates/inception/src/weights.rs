//! pytorch-fid's weight file: where facegan looks for it, its checksum, and loading it with
//! Burn's PyTorch reader (burn-store reads the file's legacy, pre-zip format). Nothing is
//! downloaded: a missing file gets a message that says where to get it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, PytorchStore};
use sha2::{Digest, Sha256};

use crate::network::FidInception;

/// The file's name, as pytorch-fid publishes it.
pub const FILE_NAME: &str = "pt_inception-2015-12-05-6726825d.pth";
/// Where pytorch-fid publishes it.
pub const URL: &str =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/// Its SHA-256 (the file name carries the first 8 hex digits, as torch.hub names files).
pub const SHA256: &str = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";
/// The environment variable that may name the file.
pub const ENV: &str = "FACEGAN_INCEPTION";

/// Which weights scored a set: the standard file, or another one the user vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsId {
    pub path: PathBuf,
    pub sha256: String,
}

impl WeightsId {
    /// Whether these are pytorch-fid's weights, the ones scores in the literature use.
    pub fn is_standard(&self) -> bool {
        self.sha256 == SHA256
    }

    /// How a report names them.
    pub fn label(&self) -> String {
        if self.is_standard() {
            "pytorch-fid Inception-v3 (pt_inception-2015-12-05)".to_string()
        } else {
            format!(
                "other Inception-v3 weights (sha256 {}...), not comparable with published scores",
                &self.sha256[..12.min(self.sha256.len())]
            )
        }
    }
}

/// The default place facegan looks: `$XDG_CACHE_HOME/facegan/FILE_NAME` or
/// `~/.cache/facegan/FILE_NAME`.
pub fn default_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("facegan").join(FILE_NAME))
}

/// The message for a missing weight file: what it is and how to get it.
pub fn how_to_get() -> String {
    let target = default_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("~/.cache/facegan/{FILE_NAME}"));
    format!(
        "FID, KID and precision/recall need pytorch-fid's Inception weights ({FILE_NAME}, about \
         91 MiB, sha256 {SHA256}); facegan downloads nothing. Get it once with\n  \
         mkdir -p \"$(dirname {target})\" && curl -L -o {target} {URL}\n\
         then facegan finds it there (or pass --inception FILE, or set {ENV})"
    )
}

/// The weight file to use: `given` (`--inception`), else [`ENV`], else the default path when a
/// file is there; `None` when none is given and none is at the default path.
pub fn locate(given: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(p) = given {
        if !p.is_file() {
            bail!(
                "--inception {}: no such file\n{}",
                p.display(),
                how_to_get()
            );
        }
        return Ok(Some(p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os(ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{ENV}={}: no such file\n{}", p.display(), how_to_get());
        }
        return Ok(Some(p));
    }
    Ok(default_path().filter(|p| p.is_file()))
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_of(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks the file's SHA-256: pytorch-fid's unless `expected` names another (for weights the
/// user made, such as `make check-fid`'s test network).
pub fn check(path: &Path, expected: Option<&str>) -> Result<WeightsId> {
    let want = expected.unwrap_or(SHA256).to_ascii_lowercase();
    let got = sha256_of(path)?;
    if got != want {
        let what = if expected.is_some() {
            "the checksum given with --inception-sha256".to_string()
        } else {
            format!("pytorch-fid's {FILE_NAME}")
        };
        bail!(
            "{}: sha256 {got}, not {what} ({want}); the file is damaged or another network \
             (download it again: {URL})",
            path.display()
        );
    }
    Ok(WeightsId {
        path: path.to_path_buf(),
        sha256: got,
    })
}

/// Loads the network from a checked weight file (see [`check`]), its BatchNorms folded into
/// the convolutions. Every weight of the network must be in the file (its classifier `fc.*`
/// is not used).
pub fn load<B: Backend>(id: &WeightsId, device: &B::Device) -> Result<FidInception<B>> {
    let mut net = FidInception::<B>::new(device);
    let mut store = PytorchStore::from_file(&id.path).allow_partial(true);
    let result = net.load_from(&mut store).map_err(|e| {
        anyhow!(
            "{}: cannot read it as PyTorch weights: {e}",
            id.path.display()
        )
    })?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        bail!(
            "{}: not pytorch-fid's Inception-v3: {} weight(s) missing ({}), {} error(s) ({:?})",
            id.path.display(),
            missing.len(),
            missing
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            result.errors.len(),
            result.errors.iter().take(3).collect::<Vec<_>>()
        );
    }
    Ok(net.fuse())
}
