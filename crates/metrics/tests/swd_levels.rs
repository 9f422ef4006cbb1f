//! Which pyramid level is which: `per_level` lists the levels finest first (level 0 is the
//! images' own size) and `SwdResult::finest` is level 0's score, so every "finest level" number
//! facegan prints is the level that sees pixel-scale detail.

use facegan_metrics::bench::smooth_random_images;
use facegan_metrics::swd::{pyramids, swd};

/// Detail at the pixel scale only (a ±20 checkerboard, which the pyramid's binomial blur removes
/// before the next level) moves the finest level's score and leaves the coarser one near zero.
#[test]
fn the_finest_level_is_listed_first_and_sees_pixel_detail() {
    let a = smooth_random_images(16, 32, 32, 1);
    let mut b = a.clone();
    for img in &mut b {
        for (i, v) in img.data.iter_mut().enumerate() {
            let (y, x) = ((i / 32) % 32, i % 32);
            *v += if (x + y) % 2 == 0 { 20.0 } else { -20.0 };
        }
    }
    let r = swd(&pyramids(&a), &pyramids(&b), 7);
    assert_eq!(
        r.level_sizes[0],
        (32, 32),
        "level 0 is the images' own size"
    );
    assert_eq!(r.finest(), r.per_level[0]);
    assert!(
        r.per_level[0] > 20.0 * r.per_level[1],
        "pixel detail shows at the finest level: {:?}",
        r.per_level
    );
}
