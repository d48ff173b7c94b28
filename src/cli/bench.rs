use clap::{Args, Subcommand};

use super::measure as bench;
use e3relax::graph::GraphSettings;
use e3relax::model::{Model, ModelConfig};
use e3relax::relax::Relaxer;
use e3relax::Result;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Network latency, batched throughput and peak memory (published and default sizes)
    Model {
        /// Models to time: `published` (F=512, T=4, random weights), `default`
        /// (the shipped model) or a model directory
        #[arg(long, value_delimiter = ',', default_value = "published,default")]
        models: Vec<String>,
        /// Cells: 8, 1000, 10000 (test crystals of that many atoms) and mos2
        /// (a 192-site MoS2 defect supercell)
        #[arg(long, value_delimiter = ',', default_value = "8,mos2,1000,10000")]
        cells: Vec<String>,
        /// cpu, cuda, cuda:K or auto
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Timed runs per latency (the best is reported)
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Where the time of one prediction goes, stage by stage: file read,
    /// validation, neighbour graph, each block of the network (summed over
    /// layers), results, file write
    Profile {
        /// `published` (F=512, random weights), `default` or a model directory
        #[arg(long, default_value = "default")]
        model: String,
        /// A test cell (a number of atoms, or mos2) or a structure file (its
        /// first frame)
        #[arg(long, default_value = "mos2")]
        cell: String,
        /// cpu, cuda, cuda:K or auto
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Timed runs (the fastest is reported)
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Neighbour-graph construction for cells of several sizes
    Graph {
        /// Cell sizes (atoms)
        #[arg(long, value_delimiter = ',', default_value = "8,192,1000,10000")]
        sizes: Vec<usize>,
        /// Runs per measurement (the best is reported)
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Also time pymatgen's get_neighbor_list on the same cells (needs python3 + pymatgen)
        #[arg(long)]
        pymatgen: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

/// The 192-site MoS2 defect supercell shipped with the examples.
const MOS2: &str = include_str!("../../examples/structures/mos2-defects.extxyz");

fn bench_cells(names: &[String]) -> Result<Vec<(String, e3relax::Structure)>> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "mos2" => {
                let s = e3relax::io::parse(MOS2, e3relax::io::Format::ExtXyz)?.remove(0);
                Ok((format!("MoS2 defect ({} atoms)", s.natoms()), s))
            }
            n => n
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .map(|n| (format!("{n}-atom cell"), bench::test_cell(n)))
                .ok_or_else(|| {
                    e3relax::Error::InvalidArgument(format!(
                        "unknown bench cell '{n}' (a number of atoms or mos2)"
                    ))
                }),
        })
        .collect()
}

fn bench_model(name: &str, device: e3relax::runtime::DeviceRequest) -> Result<(String, Relaxer)> {
    match name {
        "published" => {
            let model = Model::new(&ModelConfig::published(), 0)?.to_device(device.resolve()?)?;
            Ok((
                "published F=512 T=4 K=128".into(),
                Relaxer::from_model(model),
            ))
        }
        other => {
            let dir = if other == "default" {
                super::relax::default_model_dir()?
            } else {
                std::path::PathBuf::from(other)
            };
            let relaxer = Relaxer::load(&dir, device)?;
            let c = relaxer.model().config();
            Ok((
                format!(
                    "{other} F={} T={} K={}",
                    c.hidden_channels, c.num_layers, c.num_rbf
                ),
                relaxer,
            ))
        }
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Model {
            models,
            cells,
            device,
            repeat,
            json,
        } => {
            let device = device.parse::<e3relax::DeviceRequest>()?;
            let cells = bench_cells(&cells)?;
            let mut rows = Vec::new();
            if !json {
                println!(
                    "e3relax model benchmark on {:?}; {} libtorch threads; latency = best of {repeat}",
                    device.resolve()?,
                    tch::get_num_threads()
                );
                println!(
                    "{:<30} {:<24} {:>8} {:>12} {:>14} {:>6} {:>10}",
                    "model", "cell", "edges", "latency", "throughput/s", "batch", "peak RSS"
                );
            }
            for name in &models {
                let (label, relaxer) = bench_model(name, device)?;
                for row in bench::time_model(&label, &relaxer, &cells, repeat)? {
                    if !json {
                        println!(
                            "{:<30} {:<24} {:>8} {:>10.1}ms {:>14.2} {:>6} {:>8.0}MB",
                            row.model,
                            row.cell,
                            row.edges,
                            row.latency_seconds * 1e3,
                            row.throughput,
                            row.batch,
                            row.peak_memory_bytes.unwrap_or(0) as f64 / 1048576.0
                        );
                    }
                    rows.push(row);
                }
            }
            if json {
                println!("{}", serde_json::json!({ "rows": rows }));
            }
            Ok(())
        }
        BenchWhat::Profile {
            model,
            cell,
            device,
            repeat,
            json,
        } => profile(&model, &cell, &device, repeat, json),
        BenchWhat::Graph {
            sizes,
            repeat,
            pymatgen,
            json,
        } => {
            let settings = GraphSettings::default();
            let cells: Vec<_> = sizes.iter().map(|&n| bench::test_cell(n)).collect();
            let ours = bench::time_graphs(&cells, &settings, repeat)?;
            let theirs = if pymatgen {
                Some(bench::time_pymatgen(&cells, settings.radius, repeat)?)
            } else {
                None
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"e3relax": ours, "pymatgen": theirs, "threads": rayon::current_num_threads()})
                );
                return Ok(());
            }
            println!(
                "neighbour graph: radius {} Å, nearest {} kept; best of {repeat} runs; {} rayon threads",
                settings.radius,
                settings.max_neighbors,
                rayon::current_num_threads()
            );
            print!(
                "{:>7} {:>9} {:>9} {:>12} {:>12} {:>12}",
                "atoms", "pairs", "edges", "graph", "graph 1thr", "radius 1thr"
            );
            if theirs.is_some() {
                print!(" {:>12} {:>9} {:>9}", "pymatgen", "ratio", "ratio 1thr");
            }
            println!();
            for (k, t) in ours.iter().enumerate() {
                print!(
                    "{:>7} {:>9} {:>9} {:>10.3}ms {:>10.3}ms {:>10.3}ms",
                    t.natoms,
                    t.radius_pairs,
                    t.edges,
                    t.graph_seconds * 1e3,
                    t.graph_seconds_one_thread * 1e3,
                    t.radius_seconds_one_thread * 1e3
                );
                if let Some(p) = &theirs {
                    let seconds = p.seconds[k];
                    print!(
                        " {:>10.3}ms {:>8.1}x {:>8.1}x",
                        seconds * 1e3,
                        seconds / t.graph_seconds,
                        seconds / t.graph_seconds_one_thread
                    );
                    if p.pairs[k] != t.radius_pairs {
                        print!("  (pymatgen found {} pairs)", p.pairs[k]);
                    }
                }
                println!();
            }
            if let Some(p) = &theirs {
                println!("pymatgen {} (single-threaded); ratio = pymatgen time / e3relax model-graph time", p.version);
            }
            Ok(())
        }
    }
}

/// `e3relax bench profile`: one prediction from file to file, stage by
/// stage, the fastest of `repeat` runs.
fn profile(model: &str, cell: &str, device: &str, repeat: usize, json: bool) -> Result<()> {
    use e3relax::io::{self, Format};
    use e3relax::profile::{record, stage};
    let device = device.parse::<e3relax::DeviceRequest>()?;
    let load_start = std::time::Instant::now();
    let (label, relaxer) = bench_model(model, device)?;
    let load_seconds = load_start.elapsed().as_secs_f64();
    let structure = match bench_cells(std::slice::from_ref(&cell.to_string())) {
        Ok(mut cells) => cells.remove(0).1,
        Err(_) => io::read_file(std::path::Path::new(cell), None)?.remove(0),
    };
    // Read and written through real files, as `e3relax relax` does.
    let dir = tempfile::tempdir().map_err(|e| e3relax::Error::io("temporary folder", e))?;
    let input = dir.path().join("input.extxyz");
    let output = dir.path().join("output.extxyz");
    io::write_file(&input, std::slice::from_ref(&structure), None)?;
    let options = e3relax::relax::RelaxOptions::default();
    let device = relaxer.model().device();
    let mut best: Option<e3relax::profile::Profile> = None;
    for _ in 0..repeat.max(1) + 1 {
        let (result, profile) = record(device, || -> Result<()> {
            let text = stage("file read", || io::read_text(&input))?;
            let frames = stage("parse", || io::parse(&text, Format::ExtXyz))?;
            stage("validation", || relaxer.check(&frames[0]))?;
            let results = relaxer.relax_many(&frames, &options)?;
            let relaxed: Vec<_> = results.into_iter().map(|r| r.relaxed).collect();
            stage("file write", || io::write_file(&output, &relaxed, None))
        });
        result?;
        // The first run warms libtorch's allocator and kernels up.
        if best.is_none() || best.as_ref().is_some_and(|b| profile.total() < b.total()) {
            best = Some(profile);
        }
    }
    let best = best.expect("at least one run");
    let total = best.total() - best.seconds_of("layer: ");
    if json {
        let stages: Vec<_> = best
            .stages
            .iter()
            .map(|(name, seconds, calls)| serde_json::json!({"stage": name, "seconds": seconds, "calls": calls}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"model": label, "atoms": structure.natoms(), "threads": tch::get_num_threads(),
                "load_seconds": load_seconds, "total_seconds": total, "stages": stages})
        );
        return Ok(());
    }
    println!(
        "{label}; {} atoms; {} libtorch thread(s); fastest of {} runs; model load {:.1} ms (once)",
        structure.natoms(),
        tch::get_num_threads(),
        repeat.max(1),
        load_seconds * 1e3
    );
    println!("{:<34} {:>10} {:>7} {:>6}", "stage", "ms", "share", "calls");
    for (name, seconds, calls) in &best.stages {
        // Layer stages are parts of "network": shown indented.
        let shown = match name.strip_prefix("layer: ") {
            // A part of a block ("lattice update: virial strain") is
            // indented once more.
            Some(block) => match block.split_once(": ") {
                Some((_, part)) => format!("    {part} (all layers)"),
                None => format!("  {block} (all layers)"),
            },
            None => name.clone(),
        };
        println!(
            "{:<34} {:>10.2} {:>6.1}% {:>6}",
            shown,
            seconds * 1e3,
            100.0 * seconds / total,
            calls
        );
    }
    println!("{:<34} {:>10.2}", "total (file to file)", total * 1e3);
    Ok(())
}
