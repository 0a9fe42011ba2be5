"""BiomedCLIP's published checkpoint, read without PyTorch and run as ONNX.

BiomedCLIP is published as an open_clip PyTorch file
(``open_clip_pytorch_model.bin``, a zip of a pickle and raw tensors). This
module reads its image tower's tensors with NumPy and a restricted
unpickler (tensors, storages and ordered dicts only: a pickle naming any
other object is refused, so no code from the file runs), and writes them
into the ViT graph of :mod:`._random`: timm's ``vit_base_patch16_224``
(open_clip ``visual.trunk``: pre-norm blocks, CLS token after the final
norm) and the linear projection ``visual.head.proj`` (768 -> 512, no bias).
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict

import numpy as np

ZIP_MAGIC = b"PK\x03\x04"
_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name):
        self.dtype = _DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *_):
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=[s * itemsize for s in stride]).copy()


def _rebuild_parameter(data, *_):
    return data


class _TensorUnpickler(pickle.Unpickler):
    def __init__(self, handle, archive, folder):
        super().__init__(handle)
        self.archive, self.folder = archive, folder

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which is not a tensor: "
                                     "refused (a PyTorch state dict holds tensors only)")

    def persistent_load(self, pid):
        _, storage_type, key, _, _ = pid
        data = self.archive.read(f"{self.folder}/data/{key}")
        return np.frombuffer(data, dtype=storage_type.dtype)


def read_state_dict(path, where):
    """The tensors of a PyTorch zip checkpoint, as NumPy arrays by name."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ValueError("no data.pkl in the zip: not a PyTorch checkpoint")
            folder = pickles[0].rpartition("/")[0]
            with archive.open(pickles[0]) as handle:
                state = _TensorUnpickler(handle, archive, folder).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, KeyError, EOFError) as error:
        raise ValueError(f"{where}: cannot read it as a PyTorch checkpoint ({error})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{where}: the checkpoint holds no state dict of tensors")
    return state


def open_clip_vit_parameters(state, architecture, where):
    """The parameters of :func:`._random.random_vit` from open_clip ``visual.*`` tensors."""
    prefix = "visual.trunk."
    names = {"patch.w": "patch_embed.proj.weight", "patch.b": "patch_embed.proj.bias",
             "cls": "cls_token", "position": "pos_embed",
             "ln_post.g": "norm.weight", "ln_post.b": "norm.bias"}
    for i in range(architecture["depth"]):
        for ours, theirs in (("ln1", "norm1"), ("ln2", "norm2")):
            names[f"block{i}.{ours}.g"] = f"blocks.{i}.{theirs}.weight"
            names[f"block{i}.{ours}.b"] = f"blocks.{i}.{theirs}.bias"
        for ours, theirs in (("qkv", "attn.qkv"), ("proj", "attn.proj"), ("fc1", "mlp.fc1"),
                             ("fc2", "mlp.fc2")):
            names[f"block{i}.{ours}.w"] = f"blocks.{i}.{theirs}.weight"
            names[f"block{i}.{ours}.b"] = f"blocks.{i}.{theirs}.bias"
    names = {ours: prefix + theirs for ours, theirs in names.items()}
    names["projection.w"] = "visual.head.proj.weight"
    missing = [theirs for theirs in names.values() if theirs not in state]
    if missing:
        raise ValueError(f"{where}: not an open_clip checkpoint of this model's image tower "
                         f"(missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''})")
    parameters = {}
    for ours, theirs in names.items():
        array = np.asarray(state[theirs], dtype=np.float32)
        # torch's Linear keeps (out, in): the graph multiplies by (in, out).
        parameters[ours] = array.T if ours.endswith(".w") and ours != "patch.w" else array
    return parameters


def open_clip_onnx(path, preset, where):
    """BiomedCLIP's open_clip checkpoint as a serialised ONNX image tower."""
    from ._random import random_vit

    parameters = open_clip_vit_parameters(read_state_dict(path, where), preset.architecture,
                                           where)
    try:
        return random_vit(preset.architecture, preset.outputs[0], parameters=parameters)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
