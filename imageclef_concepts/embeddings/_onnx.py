"""The ONNX Runtime backend: any image tower exported to ONNX, run on NumPy batches.

ONNX Runtime (the ``onnx`` extra) is imported on first use, never with the
package. A weights file is read and hashed once per version of the file
(path, size, modification time) in a process; sessions are kept for the two
most recent files, so that the clones of a grid search share one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

import numpy as np

from ..files._atomic import NotARegularFileError, open_regular_file

_LOCK = threading.Lock()
_DIGESTS: dict = {}  # (path, size, mtime_ns, inode) -> SHA-256 hex
_SESSIONS: OrderedDict = OrderedDict()  # (digest, where) -> Network
_KEPT_SESSIONS = 2
_CHUNK = 1 << 22


def onnxruntime():
    """The ``onnxruntime`` module, with what to install when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("FoundationEncoder runs its networks with ONNX Runtime: "
                          "pip install 'imageclef_concepts[onnx]'") from None
    return onnxruntime


def _file_key(path):
    status = os.stat(path)
    return (os.path.realpath(path), status.st_size, status.st_mtime_ns, status.st_ino)


def weights_digest(path):
    """SHA-256 of a weights file, hashed once per version of the file in a process.

    Raises ``ValueError`` naming ``weights`` for a missing file, a folder, a
    pipe or a device (never opened for reading without a writer).
    """
    try:
        with open_regular_file(path, "ONNX weights file") as handle:
            key = (*_file_key(path),)
            with _LOCK:
                if key in _DIGESTS:
                    return _DIGESTS[key]
            hasher = hashlib.sha256()
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
    except (FileNotFoundError, NotARegularFileError) as error:
        raise ValueError(f"weights={os.fspath(path)!r}: {error}") from None
    with _LOCK:
        _DIGESTS[key] = hasher.hexdigest()
    return _DIGESTS[key]


class Network:
    """An ONNX Runtime session and how to read it: input layout, output, pooling.

    Parameters
    ----------
    model : bytes or str
        A serialised ONNX model, or the path of its file.
    where : str
        How the user named it, in messages (``weights='...'``).
    crop : int
        The side of the images the preset feeds it.
    outputs : tuple of str
        The preset's outputs, first found taken; a model with one output gives that one.
    """

    def __init__(self, model, where, crop, outputs):
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # ONNX Runtime's own warnings go to stderr otherwise
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # a protobuf or graph error: not an ONNX image model
            raise ValueError(f"{where}: not an ONNX model ONNX Runtime can run "
                             f"({type(error).__name__}: {str(error).strip()[:300]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{where}: the network must take one batch of images "
                             f"(n, 3, {crop}, {crop}); it takes "
                             f"{[(i.name, i.shape) for i in inputs]}.")
        shape = inputs[0].shape
        self.input = inputs[0].name
        self.channels_last = shape[1] != 3 and shape[3] == 3
        spatial = shape[1:3] if self.channels_last else shape[2:4]
        if not self.channels_last and shape[1] != 3:
            raise ValueError(f"{where}: the network takes {shape[1]} channels, not 3 (RGB).")
        fixed = [side for side in spatial if isinstance(side, int)]
        if any(side != crop for side in fixed):
            raise ValueError(f"{where}: the network takes images of {spatial[0]} x {spatial[1]} "
                             f"pixels; this model's preprocessing gives {crop} x {crop} "
                             "(wrong model name, or a file exported at another size).")
        names = [output.name for output in self.session.get_outputs()]
        found = [name for name in outputs if name in names]
        if not found and len(names) != 1:
            raise ValueError(f"{where}: the network has no output named "
                             f"{' or '.join(outputs)}; its outputs are {names}.")
        self.output = found[0] if found else names[0]

    def run(self, batch):
        """Embed a preprocessed (n, 3, crop, crop) float32 batch: (n, d), not yet normalised.

        A (n, tokens, d) output gives its first token (the CLS token).
        """
        if self.channels_last:
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        (values,) = self.session.run([self.output], {self.input: batch})
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 3:
            values = values[:, 0]
        if values.ndim != 2:
            raise ValueError(f"the network's output {self.output!r} has shape {values.shape}: "
                             "an embedding is (n, d), or (n, tokens, d) for its CLS token.")
        return values


def network(model, digest, where, crop, outputs):
    """The :class:`Network` of ``model`` (bytes, a path, or a function giving either)
    whose content has ``digest``, built once and kept for the most recent files."""
    key = (digest, crop, tuple(outputs))
    with _LOCK:
        if key in _SESSIONS:
            _SESSIONS.move_to_end(key)
            return _SESSIONS[key]
    built = Network(model() if callable(model) else model, where, crop, outputs)
    with _LOCK:
        _SESSIONS[key] = built
        while len(_SESSIONS) > _KEPT_SESSIONS:
            _SESSIONS.popitem(last=False)
    return built
