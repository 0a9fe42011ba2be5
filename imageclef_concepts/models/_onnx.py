"""An exported ONNX model's names and metadata: what it takes, gives, and how to decide.

A converter names a graph's tensors after its own internals (TensorFlow's
``Identity:0``) and records nothing of the estimator. :func:`label_onnx_file`
gives an exported file its public names, :data:`INPUT_NAME` (uint8 pixels)
and :data:`OUTPUT_NAME` (one probability per concept), and its metadata
(``metadata_props``, each value JSON) under three keys: ``"concepts"`` (the
output's columns), ``"decision_rule"`` (the thresholds, ``min_concepts`` and
``max_concepts`` of :meth:`DecisionRule.to_dict
<imageclef_concepts.DecisionRule.to_dict>`) and ``"imageclef_concepts"`` (the
estimator, library version, input and output). Read it with ONNX Runtime::

    meta = session.get_modelmeta().custom_metadata_map
    concepts = json.loads(meta["concepts"])
    rule = DecisionRule.from_dict(json.loads(meta["decision_rule"]))
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names for annotations only
    from typing import Any

    from .._typing import PathLike

#: The exported graph's input (uint8 pixels, batch x size x size x 3) and output.
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def check_onnx_installed() -> None:
    """Refuse, before any work, an ONNX export without its converter installed."""
    import importlib.util

    missing = [name for name in ("tf2onnx", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: pip install "
                          "\"imageclef_concepts[onnx]\".")


def label_onnx_file(path: PathLike, metadata: dict[str, Any]) -> None:
    """Name the single output :data:`OUTPUT_NAME` and add ``metadata`` (JSON values), in place.

    The converter has named the input already (the signature's name,
    :data:`INPUT_NAME`); the output is renamed by an ``Identity`` node, so
    that no node of the converted graph is touched.
    """
    import onnx

    model = onnx.load_model(path)
    graph = model.graph
    inputs = [tensor.name for tensor in graph.input
              if tensor.name not in {init.name for init in graph.initializer}]
    if inputs != [INPUT_NAME] or len(graph.output) != 1:
        raise ValueError(f"the converted graph has inputs {inputs} and {len(graph.output)} "
                         f"outputs; expected one input {INPUT_NAME!r} and one output")
    (output,) = graph.output
    if output.name != OUTPUT_NAME:
        graph.node.append(onnx.helper.make_node("Identity", [output.name], [OUTPUT_NAME],
                                                name=OUTPUT_NAME))
        output.name = OUTPUT_NAME
    _name_batch_dimension(graph, [graph.input[0], output])
    onnx.helper.set_model_props(model, {key: json.dumps(value, allow_nan=False)
                                        for key, value in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save_model(model, path)


def _name_batch_dimension(graph, tensors):
    """Call the first dimension of ``tensors``, which the converter left unnamed, ``batch``."""
    unnamed = {tensor.type.tensor_type.shape.dim[0].dim_param for tensor in tensors} - {""}
    for tensor in [*graph.input, *graph.output, *graph.value_info]:
        for dimension in tensor.type.tensor_type.shape.dim:
            if dimension.dim_param in unnamed:
                dimension.dim_param = "batch"
