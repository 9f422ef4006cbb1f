//! Duplicate detection: exact (same file bytes) and near (perceptual hash within a distance).

use std::collections::HashMap;

use crate::decode::hash_distance;

/// A streaming index of perceptual hashes. Each 256-bit hash is split into 16 bands of 16 bits;
/// two hashes within distance < 16 share at least one band exactly (pigeonhole), so only the
/// images in the same band buckets are compared.
pub struct NearDuplicateIndex {
    max_distance: u32,
    hashes: Vec<([u64; 4], usize)>,
    bands: Vec<HashMap<u16, Vec<u32>>>,
}

/// Bucket entries compared per band at most, so degenerate inputs (all-black frames) stay linear.
const MAX_BUCKET_SCAN: usize = 64;

impl NearDuplicateIndex {
    pub fn new(max_distance: u32) -> Self {
        assert!(max_distance < 16, "band index needs max_distance < 16");
        NearDuplicateIndex {
            max_distance,
            hashes: Vec::new(),
            bands: (0..16).map(|_| HashMap::new()).collect(),
        }
    }

    fn band(hash: &[u64; 4], b: usize) -> u16 {
        (hash[b / 4] >> ((b % 4) * 16)) as u16
    }

    /// Returns the id and distance of an earlier near-duplicate, if any, without inserting.
    pub fn find(&self, hash: &[u64; 4]) -> Option<(usize, u32)> {
        let mut best: Option<(usize, u32)> = None;
        for (b, map) in self.bands.iter().enumerate() {
            if let Some(bucket) = map.get(&Self::band(hash, b)) {
                for &slot in bucket.iter().take(MAX_BUCKET_SCAN) {
                    let (other, id) = &self.hashes[slot as usize];
                    let d = hash_distance(hash, other);
                    if d <= self.max_distance && best.is_none_or(|(bid, bd)| (d, *id) < (bd, bid)) {
                        best = Some((*id, d));
                    }
                }
            }
        }
        best
    }

    /// Adds a hash under a caller-chosen id.
    pub fn insert(&mut self, hash: [u64; 4], id: usize) {
        let slot = self.hashes.len() as u32;
        for (b, map) in self.bands.iter_mut().enumerate() {
            map.entry(Self::band(&hash, b)).or_default().push(slot);
        }
        self.hashes.push((hash, id));
    }
}
