//! The latent file: it round-trips bit for bit, and every file that is not one, or was made
//! for another generator, is refused with the file and the problem named.

use facegan_latents::Latents;

fn sample() -> Latents {
    Latents {
        z: (0..12).map(|i| (i as f32 - 5.5) * 0.37).collect(),
        latent: 4,
        model: "latent = 4\n".into(),
        run: "runs/a".into(),
        checkpoint: "runs/a/checkpoints/ckpt_000000010".into(),
        source: "seed 7".into(),
    }
}

/// Written, then read back: the same latents and metadata, bit for bit.
#[test]
fn a_latent_file_round_trips_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.safetensors");
    let l = sample();
    l.write(&path).unwrap();
    let back = Latents::read(&path).unwrap();
    assert_eq!(back, l);
    assert_eq!(back.count(), 3);
    assert_eq!(back.row(1), &l.z[4..8]);
}

/// Not a safetensors file, another safetensors file, a wrong shape, a non-finite value and a
/// missing file are each refused by name.
#[test]
fn files_that_are_not_latent_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let err = format!("{:#}", Latents::read(&junk).unwrap_err());
    assert!(
        err.contains("junk.safetensors") && err.contains("not a facegan latent file"),
        "{err}"
    );

    let other = dir.path().join("other.safetensors");
    let bytes = safetensors_with(&[("format", "something-else")], "z", &[1.0, 2.0], &[1, 2]);
    std::fs::write(&other, bytes).unwrap();
    let err = format!("{:#}", Latents::read(&other).unwrap_err());
    assert!(err.contains("format \"something-else\""), "{err}");

    let flat = dir.path().join("flat.safetensors");
    let meta = [
        ("format", "facegan-latents"),
        ("version", "1"),
        ("latent", "2"),
    ];
    std::fs::write(&flat, safetensors_with(&meta, "z", &[1.0, 2.0], &[2])).unwrap();
    let err = format!("{:#}", Latents::read(&flat).unwrap_err());
    assert!(err.contains("not f32 [count, latent]"), "{err}");

    let nan = dir.path().join("nan.safetensors");
    std::fs::write(
        &nan,
        safetensors_with(&meta, "z", &[1.0, f32::NAN], &[1, 2]),
    )
    .unwrap();
    let err = format!("{:#}", Latents::read(&nan).unwrap_err());
    assert!(err.contains("non-finite"), "{err}");

    let newer = dir.path().join("newer.safetensors");
    let meta2 = [
        ("format", "facegan-latents"),
        ("version", "2"),
        ("latent", "2"),
    ];
    std::fs::write(&newer, safetensors_with(&meta2, "z", &[1.0, 2.0], &[1, 2])).unwrap();
    let err = format!("{:#}", Latents::read(&newer).unwrap_err());
    assert!(err.contains("version \"2\""), "{err}");

    let err = format!(
        "{:#}",
        Latents::read(&dir.path().join("missing")).unwrap_err()
    );
    assert!(
        err.contains("missing") && err.contains("cannot read"),
        "{err}"
    );
}

/// Latents of another size do not fit; latents found for a model that differs do not fit
/// either, but ones drawn from a seed do, and any latents fit their own model.
#[test]
fn latents_for_another_generator_do_not_fit() {
    let mut l = sample();
    let p = std::path::Path::new("z.safetensors");
    l.check_fits(p, 4, |_| vec!["g_start_channels 64 vs 128".into()])
        .unwrap();
    l.source = "projected from face.jpg".into();
    let err = l.check_fits(p, 8, |_| vec![]).unwrap_err().to_string();
    assert!(err.contains("size 4") && err.contains("takes 8"), "{err}");
    let err = l
        .check_fits(p, 4, |_| vec!["g_start_channels 64 vs 128".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another generator") && err.contains("g_start_channels"),
        "{err}"
    );
    l.check_fits(p, 4, |_| vec![]).unwrap();
}

/// A safetensors file with one f32 tensor and the given metadata.
fn safetensors_with(meta: &[(&str, &str)], name: &str, values: &[f32], shape: &[usize]) -> Vec<u8> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::tensor::Dtype::F32,
        shape.to_vec(),
        &bytes,
    )
    .unwrap();
    let meta = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize([(name, view)], Some(meta)).unwrap()
}
