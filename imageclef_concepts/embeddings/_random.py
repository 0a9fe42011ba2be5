"""Vision transformers with random weights, written as ONNX: for tests and timing only.

:func:`random_vit` builds the image tower of a preset (patch embedding, CLS
token, position embedding, pre-norm blocks, final norm, CLS token, optional
linear projection) with the ``onnx`` package, so that every loader is tested
and every encoder timed at its real size without downloading weights.
Random weights embed nothing meaningful: never a result.
"""

from __future__ import annotations

import numpy as np

_OPSET = 17  # LayerNormalization


def random_vit(architecture, output="image_embeds", seed=0, tokens=False, parameters=None):
    """A serialised ONNX ViT with random weights: input ``pixel_values`` (n, 3, s, s).

    Parameters
    ----------
    architecture : dict
        ``patch``, ``image_size``, ``width``, ``depth``, ``heads``,
        ``projection`` (None or its width), ``ln_pre``, ``layer_scale``
        (see :mod:`._presets`).
    output : str, default="image_embeds"
        The name of the network's output.
    seed : int, default=0
    tokens : bool, default=False
        Give every token after the final norm, (n, tokens, width), instead of
        the CLS token (projected when ``projection`` is set).
    parameters : dict of str to ndarray, default=None
        Trained weights by the graph's names (``block0.qkv.w``...) instead of
        random ones (:mod:`._checkpoint`); a missing name or a wrong shape is
        a ``ValueError``.

    Returns
    -------
    bytes
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    a = dict(architecture)
    width, heads, patch, size = a["width"], a["heads"], a["patch"], a["image_size"]
    n_tokens = (size // patch) ** 2 + 1
    head_width = width // heads
    nodes, weights = [], []

    def weight(name, shape, scale=0.02, value=None):
        if value is not None:
            array = np.full(shape, value, dtype=np.float32)
        elif parameters is None:
            array = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        elif name not in parameters:
            raise ValueError(f"no weights for {name}")
        else:
            array = np.ascontiguousarray(parameters[name], dtype=np.float32)
            if array.shape != tuple(shape):
                raise ValueError(f"{name} has shape {array.shape}, the architecture "
                                 f"{tuple(shape)}")
        weights.append(numpy_helper.from_array(array, name))
        return name

    def trained(initial):  # a trained parameter's random-build value, None when given
        return None if parameters is not None else initial

    def constant(name, values):
        weights.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(op, inputs, name, **attributes):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def norm(x, name):
        return node("LayerNormalization", [x, weight(f"{name}.g", [width], 0.0, trained(1.0)),
                                           weight(f"{name}.b", [width], 0.0, trained(0.0))],
                    name, axis=-1, epsilon=1e-6)

    def dense(x, name, n_in, n_out, bias=True):
        y = node("MatMul", [x, weight(f"{name}.w", [n_in, n_out])], f"{name}.mm")
        return node("Add", [y, weight(f"{name}.b", [n_out], 0.0, trained(0.0))], name) \
            if bias else y

    x = node("Conv", ["pixel_values", weight("patch.w", [width, 3, patch, patch]),
                      weight("patch.b", [width], 0.0, trained(0.0))], "patch",
             strides=[patch, patch])
    x = node("Reshape", [x, constant("shape.flat", [0, width, -1])], "patch.flat")
    x = node("Transpose", [x], "patch.tokens", perm=[0, 2, 1])
    first = node("Slice", [x, constant("s0", [0]), constant("s1", [1]), constant("ax1", [1])],
                 "first")
    zero = node("Mul", [first, weight("zero", [1], value=0.0)], "cls.zero")
    cls = node("Add", [zero, weight("cls", [1, 1, width])], "cls.token")
    x = node("Concat", [cls, x], "tokens", axis=1)
    x = node("Add", [x, weight("position", [1, n_tokens, width])], "embedded")
    if a["ln_pre"]:
        x = norm(x, "ln_pre")
    scale = weight("attn.scale", [1], value=head_width ** -0.5)
    heads_shape = constant("shape.heads", [0, -1, 3, heads, head_width])
    merged_shape = constant("shape.merged", [0, -1, width])
    for i in range(a["depth"]):
        b = f"block{i}"
        qkv = dense(norm(x, f"{b}.ln1"), f"{b}.qkv", width, 3 * width)
        qkv = node("Reshape", [qkv, heads_shape], f"{b}.qkv.heads")
        qkv = node("Transpose", [qkv], f"{b}.qkv.t", perm=[2, 0, 3, 1, 4])
        q, k, v = (node("Gather", [qkv, constant(f"{b}.i{j}", j)], f"{b}.{n}", axis=0)
                   for j, n in enumerate("qkv"))
        kt = node("Transpose", [k], f"{b}.kt", perm=[0, 1, 3, 2])
        scores = node("Mul", [node("MatMul", [q, kt], f"{b}.qk"), scale], f"{b}.scores")
        attention = node("Softmax", [scores], f"{b}.softmax", axis=-1)
        mixed = node("MatMul", [attention, v], f"{b}.mixed")
        mixed = node("Transpose", [mixed], f"{b}.mixed.t", perm=[0, 2, 1, 3])
        mixed = node("Reshape", [mixed, merged_shape], f"{b}.mixed.flat")
        y = dense(mixed, f"{b}.proj", width, width)
        if a["layer_scale"]:
            y = node("Mul", [y, weight(f"{b}.ls1", [width], 0.0, trained(1.0))], f"{b}.ls1.y")
        x = node("Add", [x, y], f"{b}.res1")
        h = dense(norm(x, f"{b}.ln2"), f"{b}.fc1", width, 4 * width)
        erf = node("Erf", [node("Mul", [h, weight(f"{b}.rsqrt2", [1], value=2 ** -0.5)],
                                f"{b}.h.scaled")], f"{b}.erf")
        gate = node("Add", [erf, weight(f"{b}.one", [1], value=1.0)], f"{b}.gate")
        h = node("Mul", [node("Mul", [h, gate], f"{b}.gelu2"),
                         weight(f"{b}.half", [1], value=0.5)], f"{b}.gelu")
        y = dense(h, f"{b}.fc2", 4 * width, width)
        if a["layer_scale"]:
            y = node("Mul", [y, weight(f"{b}.ls2", [width], 0.0, trained(1.0))], f"{b}.ls2.y")
        x = node("Add", [x, y], f"{b}.res2")
    x = norm(x, "ln_post")
    n_out = width
    if not tokens:
        x = node("Gather", [x, constant("i.cls", 0)], "cls.out", axis=1)
        if a["projection"]:
            x = dense(x, "projection", width, a["projection"], bias=False)
            n_out = a["projection"]
    nodes[-1].output[0] = output
    shape = ["n", n_tokens, n_out] if tokens else ["n", n_out]
    graph = helper.make_graph(
        nodes, "random_vit",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              producer_name="imageclef_concepts random_vit")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
