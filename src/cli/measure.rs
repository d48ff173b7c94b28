//! Measurements behind `e3relax bench` (binary-only: it starts python3 and
//! resets the process's peak-memory counter): reproducible test cells and
//! timings.

use std::time::Instant;

use e3relax::graph::{self, GraphSettings};
use e3relax::linalg::{self, Mat3};
use e3relax::Structure;
use e3relax::{Error, Result};

/// A dense, slightly sheared (triclinic) test crystal of exactly `natoms`
/// atoms: a jittered grid with 2.4 Å spacing (about the atom density of an
/// oxide), so every atom has a realistic number of neighbours. Deterministic.
pub fn test_cell(natoms: usize) -> Structure {
    let spacing = 2.4;
    let mut n = [1usize; 3];
    while n.iter().product::<usize>() < natoms {
        let smallest = (0..3).min_by_key(|&a| n[a]).unwrap();
        n[smallest] += 1;
    }
    let lattice: Mat3 = [
        [n[0] as f64 * spacing, 0.0, 0.0],
        [0.15 * n[1] as f64 * spacing, n[1] as f64 * spacing, 0.0],
        [
            -0.1 * n[2] as f64 * spacing,
            0.08 * n[2] as f64 * spacing,
            n[2] as f64 * spacing,
        ],
    ];
    // A small LCG keeps the jitter reproducible without a dependency.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut jitter = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.04
    };
    let mut positions = Vec::with_capacity(natoms);
    'fill: for i in 0..n[0] {
        for j in 0..n[1] {
            for k in 0..n[2] {
                if positions.len() == natoms {
                    break 'fill;
                }
                let f = [
                    (i as f64 + 0.5 + jitter()) / n[0] as f64,
                    (j as f64 + 0.5 + jitter()) / n[1] as f64,
                    (k as f64 + 0.5 + jitter()) / n[2] as f64,
                ];
                positions.push(linalg::vec_mat(f, &lattice));
            }
        }
    }
    let numbers = (0..natoms)
        .map(|i| if i % 2 == 0 { 8 } else { 12 })
        .collect();
    let mut s = Structure::new_unchecked(lattice, positions, numbers);
    s.id = Some(format!("bench-{natoms}"));
    s
}

/// Best wall time of `repeat` runs of `f`, seconds.
pub fn best_time<T>(repeat: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let out = f();
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.unwrap())
}

/// One row of the graph benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphTiming {
    pub natoms: usize,
    /// Edges of the model graph (capped, with self-image edges).
    pub edges: usize,
    /// Pairs within the radius (what pymatgen returns).
    pub radius_pairs: usize,
    /// Model graph with the rayon pool, seconds.
    pub graph_seconds: f64,
    /// Model graph on one thread, seconds.
    pub graph_seconds_one_thread: f64,
    /// Radius search alone on one thread (pymatgen's job), seconds.
    pub radius_seconds_one_thread: f64,
}

/// Times the graph of each cell.
pub fn time_graphs(
    cells: &[Structure],
    settings: &GraphSettings,
    repeat: usize,
) -> Result<Vec<GraphTiming>> {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start a thread pool: {e}")))?;
    Ok(cells
        .iter()
        .map(|s| {
            let (graph_seconds, edges) = best_time(repeat, || {
                graph::build_graph(&s.lattice, &s.positions, settings)
            });
            let (graph_seconds_one_thread, _) = one_thread.install(|| {
                best_time(repeat, || {
                    graph::build_graph(&s.lattice, &s.positions, settings)
                })
            });
            let (radius_seconds_one_thread, lists) = one_thread.install(|| {
                best_time(repeat, || {
                    graph::radius_neighbors(&s.lattice, &s.positions, settings.radius)
                })
            });
            GraphTiming {
                natoms: s.natoms(),
                edges: edges.len(),
                radius_pairs: lists.iter().map(Vec::len).sum(),
                graph_seconds,
                graph_seconds_one_thread,
                radius_seconds_one_thread,
            }
        })
        .collect())
}

/// pymatgen's timings of the same cells, measured by `python3` running the
/// script shipped in `tools/` (embedded here so an installed binary has it).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct PymatgenTiming {
    pub seconds: Vec<f64>,
    pub pairs: Vec<usize>,
    pub version: String,
}

const PYMATGEN_SCRIPT: &str = include_str!("../../tools/measure/pymatgen_neighbors.py");

/// Runs pymatgen's `get_neighbor_list` on the cells (needs python3 with
/// pymatgen and ase).
pub fn time_pymatgen(cells: &[Structure], radius: f64, repeat: usize) -> Result<PymatgenTiming> {
    let dir = std::env::temp_dir().join(format!("e3relax-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let cells_path = dir.join("cells.extxyz");
    let script_path = dir.join("pymatgen_neighbors.py");
    e3relax::io::write_file(&cells_path, cells, None)?;
    std::fs::write(&script_path, PYMATGEN_SCRIPT)
        .map_err(|e| Error::io(script_path.display().to_string(), e))?;
    let output = std::process::Command::new("python3")
        .arg(&script_path)
        .arg(&cells_path)
        .arg(radius.to_string())
        .arg(repeat.to_string())
        .output()
        .map_err(|e| Error::io("python3", e));
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no message");
        return Err(Error::InvalidArgument(format!(
            "pymatgen comparison failed (python3 with pymatgen and ase is needed): {last}"
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        Error::InvalidArgument(format!(
            "pymatgen comparison printed unreadable output: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cells_are_valid_and_exact_size() {
        for n in [1, 8, 37, 192] {
            let s = test_cell(n);
            assert_eq!(s.natoms(), n);
            s.validate().unwrap();
        }
    }
}

/// Resets the process's peak resident memory (Linux `clear_refs` 5), so the
/// next [`peak_memory_bytes`] covers only what ran in between.
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process (`VmHWM`), bytes.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One row of the model benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelTiming {
    pub model: String,
    pub cell: String,
    pub natoms: usize,
    pub edges: i64,
    /// One structure per call: graph + forward + copy back, seconds.
    pub latency_seconds: f64,
    /// Structures per second with `batch` structures per forward pass.
    pub throughput: f64,
    pub batch: usize,
    /// Peak resident memory of the process during this row, bytes.
    pub peak_memory_bytes: Option<u64>,
}

/// Times a model on each cell: single-structure latency (best of
/// `repeat`), batched throughput, and peak memory.
pub fn time_model(
    name: &str,
    relaxer: &e3relax::relax::Relaxer,
    cells: &[(String, Structure)],
    repeat: usize,
) -> Result<Vec<ModelTiming>> {
    use e3relax::relax::RelaxOptions;
    let mut rows = Vec::new();
    for (label, cell) in cells {
        reset_peak_memory();
        let config = relaxer.model().config();
        let settings = config.graph_settings();
        let edges = graph::build_graph(&cell.lattice, &cell.positions, &settings).len() as i64;
        // Warm-up (first calls allocate libtorch's pools).
        relaxer.relax(cell)?;
        let mut latency = f64::INFINITY;
        for _ in 0..repeat.max(1) {
            let start = Instant::now();
            relaxer.relax(cell)?;
            latency = latency.min(start.elapsed().as_secs_f64());
        }
        // Batches of about 4,000 atoms, at most 32 structures.
        let batch = (4000 / cell.natoms()).clamp(1, 32);
        let copies: Vec<Structure> = std::iter::repeat_n(cell.clone(), batch).collect();
        let options = RelaxOptions {
            batch_size: batch,
            ..Default::default()
        };
        let start = Instant::now();
        relaxer.relax_many(&copies, &options)?;
        let throughput = batch as f64 / start.elapsed().as_secs_f64();
        rows.push(ModelTiming {
            model: name.to_string(),
            cell: label.clone(),
            natoms: cell.natoms(),
            edges,
            latency_seconds: latency,
            throughput,
            batch,
            peak_memory_bytes: peak_memory_bytes(),
        });
    }
    Ok(rows)
}
