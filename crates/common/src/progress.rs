//! The terminal progress bar every long stage shows (hidden when output is not wanted).

pub use indicatif::ProgressBar;

/// A bar of `len` steps: indicatif template text `label` before the bar (e.g. "{spinner}
/// preprocess" or "epoch 3/20") and `extra` after it (e.g. "{pos}/{len} ETA {eta} {msg}").
/// Hidden when `enabled` is false, so callers never branch on it.
pub fn progress_bar(len: u64, label: &str, extra: &str, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!("{label} [{{bar:30}}] {extra}"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}
