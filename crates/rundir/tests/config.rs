//! The probe's time share in a run's config: its default is not written (configs written before
//! it existed read and write the same), a value in (0, 1] is read back, and anything else is
//! refused with the key named.

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
