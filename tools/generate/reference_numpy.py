"""An independent NumPy implementation of docs/model.md (float64), written
from the specification with the authors' parameter names, used to make
tests/fixtures/reference_numpy/: random weights in the authors' layout
(weights.safetensors), the input crystals, and every layer's output for the
two switch settings (the authors' code: lattice delta as columns, no
wrapping; ours: rows + wrapping). The graph comes from pymatgen.

    python3 tools/generate/reference_numpy.py
"""
import json
import os

import numpy as np
from pymatgen.core import Lattice, Structure
from safetensors.numpy import save_file

F, K, T = 8, 6, 2
CUTOFF, P, RADIUS, MAX_NB, NELEM = 30.0, 5, 5.0, 20, 118
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference_numpy")
rng = np.random.default_rng(7)


def lin(name, n_in, n_out, bias=True):
    bound = 1 / np.sqrt(n_in)
    params[name + ".weight"] = rng.uniform(-bound, bound, (n_out, n_in))
    if bias:
        params[name + ".bias"] = rng.uniform(-bound, bound, n_out)


params = {}
params["atom_emb.embeddings.weight"] = rng.uniform(-3 ** 0.5, 3 ** 0.5, (NELEM, F))
for c in ("l1", "l2", "l3"):
    params[f"scalar_{c}_emb.weight"] = rng.uniform(-3 ** 0.5, 3 ** 0.5, (1, F))
for t in range(T):
    m = f"message_passing_layers.{t}."
    lin(m + "x_proj.0", F, F // 2); lin(m + "x_proj.2", F // 2, 3 * F); lin(m + "edge_proj", K, 3 * F)
    u = f"message_update_layers.{t}."
    lin(u + "vec_proj", F, 2 * F, False); lin(u + "xvec_proj.0", 2 * F, F); lin(u + "xvec_proj.2", F, 3 * F)
    s = f"structure_update_layers.{t}."
    lin(s + "attention_pos.0", F, F); lin(s + "attention_pos.2", F, F); lin(s + "pos_mlp", F, 1, False)
    for c in ("l1", "l2", "l3"):
        p = f"lattice_{c}_layers.{t}."
        lin(p + "x_local_proj.0", F, F); lin(p + "x_local_proj.2", F, 3 * F); lin(p + "edge_local_proj", K, 3 * F)
        lin(p + "mlp_scalar_local.0", 2 * F, F); lin(p + "mlp_scalar_local.2", F, F); lin(p + "mlp_vector_local", F, F, False)
        lin(p + "mlp_scalar_global.0", 2 * F, F); lin(p + "mlp_scalar_global.2", F, F); lin(p + "mlp_vector_global", F, F, False)
        lin(p + "vector_l_proj", F, 2 * F, False); lin(p + "scalar_l_proj.0", 2 * F, F); lin(p + "scalar_l_proj.2", F, 3 * F)
        lin(p + "mlp_l", F, 1, False)


def act(x):
    return x / (1 + np.exp(-x)) / 0.6


def L(name, x):
    y = x @ params[name + ".weight"].T
    return y + params[name + ".bias"] if name + ".bias" in params else y


def mlp(name, x, final_act=False):
    y = L(name + ".2", act(L(name + ".0", x)))
    return act(y) if final_act else y


def rbf(d):
    s = d / CUTOFF
    mu = np.linspace(0, 1, K)
    delta = mu[1] - mu[0]
    a, b, c = -(P + 1) * (P + 2) / 2, P * (P + 2), -P * (P + 1) / 2
    u = np.where(s < 1, 1 + a * s ** P + b * s ** (P + 1) + c * s ** (P + 2), 0.0)
    return u[:, None] * np.exp(-0.5 * (s[:, None] - mu) ** 2 / delta ** 2)


def gnorm(r):
    return np.sqrt(np.maximum((r ** 2).sum(-1), 1e-8))


def cnorm(v):  # [n, 3, F] -> [n, F]
    return np.sqrt((v ** 2).sum(1) + 1e-8)


def graph(lattice, pos):
    st = Structure(Lattice(lattice), ["H"] * len(pos), pos, coords_are_cartesian=True, to_unit_cell=False)
    centers, nbrs, images, dist = st.get_neighbor_list(RADIUS)
    edges = []
    for i in range(len(pos)):
        sel = [k for k in range(len(centers)) if centers[k] == i]
        sel.sort(key=lambda k: dist[k])
        for k in sel[:MAX_NB]:
            if nbrs[k] != i:
                edges.append((int(nbrs[k]), i, [int(v) for v in images[k]]))
        for off in ([0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]):
            edges.append((i, i, off))
    return edges


def forward(numbers, pos, lattice, columns, wrap):
    lattice = np.array(lattice, float)
    pos = np.array(pos, float)
    shift = np.zeros_like(pos)
    if wrap:
        frac = pos @ np.linalg.inv(lattice)
        shift = np.floor(frac)
        pos = pos - shift @ lattice
    edges = graph(lattice, pos)
    src = np.array([e[0] for e in edges]); dst = np.array([e[1] for e in edges])
    off = np.array([e[2] for e in edges], float)
    n = len(numbers)
    x = params["atom_emb.embeddings.weight"][numbers]
    v = np.zeros((n, 3, F))
    s = [params[f"scalar_{c}_emb.weight"][0].copy() for c in ("l1", "l2", "l3")]
    w = [np.zeros((3, F)) for _ in range(3)]
    outs = []
    for t in range(T):
        r = pos[src] + off @ lattice - pos[dst]
        d = gnorm(r); u_e = -r / d[:, None]; f_e = rbf(d)
        for ci, c in enumerate(("l1", "l2", "l3")):
            p = f"lattice_{c}_layers.{t}."
            q = lattice[ci][None, :] - pos
            dq = gnorm(q); u_ic = -q / dq[:, None]; f_ic = rbf(dq)
            h = mlp(p + "x_local_proj", x) * L(p + "edge_local_proj", f_ic) / np.sqrt(3)
            x1, x2, x3 = h[:, :F], h[:, F:2 * F], h[:, 2 * F:]
            x = x + x3
            v = (x1[:, None, :] * v + x2[:, None, :] * u_ic[:, :, None]) / np.sqrt(F)
            x = mlp(p + "mlp_scalar_local", np.concatenate([x, np.tile(s[ci], (n, 1))], -1), True) + x
            v = L(p + "mlp_vector_local", v + w[ci][None]) + v
        m = f"message_passing_layers.{t}."
        msg = mlp(m + "x_proj", x)[src] * L(m + "edge_proj", f_e) / np.sqrt(3)
        m1, m2, m3 = msg[:, :F], msg[:, F:2 * F], msg[:, 2 * F:]
        dv_e = (m1[:, None, :] * v[src] + m2[:, None, :] * u_e[:, :, None]) / np.sqrt(F)
        dx = np.zeros_like(x); dv = np.zeros_like(v)
        np.add.at(dx, dst, m3); np.add.at(dv, dst, dv_e)
        x = (x + dx) / np.sqrt(2); v = v + dv
        uu = f"message_update_layers.{t}."
        uv = L(uu + "vec_proj", v); v1, v2 = uv[..., :F], uv[..., F:]
        a = mlp(uu + "xvec_proj", np.concatenate([x, cnorm(v2)], -1))
        a1, a2, a3 = a[:, :F], a[:, F:2 * F], a[:, 2 * F:]
        x, v = (x + a2 / np.sqrt(2) + x * np.tanh(a3)) / np.sqrt(2), v + a1[:, None, :] * v1
        su = f"structure_update_layers.{t}."
        logits = mlp(su + "attention_pos", x)
        alpha = np.exp(logits - logits.max(-1, keepdims=True)); alpha /= alpha.sum(-1, keepdims=True)
        pos = pos + (L(su + "pos_mlp", v)[..., 0] + (alpha[:, None, :] * v).sum(-1)) / 2
        x_mean, v_mean = x.mean(0), v.mean(0)
        dl = []
        for ci, c in enumerate(("l1", "l2", "l3")):
            p = f"lattice_{c}_layers.{t}."
            s[ci] = s[ci] + mlp(p + "mlp_scalar_global", np.concatenate([x_mean, s[ci]]), True)
            w[ci] = w[ci] + L(p + "mlp_vector_global", v_mean + w[ci])
            hy = L(p + "vector_l_proj", w[ci]); h1, h2 = hy[:, :F], hy[:, F:]
            b = mlp(p + "scalar_l_proj", np.concatenate([s[ci], np.sqrt((h2 ** 2).sum(0) + 1e-8)]))
            s[ci] = b[F:2 * F] + s[ci] * np.tanh(b[2 * F:])
            w[ci] = b[:F][None, :] * h1 + w[ci]
            dl.append(L(p + "mlp_l", w[ci])[:, 0])
        delta = np.stack(dl, axis=1) if columns else np.stack(dl, axis=0)
        lattice = lattice + delta
        outs.append({"positions": (pos + shift @ lattice).tolist(), "lattice": lattice.tolist()})
    return outs


crystals = []
for seed, n in ((1, 4), (2, 6)):
    g = np.random.default_rng(seed)
    lat = np.diag(g.uniform(3.5, 4.5, 3)) + g.uniform(-0.6, 0.6, (3, 3))
    frac = g.uniform(-0.3, 1.3, (n, 3))
    crystals.append({"numbers": g.choice([8, 12, 14, 26], n).tolist(), "lattice": lat.tolist(), "positions": (frac @ lat).tolist()})
result = {"config": {"hidden_channels": F, "num_layers": T, "num_rbf": K, "rbf_cutoff": CUTOFF, "envelope_exponent": P,
                     "num_elements": NELEM, "graph_radius": RADIUS, "max_neighbors": MAX_NB},
          "crystals": crystals, "authors": [], "ours": []}
for c in crystals:
    result["authors"].append(forward(c["numbers"], c["positions"], c["lattice"], columns=True, wrap=False))
    result["ours"].append(forward(c["numbers"], c["positions"], c["lattice"], columns=False, wrap=True))
os.makedirs(OUT, exist_ok=True)
params["radial_basis.rbf.offset"] = np.linspace(0, 1, K)
save_file({k: np.ascontiguousarray(v) for k, v in params.items()}, os.path.join(OUT, "weights.safetensors"))
with open(os.path.join(OUT, "outputs.json"), "w") as f:
    json.dump(result, f)
print("wrote", OUT, len(params), "tensors")
