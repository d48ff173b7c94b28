//! `relax --shard K/N`: one of N independent processes (a Slurm array
//! task, a shell loop, a node) relaxes its share of the inputs, and the
//! shares' outputs together are the serial run's output, bit for bit.
//!
//! Bit for bit needs the same batches: a crystal's prediction depends at
//! round-off level on which crystals share its forward pass (the batched
//! matrix products block differently). So the work is split by the serial
//! run's batches, never inside one: the batches are dealt out in N
//! contiguous, near-equal ranges. What a shard *writes* is split by unit:
//! a frame of a single input file, or a whole file of an input folder. A
//! unit belongs to the shard whose batches hold its first frame; a file
//! whose frames run on into the next shard's batches is relaxed whole by
//! its owner, which therefore recomputes the batches it shares with its
//! neighbour (at most one at each end) instead of splitting the file.

use std::ops::Range;

use e3relax::{Error, Result};

/// Shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Parses `K/N` (`K` from 0 to `N - 1`, as a Slurm array `--array=0-{N-1}`
/// numbers its tasks).
pub fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text}: give the shard as K/N, e.g. 0/4"))?;
    let index: usize = k
        .trim()
        .parse()
        .map_err(|e| format!("{text}: shard index {k:?}: {e}"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|e| format!("{text}: shard count {n:?}: {e}"))?;
    if count == 0 {
        return Err(format!("{text}: the shard count must be at least 1"));
    }
    if index >= count {
        return Err(format!(
            "{text}: shard index {index} is out of range: shards are numbered 0 to {} (0-based)",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// What one shard does: relax the frames `frames` (a range starting on a
/// batch boundary of the serial run) and write the units `units`, whose
/// frames are `written` (within `frames`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub frames: Range<usize>,
    pub units: Range<usize>,
    pub written: Range<usize>,
}

/// The plan of `shard` for units of `unit_frames[u]` frames each, relaxed
/// `batch_size` frames per pass. A shard with no unit gets empty ranges.
pub fn plan(unit_frames: &[usize], batch_size: usize, shard: Shard) -> Result<ShardPlan> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument(
            "batch_size must be at least 1".into(),
        ));
    }
    let total: usize = unit_frames.iter().sum();
    let batches = total.div_ceil(batch_size);
    let first_batch = shard.index * batches / shard.count;
    let end_batch = (shard.index + 1) * batches / shard.count;
    // The units whose first frame lies in this shard's batches.
    let mut start = 0;
    let mut units = Vec::new();
    for (u, &n) in unit_frames.iter().enumerate() {
        let batch = start / batch_size;
        if n > 0 && (first_batch..end_batch).contains(&batch) {
            units.push((u, start, start + n));
        }
        start += n;
    }
    let (Some(first), Some(last)) = (units.first(), units.last()) else {
        return Ok(ShardPlan {
            frames: 0..0,
            units: 0..0,
            written: 0..0,
        });
    };
    let from = first.1 / batch_size * batch_size;
    let to = last.2.div_ceil(batch_size) * batch_size;
    Ok(ShardPlan {
        frames: from..to.min(total),
        units: first.0..last.0 + 1,
        written: first.1..last.2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_parsed_zero_based_and_checked() {
        assert_eq!(parse_shard("0/4"), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(parse_shard(" 3 / 4 "), Ok(Shard { index: 3, count: 4 }));
        assert!(parse_shard("4/4").unwrap_err().contains("0 to 3"));
        assert!(parse_shard("1/0").unwrap_err().contains("at least 1"));
        assert!(parse_shard("1").unwrap_err().contains("K/N"));
        assert!(parse_shard("a/2").unwrap_err().contains("index"));
    }

    /// Every unit is written by exactly one shard, in order; every shard's
    /// frames start on a batch boundary and cover its units' frames.
    #[test]
    fn every_unit_is_written_once_from_whole_batches() {
        let cases: Vec<Vec<usize>> = vec![
            vec![1; 37],
            vec![5, 1, 9, 2, 2, 30, 1, 1, 4],
            vec![100],
            vec![3, 0, 3],
            vec![],
        ];
        for units in &cases {
            for batch_size in [1, 4, 16] {
                for count in 1..6 {
                    let mut next_unit = 0;
                    for index in 0..count {
                        let p = plan(units, batch_size, Shard { index, count }).unwrap();
                        if p.units.is_empty() {
                            assert!(p.frames.is_empty());
                            continue;
                        }
                        // Empty units belong to nobody: skip them.
                        while next_unit < p.units.start && units[next_unit] == 0 {
                            next_unit += 1;
                        }
                        assert_eq!(p.units.start, next_unit, "{units:?} {batch_size} {count}");
                        next_unit = p.units.end;
                        assert_eq!(p.frames.start % batch_size, 0);
                        let first: usize = units[..p.units.start].iter().sum();
                        let last: usize = units[..p.units.end].iter().sum();
                        assert!(p.frames.start <= first && last <= p.frames.end);
                        assert_eq!(p.written, first..last);
                        // Never more than one batch of extra work at each end.
                        assert!(first - p.frames.start < batch_size);
                        assert!(p.frames.end - last < batch_size);
                    }
                    while next_unit < units.len() && units[next_unit] == 0 {
                        next_unit += 1;
                    }
                    assert_eq!(next_unit, units.len(), "{units:?} {batch_size} {count}");
                }
            }
        }
    }

    #[test]
    fn single_frames_are_dealt_out_by_batches() {
        let units = vec![1; 10];
        let shard = |index| plan(&units, 4, Shard { index, count: 2 }).unwrap();
        // Three batches: [0, 4), [4, 8), [8, 10); shard 0 gets the first.
        assert_eq!(
            shard(0),
            ShardPlan {
                frames: 0..4,
                units: 0..4,
                written: 0..4
            }
        );
        assert_eq!(
            shard(1),
            ShardPlan {
                frames: 4..10,
                units: 4..10,
                written: 4..10
            }
        );
        // More shards than batches: some have nothing to do.
        let empty = plan(&units, 4, Shard { index: 0, count: 5 }).unwrap();
        assert!(empty.units.is_empty() && empty.frames.is_empty());
    }
}
