//! `facegan compare`: several runs' quality curves in two charts and a table, with spreads.

use facegan_eval::compare::compare;
use facegan_rundir::quality_csv::{write_quality, QualityPoint};

fn point(images: u64, swd: f64, std: f64) -> QualityPoint {
    QualityPoint {
        step: images / 64,
        images_seen: images,
        train_minutes: images as f64 / 6000.0,
        swd,
        swd_finest: swd * 1.2,
        floor: 12.0,
        floor_finest: 10.0,
        probe_seconds: 1.0,
        swd_std: std,
        swd_finest_std: std,
        floor_std: 1.5,
        size: String::new(),
    }
}

/// Two runs: the charts by images and by minutes and the table are written; the table shows
/// each run's last and best score with its spread; a folder without a curve is refused by name.
#[test]
fn compare_draws_both_charts_and_tabulates_last_and_best_scores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, curve) in [
        (
            "a",
            vec![
                point(64, 150.0, 3.0),
                point(10_000, 40.0, 2.0),
                point(20_000, 45.0, 2.5),
            ],
        ),
        ("b", vec![point(64, 150.0, 3.0), point(10_000, 30.0, 1.0)]),
    ] {
        std::fs::create_dir_all(d.join(name)).unwrap();
        std::fs::write(d.join(name).join("config.toml"), "preset = \"faces48\"\n").unwrap();
        write_quality(&d.join(name).join("quality.csv"), &curve).unwrap();
    }
    let out = d.join("cmp");
    let c = compare(&[d.join("a"), d.join("b")], &out).unwrap();
    for f in ["compare-images.png", "compare-minutes.png", "compare.md"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(
        c.table.contains("| a | faces48 | 20000 | 3.3 | 45.00 ± 2.50 | 54.00 ± 2.50 | 40.00 ± 2.00 (10000) | 12.00 ± 1.50 |"),
        "{}",
        c.table
    );
    assert!(c.table.contains("| b | faces48 | 10000 |"), "{}", c.table);
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let err = compare(&[d.join("a"), d.join("empty")], &out)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("empty") && err.contains("no quality.csv"),
        "{err}"
    );
}
