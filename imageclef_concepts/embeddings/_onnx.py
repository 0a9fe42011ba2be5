"""The ONNX Runtime backend: any image tower exported to ONNX, run on NumPy batches.

ONNX Runtime (the ``onnx`` extra) is imported on first use, never with the
package. A weights file is read and hashed once per version of the file
(its path and the image store's :func:`~..images._shelf.file_version`: size,
modification and status-change times, inode) in a process; sessions are kept for the two
most recent files, so that the clones of a grid search share one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from ..files._atomic import NotARegularFileError, open_regular_file

_LOCK = threading.Lock()
_DIGESTS: dict = {}  # (path, file_version) -> SHA-256 hex
_SESSIONS: OrderedDict = OrderedDict()  # (digest, where) -> Network
_KEPT_SESSIONS = 2
_CHUNK = 1 << 22
# The pixels' type for each input type a network may take; others are refused.
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(double)": np.float64}


def onnxruntime():
    """The ``onnxruntime`` module, with what to install when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("FoundationEncoder runs its networks with ONNX Runtime: "
                          "pip install 'imageclef_concepts[onnx]'") from None
    return onnxruntime


def _file_key(path):
    # The image store's version of a file: a file rewritten in place with its size and
    # modification time put back has another status-change time, so it is hashed again
    # (its old digest served the old weights' embeddings from a store).
    from ..images._shelf import file_version

    version = file_version(path)
    if version is None:
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    return (os.path.realpath(path), version)


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
            digest = _sha256(handle)
    except (FileNotFoundError, NotARegularFileError) as error:
        raise ValueError(f"weights={os.fspath(path)!r}: {error}") from None
    with _LOCK:
        _DIGESTS[key] = digest
    return digest


def _sha256(handle):
    hasher = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


@contextmanager
def open_weights(path, digest, where):
    """The weights file, open at its start, once its content is checked to be ``digest``'s.

    A digest held for the file (by an encoder that read it, or one loaded from
    a file) is stale when the file was rewritten since, even keeping its size
    and time (``cp -p``, an unpacked archive): what is loaded is then refused,
    never run under the old digest (the identity, and the sessions kept by
    it), and the file is hashed again next time.
    """
    try:
        with open_regular_file(path, "ONNX weights file") as handle:
            if _sha256(handle) != digest:
                with _LOCK:
                    for key in [key for key in _DIGESTS if key[0] == os.path.realpath(path)]:
                        del _DIGESTS[key]
                raise ValueError(f"{where}: the file changed while this encoder read it (its "
                                 "SHA-256 is not the one computed first, though its size and "
                                 "time may be): read it again once it is written.")
            handle.seek(0)
            yield handle
    except (FileNotFoundError, NotARegularFileError) as error:
        raise ValueError(f"{where}: {error}") from None


def _refuse_external_data(model, where):
    """Refuse an ONNX file whose tensors live in other files: its SHA-256 would not
    cover them, and ONNX Runtime would look for them in the working directory."""
    try:
        import onnx
    except ImportError:
        raise ImportError("FoundationEncoder reads ONNX files with the onnx package: "
                          "pip install 'imageclef_concepts[onnx]'") from None
    try:
        graphs, external = [onnx.load_model_from_string(model).graph], 0
    except Exception:  # not a protobuf: ONNX Runtime says so, naming the file
        return
    while graphs:
        graph = graphs.pop()
        tensors = [*graph.initializer, *(s.values for s in graph.sparse_initializer)]
        for node in graph.node:
            for attribute in node.attribute:
                tensors += [attribute.t, *attribute.tensors]
                graphs += [attribute.g, *attribute.graphs]
        external += sum(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors)
    if external:
        raise ValueError(f"{where}: the file keeps {external} of its tensors in other files "
                         "(ONNX external data), which its SHA-256 would not cover: save it "
                         "as one file, onnx.save_model(onnx.load(path), 'one.onnx') (up to "
                         "2 GB).")


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
        self.where = where
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{where}: the network must take one batch of images "
                             f"(n, 3, {crop}, {crop}); it takes "
                             f"{[(i.name, i.shape) for i in inputs]}.")
        shape = inputs[0].shape
        self.input = inputs[0].name
        if inputs[0].type not in _INPUT_TYPES:
            raise ValueError(f"{where}: the network takes {inputs[0].type} pixels; an image "
                             "tower takes float (or float16, double) normalised pixels.")
        self.dtype = _INPUT_TYPES[inputs[0].type]
        # A fixed batch size (an export without a dynamic batch axis) is fed in slices.
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.channels_last = shape[1] != 3 and shape[3] == 3
        spatial = shape[1:3] if self.channels_last else shape[2:4]
        if not self.channels_last and isinstance(shape[1], int) and shape[1] != 3:
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
            batch = batch.transpose(0, 2, 3, 1)
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        step = self.fixed_batch or len(batch)
        values = np.concatenate([self._run(batch[start:start + step])
                                 for start in range(0, len(batch), step)])
        lost = ~np.isfinite(values).all(axis=1)
        zero = ~lost & ~values.any(axis=1)
        for rows, what in ((lost, "NaN or infinite values"), (zero, "a zero vector")):
            if rows.any():  # an embedding with no direction: its unit vector is undefined
                raise ValueError(f"{self.where}: the network gives {what} for {rows.sum()} "
                                 f"of the {len(values)} images (a damaged or wrong file).")
        return values

    def _run(self, batch):
        n = len(batch)
        if self.fixed_batch and n < self.fixed_batch:  # the last slice, padded
            batch = np.concatenate([batch, np.zeros((self.fixed_batch - n, *batch.shape[1:]),
                                                    batch.dtype)])
        (values,) = self.session.run([self.output], {self.input: batch})
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 3:
            values = values[:, 0]
        if values.ndim != 2:
            raise ValueError(f"{self.where}: the network's output {self.output!r} has shape "
                             f"{values.shape}: an embedding is (n, d), or (n, tokens, d) for "
                             "its CLS token.")
        if len(values) != len(batch):
            raise ValueError(f"{self.where}: the network's output {self.output!r} gives "
                             f"{len(values)} row(s) for {len(batch)} images.")
        return values[:n]


def network(model, digest, where, crop, outputs):
    """The :class:`Network` of ``model`` (bytes, a path, or a function giving bytes)
    whose content has ``digest``, built once and kept for the most recent files.

    A path is read once and checked against ``digest`` (:func:`open_weights`);
    a file keeping its tensors in other files is refused.
    """
    key = (digest, crop, tuple(outputs))
    with _LOCK:
        if key in _SESSIONS:
            _SESSIONS.move_to_end(key)
            return _SESSIONS[key]
    if isinstance(model, (str, os.PathLike)):  # what is run is what was hashed
        with open_weights(model, digest, where) as handle:
            model = handle.read()
        _refuse_external_data(model, where)
    built = Network(model() if callable(model) else model, where, crop, outputs)
    with _LOCK:
        _SESSIONS[key] = built
        while len(_SESSIONS) > _KEPT_SESSIONS:
            _SESSIONS.popitem(last=False)
    return built
