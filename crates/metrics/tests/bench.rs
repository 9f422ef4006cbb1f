//! The `bench-swd` inputs and report: deterministic per seed, and the JSON keys the CLI prints.

use facegan_metrics::bench::{bench_swd, smooth_random_images};
use facegan_metrics::swd::{pyramids, swd};

#[test]
fn bench_inputs_are_deterministic_smooth_and_in_range() {
    let a = smooth_random_images(3, 20, 18, 1);
    let again = smooth_random_images(3, 20, 18, 1);
    let other = smooth_random_images(3, 20, 18, 2);
    assert_eq!(a.len(), 3);
    assert!(a.iter().zip(&again).all(|(x, y)| x.data == y.data));
    assert!(a.iter().zip(&other).all(|(x, y)| x.data != y.data));
    assert_ne!(a[0].data, a[1].data, "each image has its own stream");
    // Wave amplitude 100 and noise +-10 around 128.
    assert!(a
        .iter()
        .flat_map(|p| &p.data)
        .all(|&v| (17.0..=239.0).contains(&v)));
}

#[test]
fn swd_is_deterministic_per_seed_and_seed_dependent() {
    let a = pyramids(&smooth_random_images(16, 32, 32, 1));
    let b = pyramids(&smooth_random_images(16, 32, 32, 2));
    let r = swd(&a, &b, 7);
    assert_eq!(r.per_level.len(), 2);
    let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(a, b)| (a - b).abs() <= 1e-9 * a);
    assert!(
        close(&swd(&a, &b, 7).per_level, &r.per_level),
        "deterministic"
    );
    assert!(
        !close(&swd(&a, &b, 8).per_level, &r.per_level),
        "seed-dependent"
    );
    assert!(swd(&a, &a, 7).average.abs() < 1e-9);
}

#[test]
fn bench_report_has_the_keys_the_cli_prints() {
    const KEYS: [&str; 10] = [
        "images_per_s_per_side",
        "images_per_side",
        "impl",
        "make_inputs_s",
        "pyramid_s",
        "size",
        "swd_s",
        "swd_x1e3",
        "threads",
        "total_s",
    ];
    let r = bench_swd(4, 32, 24);
    // Every key, in this order, in the printed line (a `Value` would sort its keys and hide a
    // wrong order).
    let line = serde_json::to_string(&r).unwrap();
    let at: Vec<usize> = KEYS
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).expect(k))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json.as_object().unwrap().len(), KEYS.len(), "{line}");
    assert_eq!(
        (json["impl"].as_str(), json["size"].as_str()),
        (Some("facegan-swd"), Some("32x24"))
    );
    assert_eq!(r.images_per_side, 4);
    assert!(r.swd_x1e3 > 0.0 && r.total_s > 0.0 && r.threads >= 1);
    assert!((r.total_s - (r.pyramid_s + r.swd_s)).abs() < 1e-12);
    let again = bench_swd(4, 32, 24).swd_x1e3;
    assert!((r.swd_x1e3 - again).abs() <= 1e-9 * again, "deterministic");
}
