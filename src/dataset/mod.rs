//! Relaxation pairs in the format of the shared datasets: a folder with
//! `unrelaxed.extxyz` and `relaxed.extxyz` (either may be `.gz`), the same
//! structures under the same `id`s. A pair whose atoms disagree, or one side
//! of which is missing or invalid, is reported in `skipped` and never used.
//! A folder may also hold `trajectory.extxyz` (or `.gz`): intermediate frames
//! of the relaxations, each with the `id` of its pair; each frame is another
//! input whose target is that pair's relaxed structure, and it travels with
//! its pair through any split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{self, Format};
use crate::metrics::Target;
use crate::structure::Structure;

mod split;
pub use split::{DataSplit, SplitSpec};

/// One unrelaxed/relaxed pair and its training target.
#[derive(Debug, Clone)]
pub struct RelaxationPair {
    pub id: String,
    pub unrelaxed: Structure,
    pub relaxed: Structure,
    pub target: Target,
    /// Intermediate frames of this pair's relaxation, as extra inputs.
    pub frames: Vec<Frame>,
}

impl RelaxationPair {
    /// The relaxed structure as an input (the unrelaxed one's metadata,
    /// the target's cell and positions, unwrapped next to the unrelaxed
    /// atoms): a relaxation of it should give it back.
    pub fn relaxed_as_input(&self) -> Structure {
        let mut relaxed = self.unrelaxed.clone();
        relaxed.lattice = self.target.lattice;
        relaxed.positions = self.target.positions.clone();
        relaxed
    }
}

/// One intermediate relaxation frame and its target (the pair's relaxed
/// structure, unwrapped next to this frame's positions).
#[derive(Debug, Clone)]
pub struct Frame {
    pub input: Structure,
    pub target: Target,
}

/// A pair that was not used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedPair {
    pub id: String,
    pub reason: String,
}

/// The usable pairs of a dataset plus the report of skipped ones.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub pairs: Vec<RelaxationPair>,
    pub skipped: Vec<SkippedPair>,
    /// Trajectory frames that were not used, and why (same form as pairs).
    pub skipped_frames: Vec<SkippedPair>,
}

fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [
        format!("{stem}.extxyz"),
        format!("{stem}.extxyz.gz"),
        format!("{stem}.xyz"),
        format!("{stem}.xyz.gz"),
    ];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: no {stem}.extxyz (or .extxyz.gz) in this folder",
                dir.display()
            ))
        })
}

impl Dataset {
    /// Loads the pairs of a dataset folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let unrelaxed = find_file(dir, "unrelaxed")?;
        let relaxed = find_file(dir, "relaxed")?;
        let mut dataset = Dataset::from_files(&unrelaxed, &relaxed)?;
        if let Ok(trajectory) = find_file(dir, "trajectory") {
            dataset.add_frames(&trajectory)?;
        }
        Ok(dataset)
    }

    /// Attaches the frames of a trajectory file to their pairs (by `id`).
    /// A frame whose id names no usable pair, whose atoms differ from the
    /// pair's, or that is not a valid structure is reported and left out.
    pub fn add_frames(&mut self, trajectory: &Path) -> Result<()> {
        let text = io::read_text(trajectory)?;
        let frames = io::parse(&text, Format::ExtXyz)
            .map_err(|e| e.in_file(&trajectory.display().to_string()))?;
        let index: HashMap<String, usize> = self
            .pairs
            .iter()
            .enumerate()
            .map(|(k, p)| (p.id.clone(), k))
            .collect();
        for (k, frame) in frames.into_iter().enumerate() {
            let name = format!("{} frame {}", trajectory.display(), k + 1);
            let Some(id) = frame.id.clone() else {
                return Err(Error::InvalidArgument(format!("{name}: no id")));
            };
            let skip = |reason: String| SkippedPair {
                id: id.clone(),
                reason: format!("{name}: {reason}"),
            };
            let Some(&p) = index.get(&id) else {
                self.skipped_frames
                    .push(skip("its id is not a usable pair".into()));
                continue;
            };
            let pair = &mut self.pairs[p];
            if frame.numbers != pair.unrelaxed.numbers {
                self.skipped_frames
                    .push(skip("its atoms differ from the pair's".into()));
                continue;
            }
            if let Err(e) = frame.validate() {
                self.skipped_frames.push(skip(e.to_string()));
                continue;
            }
            pair.frames.push(Frame {
                target: Target::new(&frame, &pair.relaxed),
                input: frame,
            });
        }
        Ok(())
    }

    /// Loads pairs from two multi-frame files. Frames are matched by `id`;
    /// when neither file has ids, by position.
    pub fn from_files(unrelaxed: &Path, relaxed: &Path) -> Result<Self> {
        let read = |p: &Path| -> Result<Vec<Structure>> {
            let text = io::read_text(p)?;
            io::parse(&text, Format::ExtXyz).map_err(|e| e.in_file(&p.display().to_string()))
        };
        let before = read(unrelaxed)?;
        let after = read(relaxed)?;
        let key = |frames: &[Structure], path: &Path| -> Result<Vec<String>> {
            let with_id = frames.iter().filter(|s| s.id.is_some()).count();
            match with_id {
                0 => Ok((0..frames.len())
                    .map(|i| format!("frame {}", i + 1))
                    .collect()),
                n if n == frames.len() => {
                    Ok(frames.iter().map(|s| s.id.clone().unwrap()).collect())
                }
                _ => Err(Error::InvalidArgument(format!(
                    "{}: some frames have an id and some do not; pairs cannot be matched",
                    path.display()
                ))),
            }
        };
        let before_ids = key(&before, unrelaxed)?;
        let after_ids = key(&after, relaxed)?;
        refuse_duplicate_ids(&before_ids, unrelaxed)?;
        refuse_duplicate_ids(&after_ids, relaxed)?;
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for (k, id) in after_ids.iter().enumerate() {
            by_id.insert(id, k);
        }
        let mut dataset = Dataset::default();
        let mut used = vec![false; after.len()];
        for (k, id) in before_ids.iter().enumerate() {
            let skip = |reason: String| SkippedPair {
                id: id.clone(),
                reason,
            };
            let Some(&m) = by_id.get(id.as_str()) else {
                dataset
                    .skipped
                    .push(skip(format!("not in {}", relaxed.display())));
                continue;
            };
            used[m] = true;
            let (u, r) = (&before[k], &after[m]);
            let problem = if u.numbers.len() != r.numbers.len() {
                Some(format!(
                    "{} atoms unrelaxed but {} relaxed",
                    u.natoms(),
                    r.natoms()
                ))
            } else if let Some(i) = (0..u.natoms()).find(|&i| u.numbers[i] != r.numbers[i]) {
                Some(format!(
                    "atom {} is Z={} unrelaxed but Z={} relaxed",
                    i + 1,
                    u.numbers[i],
                    r.numbers[i]
                ))
            } else if let Err(e) = u.validate() {
                Some(format!("unrelaxed: {e}"))
            } else if let Err(e) = r.validate() {
                Some(format!("relaxed: {e}"))
            } else {
                None
            };
            match problem {
                Some(reason) => dataset.skipped.push(skip(reason)),
                None => dataset.pairs.push(RelaxationPair {
                    id: id.clone(),
                    target: Target::new(u, r),
                    unrelaxed: u.clone(),
                    relaxed: r.clone(),
                    frames: Vec::new(),
                }),
            }
        }
        for (m, id) in after_ids.iter().enumerate() {
            if !used[m] {
                dataset.skipped.push(SkippedPair {
                    id: id.clone(),
                    reason: format!("not in {}", unrelaxed.display()),
                });
            }
        }
        Ok(dataset)
    }
}

/// Pairs are matched by id, so an id must name one frame per file: a
/// repeated id would pair frames silently with the wrong partner.
fn refuse_duplicate_ids(ids: &[String], path: &Path) -> Result<()> {
    let mut frames_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, id) in ids.iter().enumerate() {
        frames_of.entry(id).or_default().push(k + 1);
    }
    let mut repeated: Vec<(&str, Vec<usize>)> =
        frames_of.into_iter().filter(|(_, f)| f.len() > 1).collect();
    if repeated.is_empty() {
        return Ok(());
    }
    repeated.sort_by_key(|(_, frames)| frames[0]);
    let shown: Vec<String> = repeated
        .iter()
        .take(5)
        .map(|(id, frames)| format!("'{id}' (frames {frames:?})"))
        .collect();
    Err(Error::InvalidArgument(format!(
        "{}: {} id(s) name more than one frame: {}{}; each pair needs its own id",
        path.display(),
        repeated.len(),
        shown.join(", "),
        if repeated.len() > 5 { ", ..." } else { "" }
    )))
}

/// The group a pair belongs to in a split by `key`: its unrelaxed
/// structure's `key` info value, or its own id when it has none.
pub fn split_group(pair: &RelaxationPair, key: &str) -> String {
    pair.unrelaxed
        .info_value(key)
        .map(str::to_string)
        .unwrap_or_else(|| format!("id:{}", pair.id))
}

/// Splits pairs into `(training, validation)` by whole groups: pairs that
/// share the info value `key` (e.g. `prototype`) land on the same side, so
/// the validation set holds prototypes the training never saw. Pairs
/// without the key are groups of their own. Deterministic for a seed.
pub fn split_by_group(
    pairs: Vec<RelaxationPair>,
    key: &str,
    fraction: f64,
    seed: u64,
) -> (Vec<RelaxationPair>, Vec<RelaxationPair>) {
    let group = |p: &RelaxationPair| split_group(p, key);
    let mut groups: Vec<String> = pairs.iter().map(group).collect();
    groups.sort();
    groups.dedup();
    let mut rng = crate::rng::SplitMix64::new(seed);
    rng.shuffle(&mut groups);
    let wanted = (fraction * pairs.len() as f64).round() as usize;
    let mut validation_groups = std::collections::HashSet::new();
    let mut count = 0;
    let sizes: HashMap<String, usize> = pairs.iter().fold(HashMap::new(), |mut m, p| {
        *m.entry(group(p)).or_insert(0) += 1;
        m
    });
    for g in groups {
        if count >= wanted {
            break;
        }
        count += sizes[&g];
        validation_groups.insert(g);
    }
    pairs
        .into_iter()
        .partition(|p| !validation_groups.contains(&group(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: &str, z: u32, x: f64) -> String {
        format!("2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 id={id}\nH 0 0 0\n{} {x} 0 0\n", crate::elements::symbol(z).unwrap())
    }

    #[test]
    fn matches_by_id_and_reports_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let before = [
            frame("a", 8, 2.0),
            frame("b", 8, 2.0),
            frame("c", 8, 2.0),
            frame("d", 8, 2.0),
        ]
        .concat();
        // b: species differ; c: missing; d: atoms overlap in the relaxed one; e: extra.
        let after = [
            frame("d", 8, 0.1),
            frame("b", 9, 2.0),
            frame("a", 8, 2.1),
            frame("e", 8, 2.0),
        ]
        .concat();
        std::fs::write(dir.path().join("unrelaxed.extxyz"), before).unwrap();
        std::fs::write(dir.path().join("relaxed.extxyz"), after).unwrap();
        let d = Dataset::from_dir(dir.path()).unwrap();
        assert_eq!(d.pairs.len(), 1);
        assert_eq!(d.pairs[0].id, "a");
        assert_eq!(d.pairs[0].relaxed.positions[1][0], 2.1);
        let reasons: Vec<(String, String)> = d
            .skipped
            .iter()
            .map(|s| (s.id.clone(), s.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[0].0 == "b"
                && reasons[0]
                    .1
                    .contains("atom 2 is Z=8 unrelaxed but Z=9 relaxed")
        );
        assert!(reasons[1].0 == "c" && reasons[1].1.starts_with("not in"));
        assert!(reasons[2].0 == "d" && reasons[2].1.contains("relaxed: invalid structure"));
        assert!(reasons[3].0 == "e" && reasons[3].1.contains("unrelaxed.extxyz"));
    }

    #[test]
    fn duplicate_ids_are_an_error_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let same = [frame("a", 8, 2.0), frame("b", 8, 2.0), frame("a", 8, 2.0)].concat();
        let unique = [frame("a", 8, 2.0), frame("b", 8, 2.0)].concat();
        for (before, after, file) in [
            (&same, &unique, "unrelaxed.extxyz"),
            (&unique, &same, "relaxed.extxyz"),
        ] {
            std::fs::write(dir.path().join("unrelaxed.extxyz"), before).unwrap();
            std::fs::write(dir.path().join("relaxed.extxyz"), after).unwrap();
            let e = Dataset::from_dir(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains(file)
                    && e.contains("1 id(s) name more than one frame: 'a' (frames [1, 3])"),
                "{e}"
            );
        }
    }

    #[test]
    fn split_keeps_groups_together() {
        let dir = tempfile::tempdir().unwrap();
        let frames: String = (0..20)
            .map(|k| {
                frame(&format!("p{k}"), 8, 2.0)
                    .replace(" id=", &format!(" prototype=g{} id=", k % 5))
            })
            .collect();
        std::fs::write(dir.path().join("unrelaxed.extxyz"), &frames).unwrap();
        std::fs::write(dir.path().join("relaxed.extxyz"), &frames).unwrap();
        let d = Dataset::from_dir(dir.path()).unwrap();
        let (train, val) = split_by_group(d.pairs.clone(), "prototype", 0.2, 1);
        assert_eq!(train.len() + val.len(), 20);
        assert_eq!(val.len(), 4);
        let groups = |ps: &[RelaxationPair]| {
            ps.iter()
                .map(|p| p.unrelaxed.info_value("prototype").unwrap().to_string())
                .collect::<std::collections::HashSet<_>>()
        };
        assert!(groups(&train).is_disjoint(&groups(&val)));
        let (_, again) = split_by_group(d.pairs, "prototype", 0.2, 1);
        assert_eq!(
            again.iter().map(|p| &p.id).collect::<Vec<_>>(),
            val.iter().map(|p| &p.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn missing_folder_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = Dataset::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no unrelaxed.extxyz"), "{e}");
    }
}
