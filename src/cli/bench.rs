use clap::{Args, Subcommand};

use e3relax::bench;
use e3relax::graph::GraphSettings;
use e3relax::Result;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
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

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
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
