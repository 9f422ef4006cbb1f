//! The SWD's spread: the error bar beside a score covers what other direction seeds and other
//! draws of the images give for the same two image sources.

use facegan_metrics::bench::smooth_random_images;
use facegan_metrics::swd::{pyramids, swd, swd_spread, swd_with_spread};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Scores of other seeds on other 60-image draws from the same two pools of 120 stay within 4
/// reported standard deviations of the point estimate, and spread about as much as reported;
/// the point estimate itself is [`swd`]'s, unchanged.
#[test]
fn the_reported_spread_covers_other_seeds_and_image_draws() {
    let n = 60;
    let pool_a = pyramids(&smooth_random_images(2 * n, 24, 24, 1));
    let pool_b = pyramids(&smooth_random_images(2 * n, 24, 24, 2));
    let (a, b) = (&pool_a[..n], &pool_b[..n]);
    let point = swd_with_spread(a, b, 7, 8);
    assert_eq!(
        point.average,
        swd(a, b, 7).average,
        "the point estimate changed"
    );
    let spread = point.spread.clone().expect("a spread");
    assert_eq!(
        spread,
        swd_spread(a, b, 7, spread.rounds),
        "not deterministic"
    );
    assert!(spread.average > 0.0 && spread.per_level.iter().all(|s| *s > 0.0));

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let others: Vec<f64> = (0..8)
        .map(|k| {
            let pick = |pool: &[Vec<facegan_metrics::swd::Planes>], rng: &mut ChaCha8Rng| {
                sample(rng, pool.len(), n)
                    .iter()
                    .map(|i| pool[i].clone())
                    .collect::<Vec<_>>()
            };
            let (x, y) = (pick(&pool_a, &mut rng), pick(&pool_b, &mut rng));
            swd(&x, &y, 100 + k).average
        })
        .collect();
    let mean = others.iter().sum::<f64>() / others.len() as f64;
    let std = (others.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
    let worst = others
        .iter()
        .map(|v| (v - point.average).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= 4.0 * spread.average,
        "a score {worst} away from {} with a reported std of {}: {others:?}",
        point.average,
        spread.average
    );
    assert!(
        std <= 2.5 * spread.average && std >= 0.25 * spread.average,
        "other draws spread {std}, reported {}",
        spread.average
    );
}
