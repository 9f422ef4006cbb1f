//! Writes facegan's side of the `seed` step check (see `facegan_bench::seed_check`) to the
//! folder given as the only argument; `tools/keras_seed_oracle.py` compares it with Keras.
//! Run by `make check-seed`.

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: seed_check_dump OUT_DIR"))?;
    facegan_bench::seed_check::write_dump::<facegan_trainer::device::CpuBackend>(dir.as_ref())?;
    eprintln!("facegan's seed-step dump written to {dir}");
    Ok(())
}
