"""Writes the authors' E3Relax checkpoint (model.pt) as safetensors, unchanged.

    python3 tools/generate/export_pytorch_checkpoint.py model.pt state.safetensors
    e3relax import-pytorch state.safetensors --config config.json -o my-model

Needs torch and safetensors (pip install torch safetensors). Their training
code saves the EMA parameters either as a bare state dict or under a key
such as "model_state_dict"/"state_dict"; the first dict of tensors is used.
"""
import sys

import torch
from safetensors.torch import save_file

checkpoint = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
if not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
    checkpoint = next(v for k, v in checkpoint.items() if k in ("ema_state_dict", "model_state_dict", "state_dict", "model"))
save_file({name: tensor.detach().contiguous() for name, tensor in checkpoint.items()}, sys.argv[2])
print(f"wrote {len(checkpoint)} tensors to {sys.argv[2]}")
