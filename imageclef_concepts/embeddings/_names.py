"""Encoders by name (the command line's ``--encoder``), and saved by identity in model files.

:func:`make_encoder` is the one lookup from a name to an encoder; a model
file keeps an encoder as its class name, parameters and
``embedding_identity()`` (never its weights): :func:`encoder_description`
and :func:`encoder_from_description`, which rebuilds it from the weights on
this machine and refuses one whose identity differs.
"""

from __future__ import annotations

from ..keras import BACKBONES
from ..models._archive import estimator_from_params, jsonable
from ..models._card import ModelFileError


def _backbone_embedding():
    from ..keras import BackboneEmbedding

    return BackboneEmbedding


def _foundation_encoder():
    from ._encoder import FoundationEncoder

    return FoundationEncoder


#: Encoder classes a model file may name (no other is imported for a file).
ENCODER_CLASSES = {"BackboneEmbedding": _backbone_embedding,
                   "FoundationEncoder": _foundation_encoder}


def foundation_names():
    """The foundation models' names (:class:`~imageclef_concepts.FoundationEncoder`'s presets)."""
    from ._presets import PRESETS

    return tuple(PRESETS)


def encoder_names():
    """The names :func:`make_encoder` takes: the foundation models, then the Keras backbones."""
    return foundation_names() + tuple(BACKBONES)


def make_encoder(name, **options):
    """The encoder called ``name``, with ``options`` as its parameters.

    A foundation model's name (``"biomedclip"``, ``"rad-dino"``...) gives a
    :class:`~imageclef_concepts.FoundationEncoder` (its ``weights`` a file;
    no ``image_size``: the model's authors fixed it), a Keras backbone's a
    :class:`~imageclef_concepts.BackboneEmbedding`.

    Raises
    ------
    ValueError
        For a name no encoder has, listing those there are, or an
        ``image_size`` given to a foundation model.
    """
    if name in foundation_names():
        if options.pop("image_size", None) is not None:
            raise ValueError(f"{name} sees images at the size its authors chose: give no "
                             "image size.")
        return _foundation_encoder()(name, **options)
    if name in BACKBONES:
        return _backbone_embedding()(name, **options)
    raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(encoder_names())}.")


def encoder_description(encoder):
    """What a model file keeps of ``encoder``: class, parameters and identity (no weights).

    Raises
    ------
    TypeError
        For an encoder the library cannot rebuild from a file.
    """
    kind = type(encoder).__name__
    if kind not in ENCODER_CLASSES or ENCODER_CLASSES[kind]() is not type(encoder):
        raise TypeError(f"an encoder {kind} cannot be saved in a model file: use one of "
                        f"{', '.join(ENCODER_CLASSES)}, or joblib.dump.")
    params = {name: None if name == "image_store" else jsonable(value)
              for name, value in encoder.get_params(deep=False).items()}
    return {"encoder": kind, "params": params, "identity": encoder.embedding_identity()}


def encoder_from_description(description, path):
    """The encoder a model file describes, rebuilt here and checked to be the same one.

    Raises
    ------
    ModelFileError
        For an unknown encoder class, bad parameters, or an encoder whose
        ``embedding_identity()`` on this machine is not the saved one
        (other weights, another preprocessing).
    """
    kind = description.get("encoder") if isinstance(description, dict) else None
    if kind not in ENCODER_CLASSES or not isinstance(description.get("params"), dict):
        raise ModelFileError(f"{path}: the model's encoder {kind!r:.80} is not one the library "
                             "rebuilds from a file")
    encoder = estimator_from_params(ENCODER_CLASSES[kind](), description["params"], path)
    saved, here = description.get("identity"), encoder.embedding_identity()
    if saved != here:
        raise ModelFileError(f"{path}: the model was fitted on the embeddings of {saved!r:.200}; "
                             f"the encoder built here is {here!r:.200} (other weights or "
                             "preprocessing): its embeddings would not be comparable")
    return encoder
