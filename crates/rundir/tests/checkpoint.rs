//! Checkpoint folders under failure: a failed call at any position of a write leaves the run's
//! earlier checkpoints (numbered and `best`) as they were and never a `DONE` folder whose files
//! are not the ones meant; a crash between setting `best` aside and renaming the new one in is
//! recovered at the next start; what an earlier run left is found before anything is deleted.

use std::path::Path;

use facegan_rundir::checkpoint::{self, CheckpointFile};
use facegan_rundir::{history, Disk};

/// A checkpoint's worth of files whose bytes depend on `tag`.
fn files(tag: u8) -> Vec<(String, Vec<u8>)> {
    [
        "generator.bin",
        "discriminator.bin",
        "optim_g.bin",
        "state.json",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| {
        (
            n.to_string(),
            vec![tag.wrapping_add(i as u8); 1000 + 300 * i],
        )
    })
    .collect()
}

fn write(dir: &Path, tag: u8, disk: &mut Disk) -> anyhow::Result<()> {
    let f = files(tag);
    let refs: Vec<CheckpointFile> = f
        .iter()
        .map(|(name, bytes)| CheckpointFile { name, bytes })
        .collect();
    checkpoint::write(dir, &refs, disk)
}

/// The files of a checkpoint folder as written by `write(.., tag, ..)`.
fn holds(dir: &Path, tag: u8) -> bool {
    checkpoint::verify(dir).is_ok()
        && files(tag)
            .iter()
            .all(|(n, b)| std::fs::read(dir.join(n)).ok().as_deref() == Some(b.as_slice()))
}

#[test]
fn a_failure_at_any_position_of_a_write_keeps_the_earlier_checkpoints() {
    // How many file-system calls a write of a new numbered folder and a replacement of `best`
    // make, from clean runs.
    let counts: Vec<usize> = [false, true]
        .iter()
        .map(|&best| {
            let d = tempfile::tempdir().unwrap();
            let run = d.path();
            write(&checkpoint::numbered_dir(run, 1), 1, &mut Disk::real()).unwrap();
            write(&checkpoint::best_dir(run), 1, &mut Disk::real()).unwrap();
            let target = if best {
                checkpoint::best_dir(run)
            } else {
                checkpoint::numbered_dir(run, 2)
            };
            let mut disk = Disk::real();
            write(&target, 2, &mut disk).unwrap();
            assert!(holds(&target, 2));
            disk.calls()
        })
        .collect();
    assert!(counts[0] >= 15 && counts[1] > counts[0], "{counts:?}");
    for (best, &count) in [false, true].iter().zip(&counts) {
        for k in 0..count {
            let d = tempfile::tempdir().unwrap();
            let run = d.path();
            write(&checkpoint::numbered_dir(run, 1), 1, &mut Disk::real()).unwrap();
            write(&checkpoint::best_dir(run), 1, &mut Disk::real()).unwrap();
            let target = if *best {
                checkpoint::best_dir(run)
            } else {
                checkpoint::numbered_dir(run, 2)
            };
            let result = write(&target, 2, &mut Disk::failing_at(k));
            let at = format!("best {best}, failure at call {k}");
            // The earlier numbered checkpoint is untouched whatever happened.
            assert!(holds(&checkpoint::numbered_dir(run, 1), 1), "{at}");
            match result {
                Err(e) => {
                    let msg = format!("{e:#}");
                    assert!(
                        msg.contains("earlier checkpoints are untouched"),
                        "{at}: {msg}"
                    );
                    assert!(msg.contains("injected failure"), "{at}: {msg}");
                    if *best {
                        assert!(holds(&checkpoint::best_dir(run), 1), "{at}: old best kept");
                    } else {
                        assert!(!target.exists(), "{at}: no half checkpoint");
                        assert_eq!(checkpoint::latest(run).unwrap().unwrap().step, 1, "{at}");
                    }
                }
                // Only the clean-up after the rename may fail without failing the write.
                Ok(()) => assert!(holds(&target, 2), "{at}: a written checkpoint is whole"),
            }
            checkpoint::recover(run);
            let leftovers: Vec<String> = std::fs::read_dir(checkpoint::checkpoints_dir(run))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(leftovers.is_empty(), "{at}: {leftovers:?}");
            let best_dir = checkpoint::best_dir(run);
            let best_whole = holds(&best_dir, 1) || (*best && holds(&best_dir, 2));
            assert!(best_whole, "{at}: best after recovery");
        }
    }
}

#[test]
fn a_best_set_aside_by_a_crash_is_put_back_at_the_next_start() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path();
    write(&checkpoint::best_dir(run), 1, &mut Disk::real()).unwrap();
    // A process killed after setting `best` aside, with its new copy complete in a temp folder.
    let root = checkpoint::checkpoints_dir(run);
    std::fs::rename(root.join("best"), root.join(".aside-best")).unwrap();
    write(&root.join(".tmp-best-4000000"), 2, &mut Disk::real()).unwrap();
    checkpoint::recover(run);
    assert!(holds(&checkpoint::best_dir(run), 1));
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1, "only best/");
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_and_rotation_keeps_the_newest() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path();
    for step in 1..=4 {
        write(
            &checkpoint::numbered_dir(run, step),
            step as u8,
            &mut Disk::real(),
        )
        .unwrap();
        checkpoint::rotate(run, 2).unwrap();
    }
    let steps: Vec<u64> = checkpoint::list(run)
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [3, 4]);
    // A file truncated after the write: its checksum (of the bytes meant) no longer matches.
    let g = checkpoint::numbered_dir(run, 4).join("generator.bin");
    std::fs::write(&g, b"short").unwrap();
    let err = checkpoint::verify(&checkpoint::numbered_dir(run, 4)).unwrap_err();
    assert!(format!("{err:#}").contains("generator.bin"), "{err:#}");
    assert_eq!(checkpoint::latest(run).unwrap().unwrap().step, 3);
    // A missing file is damage too.
    std::fs::remove_file(checkpoint::numbered_dir(run, 3).join("optim_g.bin")).unwrap();
    assert_eq!(checkpoint::latest(run).unwrap(), None);
}

#[test]
fn history_is_found_and_cleared_and_stale_temp_files_removed() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path();
    assert!(
        history::found(run).is_empty(),
        "an empty folder has no history"
    );
    std::fs::write(run.join("config.toml"), "x").unwrap();
    std::fs::write(run.join("train.log"), "new run\n").unwrap();
    assert!(
        history::found(run).is_empty(),
        "a run stopped before its first epoch"
    );
    std::fs::write(run.join("metrics.csv"), "epoch\n1\n2\n").unwrap();
    std::fs::create_dir_all(run.join("samples")).unwrap();
    std::fs::write(run.join("samples/epoch_0001.png"), "png").unwrap();
    write(&checkpoint::best_dir(run), 1, &mut Disk::real()).unwrap();
    let found = history::found(run).join("\n");
    assert!(found.contains("metrics.csv (2 rows)"), "{found}");
    assert!(found.contains("1 sample grid(s)"), "{found}");
    assert!(found.contains("best"), "{found}");
    std::fs::write(run.join(".loss.png.tmp-4000000"), "part").unwrap();
    std::fs::write(run.join("samples/.epoch_0002.png.tmp-4000000"), "part").unwrap();
    std::fs::write(run.join("notes.txt"), "mine").unwrap();
    history::remove_stale_temp_files(run);
    assert!(!run.join(".loss.png.tmp-4000000").exists());
    assert!(!run.join("samples/.epoch_0002.png.tmp-4000000").exists());
    history::clear(run).unwrap();
    assert!(history::found(run).is_empty());
    assert!(
        run.join("notes.txt").is_file(),
        "a user's own file survives"
    );
}
