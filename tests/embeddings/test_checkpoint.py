"""BiomedCLIP's open_clip checkpoint read without PyTorch: checked against PyTorch itself.

The checkpoint is written by ``torch.save`` (the format the authors publish)
with random tensors under open_clip's names, at a tiny size; the reference
embedding is timm's ViT forward written out in PyTorch.
"""

import os
import pickle
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imageclef_concepts import FoundationEncoder
from imageclef_concepts.embeddings._checkpoint import read_state_dict
from imageclef_concepts.embeddings._presets import PRESETS

from .onnx_models import TINY, TINY_VIT

ARCH = TINY_VIT  # width 32, 2 blocks, 2 heads, 8 px patches on 32 px, projection 16


def _open_clip_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    w, t = ARCH["width"], (ARCH["image_size"] // ARCH["patch"]) ** 2 + 1

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    state = {"visual.trunk.patch_embed.proj.weight": r(w, 3, 8, 8),
             "visual.trunk.patch_embed.proj.bias": r(w), "visual.trunk.cls_token": r(1, 1, w),
             "visual.trunk.pos_embed": r(1, t, w), "visual.trunk.norm.weight": 1 + r(w),
             "visual.trunk.norm.bias": r(w), "visual.head.proj.weight": r(16, w),
             "text.transformer.embeddings.word_embeddings.weight": r(10, 4),  # ignored
             "logit_scale": torch.tensor(4.6)}
    for i in range(ARCH["depth"]):
        b = f"visual.trunk.blocks.{i}."
        state.update({b + "norm1.weight": 1 + r(w), b + "norm1.bias": r(w),
                      b + "attn.qkv.weight": r(3 * w, w), b + "attn.qkv.bias": r(3 * w),
                      b + "attn.proj.weight": r(w, w), b + "attn.proj.bias": r(w),
                      b + "norm2.weight": 1 + r(w), b + "norm2.bias": r(w),
                      b + "mlp.fc1.weight": r(4 * w, w), b + "mlp.fc1.bias": r(4 * w),
                      b + "mlp.fc2.weight": r(w, 4 * w), b + "mlp.fc2.bias": r(w)})
    return state


def _timm_forward(state, x):
    """timm VisionTransformer (global_pool='token') + open_clip's linear head."""
    s = {k.removeprefix("visual.trunk."): v for k, v in state.items()}
    w, heads = ARCH["width"], ARCH["heads"]
    x = F.conv2d(x, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=8)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([s["cls_token"].expand(len(x), -1, -1), x], dim=1) + s["pos_embed"]
    for i in range(ARCH["depth"]):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (w,), s[b + "norm1.weight"], s[b + "norm1.bias"], eps=1e-6)
        n, t, _ = h.shape
        qkv = F.linear(h, s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"])
        q, k, v = qkv.reshape(n, t, 3, heads, w // heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, w)
        x = x + F.linear(a, s[b + "attn.proj.weight"], s[b + "attn.proj.bias"])
        h = F.layer_norm(x, (w,), s[b + "norm2.weight"], s[b + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"])),
                     s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"])
        x = x + h
    x = F.layer_norm(x, (w,), s["norm.weight"], s["norm.bias"], eps=1e-6)[:, 0]
    return F.linear(x, state["visual.head.proj.weight"])


@pytest.fixture
def tiny_clip(monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny-clip", replace(TINY, checkpoint="open_clip"))
    monkeypatch.setitem(PRESETS, "tiny", TINY)


def test_the_checkpoint_embeds_as_pytorch_does(tmp_path, tiny_clip):
    state = _open_clip_state()
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    images = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    encoder = FoundationEncoder("tiny-clip", tmp_path / "open_clip_pytorch_model.bin")
    vectors = encoder.embed(images)
    with torch.no_grad():
        expected = _timm_forward(state, torch.from_numpy(encoder.preprocess(images)))
    expected = F.normalize(expected, dim=1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert '"weights_format": "open_clip"' in encoder.embedding_identity()


def test_the_reader_gives_pytorchs_tensors_and_runs_no_code(tmp_path):
    state = {"a": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # strided view
             "b": torch.tensor([1, 2], dtype=torch.int64), "c": torch.ones(2).half()}
    torch.save(state, tmp_path / "s.bin")
    read = read_state_dict(tmp_path / "s.bin", "w")
    for name, tensor in state.items():
        np.testing.assert_array_equal(read[name], tensor.numpy())
    torch.save({"a": torch.zeros(1), "evil": os.system}, tmp_path / "evil.bin")
    with pytest.raises(ValueError, match="w: cannot read it as a PyTorch checkpoint.*posix"):
        read_state_dict(tmp_path / "evil.bin", "w")


def test_a_wrong_checkpoint_is_refused_naming_weights(tmp_path, tiny_clip):
    state = _open_clip_state()
    del state["visual.head.proj.weight"]
    torch.save(state, tmp_path / "partial.bin")
    with pytest.raises(ValueError, match="weights=.*partial.bin.*missing visual.head.proj"):
        FoundationEncoder("tiny-clip", str(tmp_path / "partial.bin")).embed(np.zeros((1, 40, 40)))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="other.zip': cannot read it as a PyTorch checkpoint"):
        FoundationEncoder("tiny-clip", str(tmp_path / "other.zip")).embed(np.zeros((1, 40, 40)))
    with pytest.raises(ValueError, match="is a PyTorch checkpoint: for model='tiny'"):
        torch.save(_open_clip_state(), tmp_path / "m.bin")
        FoundationEncoder("tiny", str(tmp_path / "m.bin")).embed(np.zeros((1, 40, 40)))
    pickle.dumps(FoundationEncoder("tiny-clip", str(tmp_path / "m.bin")))  # plain parameters


def _hostile_checkpoint(path, offset, size, stride, storage=b"\0" * 16, storage_type=None,
                        member=zipfile.ZIP_STORED):
    """A checkpoint as torch.save writes it, but whose tensor says what the test wants."""
    import io
    from collections import OrderedDict

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2,
                    (Storage(), offset, size, stride, False, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", storage_type or torch.FloatStorage, "0", "cpu", 4)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(OrderedDict(w=Tensor()))
    with zipfile.ZipFile(path, "w", member) as archive:
        archive.writestr("m/data.pkl", buffer.getvalue())
        archive.writestr("m/data/0", storage)
    return path


@pytest.mark.parametrize("offset, size, stride, storage, message", [
    (0, [4], [1], b"\0" * 16, None),  # the control: within bounds, read
    (0, [1000], [1], b"\0" * 16, "reach past its storage"),  # storage too short
    (3, [2], [1], b"\0" * 16, "reach past its storage"),  # offset + extent past the end
    (10**6, [1], [1], b"\0" * 16, "reach past its storage"),  # offset past the end
    (0, [2], [10**6], b"\0" * 16, "reach past its storage"),  # a stride past the end
    (-4, [2], [1], b"\0" * 16, "negative"),  # before the storage
    (0, [2], [-1], b"\0" * 16, "negative"),
    (0, [-2], [1], b"\0" * 16, "negative"),
    (0, [2, 2], [1], b"\0" * 16, "sizes and 1 strides"),
    (0, 4, [1], b"\0" * 16, "not a tensor's"),  # sizes not a tuple
    ("0", [4], [1], b"\0" * 16, "not a tensor's"),
    (0, [4], [1], b"\0" * 15, "not a whole number of float32"),
    (0, [10**9, 10**9], [0, 0], b"\0" * 16, "more than"),  # a copy of 4 EB from 16 bytes
])
def test_a_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride, storage,
                                                 message):
    path = _hostile_checkpoint(tmp_path / "hostile.bin", offset, size, stride, storage)
    if message is None:
        assert read_state_dict(path, "weights='hostile.bin'")["w"].shape == (4,)
        return
    with pytest.raises(ValueError, match=f"weights='hostile.bin': .*{message}"):
        read_state_dict(path, "weights='hostile.bin'")


def test_a_storage_of_another_type_is_refused(tmp_path):
    path = _hostile_checkpoint(tmp_path / "h.bin", 0, [4], [1], storage_type="FloatStorage")
    with pytest.raises(ValueError, match="w: cannot read it as a PyTorch checkpoint"):
        read_state_dict(path, "w")


def test_a_decompression_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    from imageclef_concepts.models import _zip

    monkeypatch.setattr(_zip, "INFLATION_FLOOR", 2**20)  # 1 MiB, so the bomb stays small
    path = _hostile_checkpoint(tmp_path / "bomb.bin", 0, [4], [1], storage=b"\0" * 2**24,
                               member=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 2**16
    with pytest.raises(ValueError, match="bomb.bin.*decompression bomb"):
        read_state_dict(path, str(path))


def test_a_member_read_again_and_again_counts_once(tmp_path):
    """Tensors sharing one storage read it once (as torch does), so the budget holds."""
    state = {"a": torch.arange(8.0)}
    state["b"] = state["a"][2:6]
    torch.save(state, tmp_path / "shared.bin")
    read = read_state_dict(tmp_path / "shared.bin", "w")
    np.testing.assert_array_equal(read["b"], [2, 3, 4, 5])


def test_a_zip_of_two_checkpoints_is_refused_saying_so(tmp_path):
    torch.save({"a": torch.ones(2)}, tmp_path / "one.bin")
    with zipfile.ZipFile(tmp_path / "one.bin") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(tmp_path / "two.bin", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
            archive.writestr("other/" + name.partition("/")[2], data)
    with pytest.raises(ValueError, match="w: .*2 data.pkl in the zip, where a PyTorch "
                                         "checkpoint has one"):
        read_state_dict(tmp_path / "two.bin", "w")
