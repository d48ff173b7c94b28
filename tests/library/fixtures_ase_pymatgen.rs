//! e3relax's readers and neighbour search against files written, and lists
//! computed, by ASE and pymatgen (tools/generate/make_fixtures.py made them).

use std::path::PathBuf;

use e3relax::graph;
use e3relax::io;
use e3relax::linalg;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

fn wrapped(f: [f64; 3]) -> [f64; 3] {
    f.map(|v| {
        let w = v - v.floor();
        if w > 1.0 - 1e-9 {
            0.0
        } else {
            w
        }
    })
}

#[test]
fn readers_agree_with_ase_and_pymatgen() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("expected_structures.json")).unwrap(),
    )
    .unwrap();
    for (name, frames) in expected.as_object().unwrap() {
        let ours = io::read_file(fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let frames = frames.as_array().unwrap();
        assert_eq!(ours.len(), frames.len(), "{name}: frame count");
        for (s, want) in ours.iter().zip(frames) {
            let numbers: Vec<u32> = floats(&want["numbers"]).iter().map(|&z| z as u32).collect();
            let cellpar = floats(&want["cellpar"]);
            for (a, b) in s.lattice_parameters().iter().zip(&cellpar) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{name}: cell parameters {:?} vs {cellpar:?}",
                    s.lattice_parameters()
                );
            }
            if name.ends_with(".cif") {
                // CIF: same multiset of (Z, wrapped fractional position).
                let mut want_sites: Vec<(u32, [f64; 3])> = numbers
                    .iter()
                    .zip(floats(&want["scaled_positions"]).chunks(3))
                    .map(|(&z, f)| (z, wrapped([f[0], f[1], f[2]])))
                    .collect();
                let ours_sites: Vec<(u32, [f64; 3])> = s
                    .numbers
                    .iter()
                    .zip(s.fractional_positions())
                    .map(|(&z, f)| (z, wrapped(f)))
                    .collect();
                assert_eq!(ours_sites.len(), want_sites.len(), "{name}: atom count");
                for (z, f) in &ours_sites {
                    let k = want_sites
                        .iter()
                        .position(|(wz, wf)| {
                            wz == z
                                && (0..3).all(|a| {
                                    let d = f[a] - wf[a];
                                    (d - d.round()).abs() < 1e-5
                                })
                        })
                        .unwrap_or_else(|| {
                            panic!("{name}: site Z={z} at {f:?} not in the reference")
                        });
                    want_sites.remove(k);
                }
            } else {
                assert_eq!(s.numbers, numbers, "{name}: species");
                let lattice = floats(&want["lattice"]);
                for (a, b) in s.lattice.iter().flatten().zip(&lattice) {
                    assert!((a - b).abs() < 1e-9, "{name}: lattice");
                }
                for (a, b) in s.positions.iter().flatten().zip(floats(&want["positions"])) {
                    assert!((a - b).abs() < 1e-7, "{name}: positions {a} vs {b}");
                }
            }
            if let Some(mv) = want.get("move") {
                let flags: Vec<bool> = mv
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r.as_array().unwrap().iter().map(|b| b.as_bool().unwrap()))
                    .collect();
                let ours: Vec<bool> = s
                    .selective_dynamics
                    .as_ref()
                    .expect("selective dynamics")
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                assert_eq!(ours, flags, "{name}: selective dynamics");
            }
        }
    }
}

#[test]
fn extxyz_info_and_extra_columns_survive_a_round_trip() {
    let frames = io::read_file(fixture("ase_multi.extxyz"), None).unwrap();
    assert_eq!(frames[1].id.as_deref(), Some("frame-1"));
    assert_eq!(frames[1].info_value("note"), Some("two words"));
    assert_eq!(frames[1].atom_properties[0].name, "charge");
    let dir = tempfile::tempdir().unwrap();
    for ext in ["extxyz", "extxyz.gz"] {
        let path = dir.path().join(format!("copy.{ext}"));
        io::write_file(&path, &frames, None).unwrap();
        assert_eq!(io::read_file(&path, None).unwrap(), frames);
    }
}

#[test]
fn neighbour_lists_agree_with_pymatgen() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("pymatgen_neighbors.json")).unwrap())
            .unwrap();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let l = floats(&case["lattice"]);
        let lattice = [[l[0], l[1], l[2]], [l[3], l[4], l[5]], [l[6], l[7], l[8]]];
        let positions: Vec<[f64; 3]> = floats(&case["positions"])
            .chunks(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let radius = case["radius"].as_f64().unwrap();
        let mut want: Vec<(usize, usize, [i32; 3], f64)> = case["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let im = floats(&e[2]);
                (
                    e[0].as_u64().unwrap() as usize,
                    e[1].as_u64().unwrap() as usize,
                    [im[0] as i32, im[1] as i32, im[2] as i32],
                    e[3].as_f64().unwrap(),
                )
            })
            .collect();
        let mut ours: Vec<(usize, usize, [i32; 3], f64)> =
            graph::radius_neighbors(&lattice, &positions, radius)
                .iter()
                .enumerate()
                .flat_map(|(i, list)| list.iter().map(move |n| (i, n.index, n.offset, n.distance)))
                .collect();
        let key = |e: &(usize, usize, [i32; 3], f64)| (e.0, e.1, e.2);
        want.sort_by_key(key);
        ours.sort_by_key(key);
        assert_eq!(ours.len(), want.len(), "{name}: pair count");
        for (a, b) in ours.iter().zip(&want) {
            assert_eq!(key(a), key(b), "{name}");
            assert!((a.3 - b.3).abs() < 1e-8, "{name}: distance");
            let vector = linalg::sub(
                linalg::add(
                    positions[a.1],
                    linalg::vec_mat(a.2.map(f64::from), &lattice),
                ),
                positions[a.0],
            );
            assert!((linalg::norm(vector) - a.3).abs() < 1e-9);
        }
    }
}
