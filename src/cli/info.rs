use std::path::PathBuf;

use clap::Args;

use e3relax::graph::{self, GraphSettings};
use e3relax::{io, Result};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Structure file (every frame is described)
    input: PathBuf,
    /// Format of the input (poscar, extxyz, cif) instead of guessing from the name
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Neighbour-graph radius, Å
    #[arg(long, default_value_t = 6.0)]
    radius: f64,
    /// Neighbours kept per atom in the graph (nearest first)
    #[arg(long, default_value_t = 50)]
    max_neighbors: usize,
    /// Unit for printed lengths (angstrom or bohr)
    #[arg(long, default_value = "angstrom", value_name = "UNIT")]
    unit: String,
    /// Print one JSON object per structure instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let unit = super::unit_option(&args.unit)?;
    let (scale, name) = match unit {
        e3relax::units::LengthUnit::Angstrom => (1.0, "Å"),
        e3relax::units::LengthUnit::Bohr => (1.0 / unit.in_angstrom(), "bohr"),
    };
    let frames = io::read_file(&args.input, super::format_option(&args.format)?)?;
    let settings = GraphSettings {
        radius: args.radius,
        max_neighbors: args.max_neighbors,
        shell_tolerance: None,
    };
    if !(settings.radius > 0.0 && settings.radius.is_finite()) {
        return Err(e3relax::Error::InvalidArgument(format!(
            "--radius must be positive, got {}",
            args.radius
        )));
    }
    for (index, s) in frames.iter().enumerate() {
        graph::check_search_size(&s.lattice, settings.radius).map_err(|m| {
            e3relax::Error::InvalidArgument(format!(
                "{}: {}: {m}",
                args.input.display(),
                s.label(index)
            ))
        })?;
        let edges = graph::build_graph(&s.lattice, &s.positions, &settings);
        // Edges per target atom, without the six fixed self-image edges.
        let mut degree = vec![0usize; s.natoms()];
        for e in &edges {
            if e.source != e.target {
                degree[e.target] += 1;
            }
        }
        let min = degree.iter().min().copied().unwrap_or(0);
        let max = degree.iter().max().copied().unwrap_or(0);
        let mean = degree.iter().sum::<usize>() as f64 / s.natoms() as f64;
        let p = s.lattice_parameters();
        let volume = s.volume() * scale.powi(3);
        if args.json {
            let value = serde_json::json!({
                "frame": index + 1,
                "id": s.id,
                "formula": s.formula(),
                "natoms": s.natoms(),
                "unit": name,
                "lattice": s.lattice.map(|r| r.map(|v| v * scale)),
                "lengths": [p[0] * scale, p[1] * scale, p[2] * scale],
                "angles": [p[3], p[4], p[5]],
                "volume": volume,
                "density_g_cm3": s.density(),
                "graph": {"radius_angstrom": settings.radius, "max_neighbors": settings.max_neighbors,
                          "edges": edges.len(), "neighbors_min": min, "neighbors_mean": mean, "neighbors_max": max},
            });
            println!("{value}");
            continue;
        }
        println!("{}", s.label(index));
        println!("  formula   {} ({} atoms)", s.formula(), s.natoms());
        println!(
            "  lengths   a = {:.4}  b = {:.4}  c = {:.4} {name}",
            p[0] * scale,
            p[1] * scale,
            p[2] * scale
        );
        println!(
            "  angles    alpha = {:.3}  beta = {:.3}  gamma = {:.3} deg",
            p[3], p[4], p[5]
        );
        println!(
            "  volume    {volume:.4} {name}^3 ({:.4} {name}^3/atom)",
            volume / s.natoms() as f64
        );
        println!("  density   {:.4} g/cm^3", s.density());
        println!(
            "  graph     r = {} Å, nearest {}: neighbours per atom min {min} / mean {mean:.1} / max {max}, plus 6 self-image edges ({} edges)",
            settings.radius,
            settings.max_neighbors,
            edges.len()
        );
    }
    Ok(())
}
