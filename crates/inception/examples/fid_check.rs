//! `make check-fid`'s facegan side (driven by `tools/check_fid.py`):
//! - `fid_check features WEIGHTS SHA256 LIST OUT [RESIZE]`: the Inception features of the PNG
//!   files listed in LIST (one path per line), loaded from WEIGHTS (checked against SHA256),
//!   brought to 299x299 by RESIZE (`pytorch-fid`, the default, or `clean-fid`), written to OUT
//!   as raw little-endian f32, 2048 per image, and prints the seconds the forward passes took
//!   as one JSON line;
//! - `fid_check resized LIST OUT`: clean-fid's resize of those files, 299x299x3 f32 each (HWC,
//!   [0, 255]), to OUT;
//! - `fid_check scores A B`: FID, KID on one subset of all images, and precision/recall
//!   (k = 3) between two such feature files, as one JSON line.

use anyhow::{bail, Context, Result};
use burn::backend::Flex;
use facegan_inception::{input, weights, Resize, FEATURES};
use facegan_metrics::fid;

fn read_f32(path: &str) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The images of the PNG files listed in `list` (one path per line), all of one size: their
/// RGB bytes, height and width.
fn read_list(list: &str) -> Result<(Vec<Vec<u8>>, usize, usize)> {
    let list = std::fs::read_to_string(list).with_context(|| format!("cannot read {list}"))?;
    let mut images = Vec::new();
    let mut size = None;
    for path in list.lines().filter(|l| !l.is_empty()) {
        let img = image::open(path)
            .with_context(|| format!("cannot read {path}"))?
            .to_rgb8();
        let dims = (img.height() as usize, img.width() as usize);
        if *size.get_or_insert(dims) != dims {
            bail!("{path}: {dims:?}, not the first image's size {size:?}");
        }
        images.push(img.into_raw());
    }
    let (h, w) = size.unwrap_or((1, 1));
    Ok((images, h, w))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("features") if args.len() == 5 || args.len() == 6 => {
            let id = weights::check(args[1].as_ref(), Some(&args[2]))?;
            let resize = Resize::parse(args.get(5).map_or("pytorch-fid", String::as_str))?;
            let device = Default::default();
            let net = weights::load::<Flex>(&id, &device)?;
            let (images, h, w) = read_list(&args[3])?;
            let started = std::time::Instant::now();
            let features = facegan_inception::features::<Flex>(
                &net,
                images.len(),
                h,
                w,
                resize,
                |i| &images[i],
                &device,
            );
            let seconds = started.elapsed().as_secs_f64();
            let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(&args[4], bytes)?;
            // The forward passes alone (not the weight loading or the PNG decoding).
            println!(
                "{}",
                serde_json::json!({"images": images.len(), "seconds": seconds})
            );
        }
        Some("resized") if args.len() == 3 => {
            let (images, h, w) = read_list(&args[1])?;
            let mut resizer = fast_image_resize::Resizer::new();
            let bytes: Vec<u8> = images
                .iter()
                .flat_map(|img| input::clean_fid_resize(&mut resizer, img, h, w))
                .flat_map(f32::to_le_bytes)
                .collect();
            std::fs::write(&args[2], bytes)?;
        }
        Some("scores") if args.len() == 3 => {
            let (a, b) = (read_f32(&args[1])?, read_f32(&args[2])?);
            let fid = fid::fid(
                &fid::FeatureStats::of(&a, FEATURES)?,
                &fid::FeatureStats::of(&b, FEATURES)?,
            )?;
            let n = (a.len() / FEATURES).min(b.len() / FEATURES);
            let kid = fid::kid(&a, &b, FEATURES, 1, n, 0)?;
            let (precision, recall) = fid::precision_recall(&a, &b, FEATURES, 3)?;
            println!(
                "{}",
                serde_json::json!({
                    "fid": fid,
                    "kid_one_subset": kid.mean,
                    "precision": precision,
                    "recall": recall,
                })
            );
        }
        _ => bail!("usage: fid_check features WEIGHTS SHA256 LIST OUT [RESIZE] | fid_check resized LIST OUT | fid_check scores A B"),
    }
    Ok(())
}
