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

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from contextlib import nullcontext
from numbers import Integral

import numpy as np

from ..files._atomic import open_regular_file
from ..models._card import ModelFileError
from ..models._zip import ModelZip

ZIP_MAGIC = b"PK\x03\x04"
_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_LARGEST_PICKLE = 2**26  # BiomedCLIP's data.pkl is about 100 KB: 64 MiB is far more


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(_DTYPES[name])


def _integers(values):
    return (isinstance(values, (tuple, list)) and
            all(isinstance(v, Integral) and not isinstance(v, bool) for v in values))


def _rebuild_parameter(data, *_):
    return data


class _TensorUnpickler(pickle.Unpickler):
    """Tensors, storages and ordered dicts only; every tensor checked to lie inside its
    storage, and every byte read or copied counted against the zip's budget."""

    def __init__(self, handle, archive, folder):
        super().__init__(handle)
        self.archive, self.folder = archive, folder
        self.storages = {}  # key -> array: tensors sharing a storage read it once

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which is not a tensor: "
                                     "refused (a PyTorch state dict holds tensors only)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise pickle.UnpicklingError(f"a storage reference {str(pid)[:80]} is not "
                                         "PyTorch's ('storage', type, key, location, size)")
        dtype, key = pid[1].dtype, pid[2]
        if key not in self.storages:
            data = self.archive.read(f"{self.folder}/data/{key}")
            if len(data) % dtype.itemsize:
                raise pickle.UnpicklingError(
                    f"storage {key} holds {len(data)} bytes: not a whole number of {dtype}")
            self.storages[key] = np.frombuffer(data, dtype=dtype)
        return self.storages[key].view(dtype)

    def _rebuild_tensor(self, storage, offset, size, stride, *_):
        if not (isinstance(storage, np.ndarray) and isinstance(offset, Integral)
                and _integers(size) and _integers(stride)):
            raise pickle.UnpicklingError("a tensor whose storage, offset, sizes or strides "
                                         "are not a tensor's")
        if len(size) != len(stride):
            raise pickle.UnpicklingError(f"a tensor with {len(size)} sizes and {len(stride)} "
                                         "strides")
        if offset < 0 or min((*size, *stride), default=0) < 0:
            raise pickle.UnpicklingError(f"a tensor with a negative offset, size or stride "
                                         f"({offset}, {list(size)}, {list(stride)})")
        n = int(np.prod(size, dtype=object))
        # The last element's index; an empty tensor reads nothing.
        last = offset + sum((d - 1) * s for d, s in zip(size, stride)) if n else -1
        if last >= len(storage):
            raise pickle.UnpicklingError(
                f"a tensor of sizes {list(size)}, strides {list(stride)} at offset {offset} "
                f"would reach past its storage of {len(storage)} elements")
        self.archive.spend(n * storage.dtype.itemsize, "its tensors copy")
        itemsize = storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=[s * itemsize for s in stride]).copy()


def read_state_dict(path, where):
    """The tensors of a PyTorch zip checkpoint (a path or a binary file object, seekable),
    as NumPy arrays by name.

    Read with the library's bounded zip reader (:class:`~..models._zip.ModelZip`):
    what its members inflate to and what its tensors copy count against the
    file's budget, and every tensor must lie inside its storage.
    """
    try:
        opened = (open_regular_file(path, "PyTorch checkpoint")
                  if isinstance(path, (str, os.PathLike)) else nullcontext(path))
        with opened as handle, ModelZip(handle, where, kind="a PyTorch checkpoint") as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ValueError(f"{len(pickles) or 'no'} data.pkl in the zip, where a "
                                 "PyTorch checkpoint has one")
            folder = pickles[0].rpartition("/")[0]
            data = archive.read(pickles[0], _LARGEST_PICKLE, "a state dict's pickle needs")
            state = _TensorUnpickler(io.BytesIO(data), archive, folder).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, KeyError, EOFError,
            TypeError, AttributeError, IndexError, OverflowError, RecursionError, OSError) as error:
        if isinstance(error, ModelFileError):  # the zip reader's own, naming the file
            raise
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
