//! The port against its reference: a reduced network made of pytorch-fid's own pieces
//! (`tools/inception_fixture.py`: its input step, a BasicConv2d, a max pool, its
//! FIDInceptionC, the global average pool) with seeded weights in the legacy `.pth` format of
//! pytorch-fid's real file, loaded with Burn's PyTorch reader; and the weight file's checks.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::Tensor;
use burn_store::{ModuleSnapshot, PytorchStore};
use facegan_inception::network::{BasicConv2d, InceptionC};
use facegan_inception::{input, weights};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/inception")
        .join(name)
}

#[derive(Module, Debug)]
struct Reduced<B: Backend> {
    stem: BasicConv2d<B>,
    block: InceptionC<B>,
}

impl<B: Backend> Reduced<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.stem.forward(x);
        let x = max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false);
        let x = self.block.forward(x);
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }
}

/// Input preparation (bilinear resize without corner alignment, [-1, 1]), BasicConv2d
/// (BatchNorm eps 0.001 with running statistics), FIDInceptionC (factorised 7x7
/// convolutions, average pooling that does not count the padding, branch order) match
/// pytorch-fid's within 1e-4 relative, loaded from a legacy `.pth` under PyTorch's keys.
#[test]
fn the_port_matches_pytorch_fid_on_a_reduced_network() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let device = Default::default();
    let mut net = Reduced::<Flex> {
        stem: BasicConv2d::square(&device, 3, 4, 3, 2, 0),
        block: InceptionC::new(&device, 4, 2),
    };
    let result = net
        .load_from(&mut PytorchStore::from_file(fixture("reduced.pth")).allow_partial(true))
        .unwrap();
    assert!(result.missing.is_empty(), "{:?}", result.missing);
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    // The loaded network as it is, then with its BatchNorms folded in (as facegan runs it).
    let fused = Reduced::<Flex> {
        stem: net.stem.clone().fuse(),
        block: net.block.clone().fuse(),
    };
    let (h, w) = (
        expected["height"].as_u64().unwrap() as usize,
        expected["width"].as_u64().unwrap() as usize,
    );
    let images: Vec<Vec<u8>> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|img| {
            img.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let run = |net: &Reduced<Flex>| {
        net.forward(input::batch::<Flex>(
            &refs,
            h,
            w,
            input::Resize::PytorchFid,
            &device,
        ))
        .into_data()
        .into_vec::<f32>()
        .unwrap()
    };
    let want: Vec<f32> = expected["features"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "the reference's features are all near zero");
    for (name, net) in [("as loaded", &net), ("fused", &fused)] {
        let got = run(net);
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * scale,
            "{name}: features differ by {worst} (scale {scale})"
        );
    }
}

/// A weight file whose SHA-256 is not the one expected is refused, with the file, both
/// checksums and where to download the real one in the message.
#[test]
fn a_wrong_checksum_is_refused() {
    let err = weights::check(&fixture("reduced.pth"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("reduced.pth"), "{err}");
    assert!(err.contains(weights::SHA256), "{err}");
    assert!(err.contains(weights::URL), "{err}");
    let sha = weights::sha256_of(&fixture("reduced.pth")).unwrap();
    let id = weights::check(&fixture("reduced.pth"), Some(&sha)).unwrap();
    assert!(!id.is_standard());
    assert!(id.label().contains("not comparable"), "{}", id.label());
}

/// Loading a file that is not pytorch-fid's network names the missing weights instead of
/// scoring with half-initialised layers.
#[test]
fn another_network_is_refused_by_name() {
    let sha = weights::sha256_of(&fixture("reduced.pth")).unwrap();
    let id = weights::check(&fixture("reduced.pth"), Some(&sha)).unwrap();
    let err = weights::load::<Flex>(&id, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not pytorch-fid's Inception-v3"), "{err}");
    assert!(err.contains("Conv2d_1a_3x3"), "{err}");
}

/// A missing weight file says where to get it: the URL, the size, the checksum and one
/// command.
#[test]
fn a_missing_file_says_where_to_get_it() {
    let err = weights::locate(Some(Path::new("/nonexistent/pt_inception.pth")))
        .unwrap_err()
        .to_string();
    for part in [weights::URL, weights::SHA256, "91 MiB", "curl -L -o"] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
}

/// `--fid-resize clean-fid` resizes as clean-fid does (PIL's bicubic on float channels, to
/// 299x299, clipped to [0, 255]): within 1e-3 of its output (a 255 scale) at every 7th row and
/// column of a 12x10 image (`clean_resize.json`, written by clean-fid itself).
#[test]
fn the_clean_fid_resize_matches_clean_fids() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let clean: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("clean_resize.json")).unwrap())
            .unwrap();
    let image: Vec<u8> = expected["images"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let got = input::clean_fid_resize(&mut fast_image_resize::Resizer::new(), &image, 12, 10);
    assert_eq!(got.len(), input::SIDE * input::SIDE * 3);
    let stride = clean["stride"].as_u64().unwrap() as usize;
    let rows = clean["resized"].as_array().unwrap();
    assert_eq!(rows.len(), input::SIDE.div_ceil(stride));
    let (mut worst, mut compared) = (0f64, 0);
    for (r, row) in rows.iter().enumerate() {
        for (c, px) in row.as_array().unwrap().iter().enumerate() {
            for (ch, v) in px.as_array().unwrap().iter().enumerate() {
                let ours = got[((r * stride) * input::SIDE + c * stride) * 3 + ch] as f64;
                worst = worst.max((ours - v.as_f64().unwrap()).abs());
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 43 * 43 * 3);
    assert!(worst < 1e-3, "clean-fid's resize differs by up to {worst}");
    // And it is not pytorch-fid's: the two resizes differ visibly.
    let device = Default::default();
    let bilinear = input::batch::<Flex>(&[&image], 12, 10, input::Resize::PytorchFid, &device);
    let bicubic = input::batch::<Flex>(&[&image], 12, 10, input::Resize::CleanFid, &device);
    let gap = (bilinear - bicubic).abs().max().into_scalar();
    assert!(gap > 0.05, "the resizes agree to {gap}");
}
