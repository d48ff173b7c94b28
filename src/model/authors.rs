//! The authors' PyTorch checkpoints: parameter names both ways and the
//! conversion into a [`Model`].
//!
//! Parameter names (t = layer 0..T-1, c = l1, l2, l3; `.0`/`.2` are the two
//! linears of a Linear-act-Linear stack):
//!
//! | ours | authors' | spec |
//! |---|---|---|
//! | `atom_embedding.weight` | `atom_emb.embeddings.weight` | atom table |
//! | `lattice_embedding.{c}.weight` | `scalar_{c}_emb.weight` | lattice scalars |
//! | `layers.{t}.lattice_to_atom.{c}.{x_local_proj,edge_local_proj,mlp_scalar_local,mlp_vector_local}.*` | `lattice_{c}_layers.{t}.*` | P, W_f, S_loc, V_loc |
//! | `layers.{t}.message_passing.{x_proj,edge_proj}.*` | `message_passing_layers.{t}.*` | Q, W_e |
//! | `layers.{t}.self_update.{vec_proj,xvec_proj}.*` | `message_update_layers.{t}.*` | U, G |
//! | `layers.{t}.position_update.{attention_pos,pos_mlp}.*` | `structure_update_layers.{t}.*` | A, Wp |
//! | `layers.{t}.atom_to_lattice.{c}.{mlp_scalar_global,mlp_vector_global,vector_l_proj,scalar_l_proj}.*` | `lattice_{c}_layers.{t}.*` | S_glob, V_glob, Y, Z |
//! | `layers.{t}.lattice_update.{c}.mlp_l.weight` | `lattice_{c}_layers.{t}.mlp_l.weight` | Wl |
//!
//! The authors' `radial_basis.rbf.offset` buffer (the Gaussian centres) is
//! not stored: it is recreated from K, and checked when a checkpoint has it.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Kind};

use super::checkpoint::{check_finite, read_safetensors};
use super::Model;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::radial::RadialBasis;

/// Our parameter name for one of the authors', or `None` for a name that is
/// not a parameter of their network.
pub fn name_from_authors(name: &str) -> Option<String> {
    if name == "atom_emb.embeddings.weight" {
        return Some("atom_embedding.weight".into());
    }
    for c in ["l1", "l2", "l3"] {
        if name == format!("scalar_{c}_emb.weight") {
            return Some(format!("lattice_embedding.{c}.weight"));
        }
    }
    let (prefix, rest) = name.split_once('.')?;
    let (layer, tail) = rest.split_once('.')?;
    let t: usize = layer.parse().ok()?;
    let block = match prefix {
        "message_passing_layers" => "message_passing".to_string(),
        "message_update_layers" => "self_update".to_string(),
        "structure_update_layers" => "position_update".to_string(),
        _ => {
            let c = prefix.strip_prefix("lattice_")?.strip_suffix("_layers")?;
            if !["l1", "l2", "l3"].contains(&c) {
                return None;
            }
            let module = tail.split('.').next()?;
            let group =
                match module {
                    "x_local_proj" | "edge_local_proj" | "mlp_scalar_local"
                    | "mlp_vector_local" => "lattice_to_atom",
                    "mlp_scalar_global" | "mlp_vector_global" | "vector_l_proj"
                    | "scalar_l_proj" => "atom_to_lattice",
                    "mlp_l" => "lattice_update",
                    _ => return None,
                };
            format!("{group}.{c}")
        }
    };
    Some(format!("layers.{t}.{block}.{tail}"))
}

/// The authors' name of one of our parameters (inverse of
/// [`name_from_authors`]).
pub fn name_to_authors(name: &str) -> Option<String> {
    if name == "atom_embedding.weight" {
        return Some("atom_emb.embeddings.weight".into());
    }
    if let Some(c) = name
        .strip_prefix("lattice_embedding.")
        .and_then(|r| r.strip_suffix(".weight"))
    {
        return Some(format!("scalar_{c}_emb.weight"));
    }
    let rest = name.strip_prefix("layers.")?;
    let (t, rest) = rest.split_once('.')?;
    let (block, tail) = rest.split_once('.')?;
    match block {
        "message_passing" => Some(format!("message_passing_layers.{t}.{tail}")),
        "self_update" => Some(format!("message_update_layers.{t}.{tail}")),
        "position_update" => Some(format!("structure_update_layers.{t}.{tail}")),
        "lattice_to_atom" | "atom_to_lattice" | "lattice_update" => {
            let (c, tail) = tail.split_once('.')?;
            Some(format!("lattice_{c}_layers.{t}.{tail}"))
        }
        _ => None,
    }
}

/// Converts the authors' state dict (read from safetensors) into a model
/// of `config`; the error names the first missing, unknown or mis-shaped
/// tensor in the authors' names.
pub fn import_authors_checkpoint(path: &Path, config: &ModelConfig) -> Result<Model> {
    let shown = path.display().to_string();
    let theirs = read_safetensors(path)?;
    check_finite(&theirs, &shown)?;
    let model = Model::new(config, 0)?;
    let mut ours = BTreeMap::new();
    for (name, tensor) in theirs {
        if name == "radial_basis.rbf.offset" {
            let rb = RadialBasis {
                num_rbf: config.num_rbf,
                cutoff: config.rbf_cutoff,
                exponent: config.envelope_exponent,
            };
            let expected = rb.centres((Kind::Double, Device::Cpu));
            let ok = tensor.size() == expected.size()
                && tensor
                    .to_kind(Kind::Double)
                    .allclose(&expected, 1e-6, 1e-6, false);
            if !ok {
                return Err(Error::Model(format!(
                    "{shown}: radial_basis.rbf.offset (shape {:?}) is not {} centres evenly spaced on [0, 1]",
                    tensor.size(),
                    config.num_rbf
                )));
            }
            continue;
        }
        let mapped = name_from_authors(&name).ok_or_else(|| {
            Error::Model(format!(
                "{shown}: unexpected tensor '{name}' (not in the E3Relax layout)"
            ))
        })?;
        ours.insert(mapped, tensor);
    }
    // Mismatches are reported in the authors' names.
    model.assign_naming(ours, &shown, &|name| {
        name_to_authors(name).unwrap_or_else(|| name.to_string())
    })?;
    Ok(model)
}
