//! Record layouts of earlier checkpoints, so that runs trained by an older facegan still load.
//!
//! Checkpoints store each network with Burn's `BinFileRecorder`, whose bincode layout is
//! positional: a field added to a module shifts every byte after it, and the old file no longer
//! parses. The layouts so far:
//!
//! - **v1** (before the seed's Keras padding, 2026-11-30 morning): [`UpConv`] had no `crop_end`
//!   field. Only the generator differs; the discriminator and both optimizer states are as now.
//! - **v2** (before progressive growing, 2026-12-07): [`UpConv`] records `crop_end` (a constant,
//!   written as an empty record); the generator has no `to_rgb_steps` and the discriminator no
//!   `from_rgb`.
//! - **v3** (before skip-layer excitation, 2026-12-07): both networks end with progressive
//!   growing's extra layers (empty lists unless the model is progressive or, for G, skips). The
//!   generator's last field, `skip`, is a constant from the config: its empty record is one
//!   `None` byte, and a file written before it existed ends where it would start, which
//!   `EmptyRecord`'s reader accepts, so those files parse as v3 unchanged
//!   (`crates/model/tests/sle.rs` pins it).
//! - **v4** (now): the generator ends with `excitations`, a list (empty unless `g_sle`).
//!
//! Each older generator record converts to the next layout field by field (v1 to v2 to v3 to
//! today's), so a new layout adds one conversion; `crop_end` is not data (it follows from the
//! config) and the extra layers of a model that does not grow are empty lists, so nothing is
//! invented. `tests/e2e.rs`
//! (`checkpoints_of_earlier_layouts_sample_the_same_faces_and_resume`) loads real v1, v2 and v3
//! checkpoints written by the builds that had those layouts (`tests/fixtures/checkpoints/`).

use burn::module::{EmptyRecord, Module};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::Linear;
use burn::record::Record;
use burn::tensor::backend::Backend;

use burn::nn::Dropout;

use crate::discriminator::{DiscriminatorBlock, DiscriminatorRecord};
use crate::generator::{GeneratorBlockRecord, GeneratorRecord, GeneratorRefine};
use crate::layers::{BatchNorm2d, SpectralNorm, UpConvRecord};

/// [`UpConv`](crate::layers::UpConv)'s v1 record: the two optional layers, no `crop_end`.
#[derive(Record)]
pub struct UpConvRecordV1<B: Backend> {
    pub transposed: <Option<ConvTranspose2d<B>> as Module<B>>::Record,
    pub resize: <Option<Conv2d<B>> as Module<B>>::Record,
}

/// A generator block's v1 record (its upsampling layer is v1).
#[derive(Record)]
pub struct GeneratorBlockRecordV1<B: Backend> {
    pub conv: UpConvRecordV1<B>,
    pub norm: <Option<BatchNorm2d<B>> as Module<B>>::Record,
    pub refine: <Vec<GeneratorRefine<B>> as Module<B>>::Record,
}

/// The generator's v1 record.
#[derive(Record)]
pub struct GeneratorRecordV1<B: Backend> {
    pub project: <Linear<B> as Module<B>>::Record,
    pub blocks: Vec<GeneratorBlockRecordV1<B>>,
    pub to_rgb: <Conv2d<B> as Module<B>>::Record,
    pub start: EmptyRecord,
    pub slope: <f64 as Module<B>>::Record,
    pub residual: <bool as Module<B>>::Record,
}

impl<B: Backend> From<GeneratorRecordV1<B>> for GeneratorRecordV2<B> {
    fn from(v1: GeneratorRecordV1<B>) -> Self {
        GeneratorRecordV2 {
            project: v1.project,
            blocks: v1
                .blocks
                .into_iter()
                .map(|b| GeneratorBlockRecord {
                    conv: UpConvRecord {
                        transposed: b.conv.transposed,
                        resize: b.conv.resize,
                        crop_end: EmptyRecord::new(),
                    },
                    norm: b.norm,
                    refine: b.refine,
                })
                .collect(),
            to_rgb: v1.to_rgb,
            start: v1.start,
            slope: v1.slope,
            residual: v1.residual,
        }
    }
}

impl<B: Backend> From<GeneratorRecordV1<B>> for GeneratorRecord<B> {
    fn from(v1: GeneratorRecordV1<B>) -> Self {
        GeneratorRecordV2::from(v1).into()
    }
}

/// The generator's v2 record: today's without `to_rgb_steps`.
#[derive(Record)]
pub struct GeneratorRecordV2<B: Backend> {
    pub project: <Linear<B> as Module<B>>::Record,
    pub blocks: Vec<GeneratorBlockRecord<B>>,
    pub to_rgb: <Conv2d<B> as Module<B>>::Record,
    pub start: EmptyRecord,
    pub slope: <f64 as Module<B>>::Record,
    pub residual: <bool as Module<B>>::Record,
}

impl<B: Backend> From<GeneratorRecordV2<B>> for GeneratorRecordV3<B> {
    fn from(v2: GeneratorRecordV2<B>) -> Self {
        GeneratorRecordV3 {
            project: v2.project,
            blocks: v2.blocks,
            to_rgb: v2.to_rgb,
            start: v2.start,
            slope: v2.slope,
            residual: v2.residual,
            to_rgb_steps: Vec::new(),
            skip: EmptyRecord::new(),
        }
    }
}

impl<B: Backend> From<GeneratorRecordV2<B>> for GeneratorRecord<B> {
    fn from(v2: GeneratorRecordV2<B>) -> Self {
        GeneratorRecordV3::from(v2).into()
    }
}

/// The generator's v3 record: today's without `excitations`.
#[derive(Record)]
pub struct GeneratorRecordV3<B: Backend> {
    pub project: <Linear<B> as Module<B>>::Record,
    pub blocks: Vec<GeneratorBlockRecord<B>>,
    pub to_rgb: <Conv2d<B> as Module<B>>::Record,
    pub start: EmptyRecord,
    pub slope: <f64 as Module<B>>::Record,
    pub residual: <bool as Module<B>>::Record,
    pub to_rgb_steps: <Vec<Conv2d<B>> as Module<B>>::Record,
    pub skip: EmptyRecord,
}

impl<B: Backend> From<GeneratorRecordV3<B>> for GeneratorRecord<B> {
    fn from(v3: GeneratorRecordV3<B>) -> Self {
        GeneratorRecord {
            project: v3.project,
            blocks: v3.blocks,
            to_rgb: v3.to_rgb,
            start: v3.start,
            slope: v3.slope,
            residual: v3.residual,
            to_rgb_steps: v3.to_rgb_steps,
            skip: v3.skip,
            excitations: Vec::new(),
        }
    }
}

/// The discriminator's v1 and v2 record: today's without `from_rgb`.
#[derive(Record)]
pub struct DiscriminatorRecordV2<B: Backend> {
    pub blocks: <Vec<DiscriminatorBlock<B>> as Module<B>>::Record,
    pub dropout: <Dropout as Module<B>>::Record,
    pub head: <Linear<B> as Module<B>>::Record,
    pub head_sn: <Option<SpectralNorm<B>> as Module<B>>::Record,
    pub slope: <f64 as Module<B>>::Record,
    pub mbstd_group: <usize as Module<B>>::Record,
    pub residual: <bool as Module<B>>::Record,
}

impl<B: Backend> From<DiscriminatorRecordV2<B>> for DiscriminatorRecord<B> {
    fn from(v2: DiscriminatorRecordV2<B>) -> Self {
        DiscriminatorRecord {
            blocks: v2.blocks,
            dropout: v2.dropout,
            head: v2.head,
            head_sn: v2.head_sn,
            slope: v2.slope,
            mbstd_group: v2.mbstd_group,
            residual: v2.residual,
            from_rgb: Vec::new(),
        }
    }
}
