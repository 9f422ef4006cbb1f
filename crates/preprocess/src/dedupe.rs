//! Near-duplicate detection on 64-bit perceptual hashes (exact duplicates are found by content
//! hash in the pipeline).

use std::collections::HashMap;

use crate::decode::hash_distance;

/// A streaming index of perceptual hashes. Each hash is split into 8 bands of 8 bits; two hashes
/// within distance < 8 share at least one band exactly (pigeonhole), so only images in the same
/// band buckets are compared.
pub struct NearDuplicateIndex {
    max_distance: u32,
    hashes: Vec<(u64, usize)>,
    bands: Vec<HashMap<u8, Vec<u32>>>,
}

/// Bucket entries compared per band at most, so degenerate inputs (all-black frames) stay linear.
const MAX_BUCKET_SCAN: usize = 4096;

impl NearDuplicateIndex {
    pub fn new(max_distance: u32) -> Self {
        assert!(max_distance < 8, "the band index needs max_distance < 8");
        NearDuplicateIndex {
            max_distance,
            hashes: Vec::new(),
            bands: (0..8).map(|_| HashMap::new()).collect(),
        }
    }

    fn band(hash: u64, b: usize) -> u8 {
        (hash >> (b * 8)) as u8
    }

    /// Returns the id and distance of the closest earlier near-duplicate, if any.
    pub fn find(&self, hash: u64) -> Option<(usize, u32)> {
        let mut best: Option<(usize, u32)> = None;
        for (b, map) in self.bands.iter().enumerate() {
            if let Some(bucket) = map.get(&Self::band(hash, b)) {
                for &slot in bucket.iter().rev().take(MAX_BUCKET_SCAN) {
                    let (other, id) = self.hashes[slot as usize];
                    let d = hash_distance(hash, other);
                    if d <= self.max_distance && best.is_none_or(|(bid, bd)| (d, id) < (bd, bid)) {
                        best = Some((id, d));
                    }
                }
            }
        }
        best
    }

    /// Adds a hash under a caller-chosen id.
    pub fn insert(&mut self, hash: u64, id: usize) {
        let slot = self.hashes.len() as u32;
        for (b, map) in self.bands.iter_mut().enumerate() {
            map.entry(Self::band(hash, b)).or_default().push(slot);
        }
        self.hashes.push((hash, id));
    }
}
