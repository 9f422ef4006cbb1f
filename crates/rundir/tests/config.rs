//! Settings of a run's config: the probe's time share (its default is not written, so configs
//! written before it existed read and write the same; a value in (0, 1] is read back, anything
//! else is refused with the key named), and the step the G EMA's warm-up counts from.

use facegan_rundir::config::TrainConfig;

/// `eval_time_share` defaults to 0.05, stays out of a written config at the default, round-trips
/// when set, and is refused outside (0, 1].
#[test]
fn eval_time_share_defaults_round_trips_and_refuses_out_of_range() {
    let cfg = TrainConfig::preset("faces48").unwrap();
    assert_eq!(cfg.eval_time_share, 0.05);
    assert!(!cfg.to_toml().contains("eval_time_share"));
    let every =
        TrainConfig::from_toml_str("preset = \"faces48\"\neval_time_share = 1.0\n").unwrap();
    every.validate().unwrap();
    assert_eq!(every.eval_time_share, 1.0);
    let back = TrainConfig::from_toml_str(&every.to_toml()).unwrap();
    assert_eq!(back.eval_time_share, 1.0);
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let mut cfg = TrainConfig::preset("faces48").unwrap();
        cfg.eval_time_share = bad;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("eval_time_share"), "{bad}: {err}");
    }
}

/// The EMA's warm-up counts the global step, and in a growing run restarts at 0 when each new
/// size begins (its fade-in included), counting that size's steps from there.
#[test]
fn the_ema_warm_up_restarts_when_a_growing_run_reaches_a_new_size() {
    let plain = TrainConfig::preset("faces96").unwrap();
    assert_eq!(plain.ema_warmup_step(5_000, 5_000 * 64), 5_000);
    let grow = TrainConfig::from_toml_str(
        "preset = \"grow96\"\nbatch = 64\n[grow]\nsizes = [[24, 20], [48, 40], [96, 80]]\nimages = [30000, 60000]\nfade = 20000\n",
    )
    .unwrap();
    grow.validate().unwrap();
    let at = |images: u64| grow.ema_warmup_step(images / 64, images);
    assert_eq!(at(29_952), 468, "the first size: the global step");
    assert_eq!(at(30_016), 0, "48x40 begins");
    assert_eq!(at(30_016 + 640), 10);
    assert_eq!(at(89_984), (89_984 - 30_000) / 64);
    assert_eq!(at(90_048), 0, "96x80 begins");
    assert_eq!(at(200_000), (200_000 - 90_000) / 64);
}
