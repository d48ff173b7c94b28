//! `mpirun -np N e3relax train ...` shares every training batch between the
//! ranks (see `e3relax::train::collective`); the rest of this module is
//! `relax`.
//!
//! `mpirun -np N e3relax relax ...` (build feature `mpi`, through the `mpi`
//! crate over the system's MPI): every rank reads the inputs and loads the
//! model, relaxes the share `--shard rank/N` would (whole batches of the
//! serial run, see [`super::shard`]), and sends its predictions to rank 0,
//! which writes the serial run's outputs, bit for bit and all or nothing
//! (it writes only once every rank has answered, and a rank that fails
//! aborts the whole job: nothing is half-written).
//!
//! What travels is each prediction's numbers, not a file: positions,
//! lattice and info of the relaxed structure (and of each layer with
//! `--trajectory`) as f64 bit patterns, and the ensemble's spread. Rank 0
//! puts them on its own copy of the input, which holds everything else a
//! prediction carries over unchanged (species, ids, extra columns, frozen
//! flags).

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use e3relax::ensemble::Uncertainty;
use e3relax::{Error, Relaxation, Result, Structure};

/// The MPI job this process is part of, when it was launched by `mpirun`
/// (or srun) with more than one rank.
pub struct Job {
    // Dropping the universe finalises MPI: it lives as long as the job.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
    /// Seconds spent in sums over the ranks (waiting for the slowest rank
    /// included), for the training's report.
    summing: std::cell::Cell<f64>,
}

impl Job {
    /// Joins the MPI job if this process was started by an MPI launcher
    /// (Open MPI's, MPICH's or a PMI one) with several ranks; `None` for a
    /// plain start or a single rank.
    pub fn join() -> Option<Job> {
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if !launched {
            return None;
        }
        let universe = mpi::initialize()?;
        let world = universe.world();
        (world.size() > 1).then_some(Job {
            _universe: universe,
            world,
            summing: std::cell::Cell::new(0.0),
        })
    }

    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// Ends every rank of the job after this rank failed: the others may be
    /// waiting for it, and nothing has been written.
    pub fn abort(&self, error: &Error) -> ! {
        eprintln!(
            "e3relax (MPI rank {} of {}): error: {error}",
            self.rank(),
            self.size()
        );
        self.world.abort(1)
    }

    /// This rank's share, or the failure the test suite asks this rank to
    /// have (`E3RELAX_TEST_FAIL_RANK=r`: rank r fails as if its prediction
    /// had), so that the failure path is tested end to end.
    pub fn share(&self, share: Result<Vec<Relaxation>>) -> Result<Vec<Relaxation>> {
        let failing = std::env::var("E3RELAX_TEST_FAIL_RANK")
            .ok()
            .and_then(|r| r.trim().parse::<usize>().ok());
        if failing == Some(self.rank()) {
            return Err(Error::Model(format!(
                "rank {} fails on purpose (E3RELAX_TEST_FAIL_RANK)",
                self.rank()
            )));
        }
        share
    }

    /// On a rank other than 0: sends this rank's predictions (or its
    /// error) to rank 0.
    pub fn send_share(&self, share: &Result<Vec<Relaxation>>) {
        let bytes = match share {
            Ok(relaxations) => encode(relaxations),
            Err(e) => {
                let mut bytes = vec![1u8];
                bytes.extend(e.to_string().into_bytes());
                bytes
            }
        };
        self.world.process_at_rank(0).send(&bytes[..]);
    }

    /// On rank 0: every other rank's predictions, in rank order, put on
    /// `inputs[rank]` (the inputs of the frames that rank writes).
    pub fn receive_shares(&self, inputs: &[&[Structure]]) -> Result<Vec<Vec<Relaxation>>> {
        let mut shares = Vec::with_capacity(inputs.len());
        for (rank, inputs) in inputs.iter().enumerate().skip(1) {
            let (bytes, _) = self.world.process_at_rank(rank as i32).receive_vec::<u8>();
            // The rank's own message, with where it came from (no second
            // prefix: it has its own).
            shares.push(decode(&bytes, inputs).map_err(|e| {
                Error::InvalidArgument(format!("MPI rank {rank} of {}: {e}", self.size()))
            })?);
        }
        Ok(shares)
    }
}

/// `mpirun -np N e3relax train`: the ranks share every batch (see
/// `e3relax::train::collective`); one `MPI_Allreduce` per step.
impl e3relax::train::Collective for Job {
    fn rank(&self) -> usize {
        Job::rank(self)
    }

    fn size(&self) -> usize {
        Job::size(self)
    }

    fn sum(&self, values: &mut [f64]) {
        let start = std::time::Instant::now();
        let mine = values.to_vec();
        self.world
            .all_reduce_into(&mine[..], values, mpi::collective::SystemOperation::sum());
        self.summing
            .set(self.summing.get() + start.elapsed().as_secs_f64());
    }
}

impl Job {
    /// Seconds this rank spent in sums over the ranks so far.
    pub fn summing_seconds(&self) -> f64 {
        self.summing.get()
    }
}

impl Job {
    /// This rank's index among the ranks on its node (Open MPI's
    /// `OMPI_COMM_WORLD_LOCAL_RANK`, else Slurm's `SLURM_LOCALID`, else 0):
    /// which GPU of the node it takes.
    pub fn local_rank(&self) -> usize {
        [
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "MPI_LOCALRANKID",
            "SLURM_LOCALID",
        ]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .unwrap_or(0)
    }
}

fn put_f64s(out: &mut Vec<u8>, values: impl IntoIterator<Item = f64>) {
    for v in values {
        out.extend(v.to_bits().to_le_bytes());
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend((n as u64).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend(s.as_bytes());
}

/// The numbers a prediction changed: positions, lattice, info.
fn put_structure(out: &mut Vec<u8>, s: &Structure) {
    put_len(out, s.positions.len());
    put_f64s(out, s.positions.iter().flatten().copied());
    put_f64s(out, s.lattice.iter().flatten().copied());
    put_len(out, s.info.len());
    for (k, v) in &s.info {
        put_str(out, k);
        put_str(out, v);
    }
}

/// A share's predictions as bytes (a leading 0: success).
pub fn encode(relaxations: &[Relaxation]) -> Vec<u8> {
    let mut out = vec![0u8];
    put_len(&mut out, relaxations.len());
    for r in relaxations {
        put_structure(&mut out, &r.relaxed);
        put_len(&mut out, r.trajectory.len());
        for layer in &r.trajectory {
            put_structure(&mut out, layer);
        }
        match &r.uncertainty {
            None => out.push(0),
            Some(u) => {
                out.push(1);
                put_len(&mut out, u.atoms.len());
                put_f64s(&mut out, u.atoms.iter().copied());
                put_f64s(&mut out, [u.cell, u.volume]);
            }
        }
    }
    out
}

/// Reads what [`encode`] wrote.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.bytes.len() < n {
            return Err(Error::Model("a truncated message".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| Error::Model("a malformed message".into()))
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| Error::Model("a malformed message".into()))
    }

    fn structure(&mut self, input: &Structure) -> Result<Structure> {
        let n = self.len()?;
        if n != input.positions.len() {
            return Err(Error::Model(format!(
                "{n} atoms for an input of {}",
                input.positions.len()
            )));
        }
        let mut s = input.clone();
        for p in &mut s.positions {
            *p = [self.f64()?, self.f64()?, self.f64()?];
        }
        for row in &mut s.lattice {
            *row = [self.f64()?, self.f64()?, self.f64()?];
        }
        let entries = self.len()?;
        s.info = (0..entries)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect::<Result<_>>()?;
        Ok(s)
    }
}

/// A share's predictions from [`encode`]'s bytes (or the error its rank
/// sent), put on copies of `inputs`.
pub fn decode(bytes: &[u8], inputs: &[Structure]) -> Result<Vec<Relaxation>> {
    match bytes.first() {
        Some(0) => {}
        Some(1) => {
            return Err(Error::InvalidArgument(
                String::from_utf8_lossy(&bytes[1..]).into_owned(),
            ))
        }
        _ => return Err(Error::Model("a malformed message".into())),
    }
    let mut reader = Reader { bytes: &bytes[1..] };
    let count = reader.len()?;
    if count != inputs.len() {
        return Err(Error::Model(format!(
            "{count} predictions for {} inputs",
            inputs.len()
        )));
    }
    let mut relaxations = Vec::with_capacity(count);
    for input in inputs {
        let relaxed = reader.structure(input)?;
        let layers = reader.len()?;
        let trajectory = (0..layers)
            .map(|_| reader.structure(input))
            .collect::<Result<_>>()?;
        let uncertainty = match reader.take(1)?[0] {
            0 => None,
            _ => {
                let n = reader.len()?;
                let atoms = (0..n).map(|_| reader.f64()).collect::<Result<_>>()?;
                Some(Uncertainty {
                    atoms,
                    cell: reader.f64()?,
                    volume: reader.f64()?,
                })
            }
        };
        relaxations.push(Relaxation {
            relaxed,
            trajectory,
            uncertainty,
        });
    }
    if !reader.bytes.is_empty() {
        return Err(Error::Model("a malformed message (trailing bytes)".into()));
    }
    Ok(relaxations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crystal(shift: f64) -> Structure {
        let mut s = Structure::new(
            [[3.0, 0.0, 0.0], [0.1, 3.2, 0.0], [0.0, 0.2, 3.4]],
            vec![[0.0; 3], [1.5 + shift, 1.6, 1.7]],
            vec![14, 8],
        )
        .unwrap();
        s.id = Some("a".into());
        s.set_info("note", "kept");
        s
    }

    /// A prediction comes back bit for bit: numbers that differ from the
    /// input, new and changed info, layers and spreads.
    #[test]
    fn predictions_round_trip_exactly() {
        let input = crystal(0.0);
        let mut relaxed = crystal(0.1 + 1e-17);
        relaxed.lattice[1][2] = std::f64::consts::PI * 1e-300;
        relaxed.positions[0][0] = -0.0;
        relaxed.set_info("note", "changed");
        relaxed.set_info("e3relax_line_search_step", "0.5000");
        let with_everything = Relaxation {
            relaxed: relaxed.clone(),
            trajectory: vec![crystal(0.05), relaxed.clone()],
            uncertainty: Some(Uncertainty {
                atoms: vec![0.01, 1.0 / 3.0],
                cell: 1e-5,
                volume: 0.2,
            }),
        };
        let plain = Relaxation {
            relaxed,
            trajectory: vec![],
            uncertainty: None,
        };
        let sent = vec![with_everything, plain];
        let inputs = vec![input.clone(), input];
        let received = decode(&encode(&sent), &inputs).unwrap();
        assert_eq!(received, sent);
        assert_eq!(
            received[0].relaxed.positions[0][0].to_bits(),
            (-0.0f64).to_bits()
        );
    }

    #[test]
    fn errors_and_damage_are_reported() {
        let inputs = vec![crystal(0.0)];
        let mut bytes = vec![1u8];
        bytes.extend(b"out of memory");
        assert!(decode(&bytes, &inputs)
            .unwrap_err()
            .to_string()
            .contains("out of memory"));
        let good = encode(&[Relaxation {
            relaxed: crystal(0.1),
            trajectory: vec![],
            uncertainty: None,
        }]);
        for cut in [1, 9, good.len() - 1] {
            assert!(decode(&good[..cut], &inputs).is_err(), "cut at {cut}");
        }
        assert!(decode(&good, &[])
            .unwrap_err()
            .to_string()
            .contains("1 predictions for 0"));
    }
}
