"""qmetal.load_mlx and qmetal.load_safetensors: MLX model directories
written with mlx.core.save_safetensors and mx.quantize (one file, or shards
with model.safetensors.index.json as mlx-lm writes them), per-layer
quantization overrides and `false`, results against mx.quantized_matmul /
mx.gather_qmm / mx.dequantize, zero-copy views of the mapped files, and
malformed files and directories refused with a ValueError naming the file
and the tensor."""

from __future__ import annotations

import json
import mmap
import struct

import ml_dtypes
import numpy as np
import pytest

import qmetal
from conftest import BFLOAT16, from_mx, mlx_matmul_tolerance, relative_error, to_mx, random_weights

mx = pytest.importorskip("mlx.core")

# name: (shape [..., N, K], dtype, bits, group_size, config override)
QUANTIZED = {
    "model.embed_tokens": ((64, 256), BFLOAT16, 4, 64, None),
    "model.layers.0.self_attn.q_proj": ((48, 256), BFLOAT16, 4, 64, None),
    "model.layers.0.self_attn.v_proj": ((16, 256), BFLOAT16, 6, 64, {"group_size": 64, "bits": 6}),
    "model.layers.0.mlp.down_proj": ((40, 128), np.dtype(np.float16), 8, 32, {"group_size": 32, "bits": 8}),
    "model.layers.0.mlp.up_proj": ((24, 384), np.dtype(np.float32), 3, 128, {"group_size": 128, "bits": 3}),
    "model.layers.0.mlp.switch_mlp.gate_proj": ((3, 16, 256), BFLOAT16, 4, 64, None),
}
# Unquantized tensors, including a linear layer the config marks `false`.
PLAIN = {
    "model.layers.0.self_attn.k_proj.weight": ((16, 256), BFLOAT16),
    "model.layers.0.input_layernorm.weight": ((256,), BFLOAT16),
    "model.norm.weight": ((256,), np.dtype(np.float32)),
    "lm_head.weight": ((8, 256), np.dtype(np.float16)),
    "model.rope.positions": ((5,), np.dtype(np.int32)),
}


def config_for(overrides=True):
    quantization = {"group_size": 64, "bits": 4}
    if overrides:
        for name, (_, _, _, _, override) in QUANTIZED.items():
            if override is not None:
                quantization[name] = override
        quantization["model.layers.0.self_attn.k_proj"] = False
    return {"model_type": "llama", "hidden_size": 256, "quantization": quantization,
            "quantization_config": quantization}


def write_model(directory, rng, shards=1):
    """An mlx-lm style directory; returns the mx arrays written, by name."""
    arrays = {}
    for name, (shape, dtype, bits, group_size, _) in QUANTIZED.items():
        w = to_mx(random_weights(rng, shape, dtype))
        packed, scales, biases = mx.quantize(w, group_size=group_size, bits=bits)
        arrays.update({f"{name}.weight": packed, f"{name}.scales": scales, f"{name}.biases": biases})
    for name, (shape, dtype) in PLAIN.items():
        values = np.arange(np.prod(shape)).reshape(shape) if dtype.kind == "i" else rng.standard_normal(shape)
        arrays[name] = to_mx(values.astype(dtype))
    names = sorted(arrays)
    if shards == 1:
        mx.save_safetensors(str(directory / "model.safetensors"), arrays, metadata={"format": "mlx"})
    else:  # as mlx_lm.utils.save_model names and indexes them
        weight_map = {}
        for i in range(shards):
            shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: arrays[n] for n in names[i::shards]}
            mx.save_safetensors(str(directory / shard), part, metadata={"format": "mlx"})
            weight_map.update(dict.fromkeys(part, shard))
        index = {"metadata": {"total_size": sum(a.nbytes for a in arrays.values())},
                 "weight_map": dict(sorted(weight_map.items()))}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "config.json").write_text(json.dumps(config_for()))
    return arrays


def base_object(array):
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def address(array):
    return array.__array_interface__["data"][0]


@pytest.mark.parametrize("shards", [1, 3])
def test_mlx_directory_matches_mlx(tmp_path, rng, shards):
    written = write_model(tmp_path, rng, shards)
    model = qmetal.load_mlx(tmp_path)
    assert model.config == config_for()
    assert len(model.files) == shards and all(m == {"format": "mlx"} for m in model.metadata.values())
    assert set(model.weights) == set(QUANTIZED) | set(PLAIN)
    for name, (shape, dtype) in PLAIN.items():
        array = model.weights[name]
        assert isinstance(array, np.ndarray) and array.dtype == dtype and array.shape == shape
        np.testing.assert_array_equal(array, from_mx(written[name]))
        # A read-only view into the file's mapping, no copy.
        assert not array.flags.writeable and isinstance(base_object(array), mmap.mmap)
    for name, (shape, dtype, bits, group_size, _) in QUANTIZED.items():
        w = model.weights[name]
        assert isinstance(w, qmetal.QuantizedWeight), name
        assert (w.shape, w.dtype, w.bits, w.group_size) == (shape, dtype, bits, group_size)
        packed, scales, biases = (written[f"{name}.{part}"] for part in ("weight", "scales", "biases"))
        views = [w.packed, w.scales, w.biases]
        for mine, theirs in zip(views, (packed, scales, biases)):
            np.testing.assert_array_equal(mine.view(np.uint8), from_mx(theirs).view(np.uint8))
        # Shared with the file where its offsets are aligned for the device,
        # else copied (mlx writes tensors back to back after an unpadded
        # header) and listed in model.copied.
        alignment = qmetal.default_device().capabilities["wrap_alignment"]
        sources = [model_view(model, name, part) for part in ("weight", "scales", "biases")]
        aligned = all(address(s) % alignment == 0 for s in sources)
        assert (name in model.copied) == (not aligned) == w.copied
        if aligned:
            assert [address(v) % mmap.PAGESIZE for v in views] == [address(s) % mmap.PAGESIZE for s in sources]
        np.testing.assert_array_equal(qmetal.dequantize(w).view(np.uint8),
                                      from_mx(mx.dequantize(packed, scales, biases, group_size=group_size,
                                                            bits=bits)).view(np.uint8))
        k = shape[-1]
        allowed = mlx_matmul_tolerance(dtype, k)
        if len(shape) == 2:
            x = rng.standard_normal((3, k)).astype(dtype)
            theirs = mx.quantized_matmul(to_mx(x), packed, scales, biases, transpose=True, group_size=group_size,
                                         bits=bits)
            assert relative_error(qmetal.matmul(x, w), from_mx(theirs)) < allowed, name
        else:  # MoE experts: top-2 of 3 for 4 tokens
            x = rng.standard_normal((4, 1, 1, k)).astype(dtype)
            experts = np.array([[0, 2], [1, 0], [2, 1], [2, 0]], np.uint32)
            theirs = mx.gather_qmm(to_mx(x), packed, scales, biases, rhs_indices=mx.array(experts), transpose=True,
                                   group_size=group_size, bits=bits)
            mine = qmetal.gather_matmul(x, w, rhs_indices=experts)
            assert mine.shape == (4, 2, 1, shape[1])
            assert relative_error(mine, from_mx(theirs)) < allowed, name


def model_view(model, layer, part):
    """The tensor `<layer>.<part>` in a mapping of its file: its address
    modulo the page (all alignment depends on) is the same in every
    mapping of the file, the model's own included."""
    for path in model.files:
        tensors = qmetal.load_safetensors(path).tensors
        if f"{layer}.{part}" in tensors:
            return tensors[f"{layer}.{part}"]
    raise KeyError(layer)


def write_safetensors(path, tensors, *, align=1, metadata=None):
    """A safetensors file written here: `tensors` name -> (dtype name, array);
    with `align`, the header is padded and every tensor placed so that their
    data are aligned to it in the file."""
    header = {"__metadata__": metadata} if metadata is not None else {}
    blobs, offset = [], 0
    for name, (dtype, array) in tensors.items():
        pad = -offset % align
        blobs.append(b"\0" * pad)
        offset += pad
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % align)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_aligned_files_are_shared_without_copies(tmp_path, rng):
    """A file whose tensors are aligned for the device (as the safetensors
    library and converters that pad write them) gives QuantizedWeights
    that alias the mapping: no byte is copied."""
    w = mx.array(random_weights(rng, (32, 512), np.float16))
    packed, scales, biases = mx.quantize(w, group_size=64, bits=4)
    write_safetensors(tmp_path / "model.safetensors", {
        "a.norm": ("F16", np.ones(3, np.float16)),
        "a.proj.weight": ("U32", from_mx(packed)),
        "a.proj.scales": ("F16", from_mx(scales)),
        "a.proj.biases": ("F16", from_mx(biases)),
    }, align=64)
    (tmp_path / "config.json").write_text(json.dumps({"quantization": {"group_size": 64, "bits": 4}}))
    model = qmetal.load_mlx(tmp_path)
    weight = model.weights["a.proj"]
    assert model.copied == [] and not weight.copied
    mapped = qmetal.load_safetensors(tmp_path / "model.safetensors")
    start = address(mapped.tensors["a.norm"]) - mapped.offsets["a.norm"][0]
    for part, view in (("weight", weight.packed), ("scales", weight.scales), ("biases", weight.biases)):
        # The view's offset from its mapping's start is the tensor's offset in the file.
        assert address(view) % mmap.PAGESIZE == (start + mapped.offsets[f"a.proj.{part}"][0]) % mmap.PAGESIZE
    x = rng.standard_normal((1, 512)).astype(np.float16)
    theirs = from_mx(mx.quantized_matmul(to_mx(x), packed, scales, biases, transpose=True, group_size=64, bits=4))
    assert relative_error(qmetal.matmul(x, weight), theirs) < mlx_matmul_tolerance(np.float16, 512)


def test_safetensors_file_every_dtype(tmp_path, rng):
    """Every dtype mlx writes, checked against mx.load; the rest (F64, C64,
    F8) from the writer here; scalars and empty tensors."""
    arrays = {
        "bool": mx.array([True, False, True]),
        "u8": mx.array(np.arange(5, dtype=np.uint8)), "i8": mx.array(np.arange(-3, 3, dtype=np.int8)),
        "u16": mx.array(np.arange(4, dtype=np.uint16)), "i16": mx.array(np.arange(-2, 2, dtype=np.int16)),
        "u32": mx.array(np.arange(6, dtype=np.uint32).reshape(2, 3)),
        "i32": mx.array(np.arange(-3, 3, dtype=np.int32)),
        "u64": mx.array(np.array([2**40], np.uint64)), "i64": mx.array(np.array([-2**40], np.int64)),
        "f16": mx.array(rng.standard_normal((2, 2)).astype(np.float16)),
        "bf16": to_mx(rng.standard_normal(7).astype(BFLOAT16)),
        "f32": mx.array(rng.standard_normal((1, 2, 3)).astype(np.float32)),
        "scalar": mx.array(np.float32(2.5)), "empty": mx.zeros((0, 4)),
    }
    path = tmp_path / "all.safetensors"
    mx.save_safetensors(str(path), arrays)
    loaded = qmetal.load_safetensors(path)
    assert loaded.metadata == {}
    assert list(loaded.tensors) == sorted(arrays)
    for name, theirs in mx.load(str(path)).items():
        mine = loaded.tensors[name]
        assert mine.shape == tuple(theirs.shape) and not mine.flags.writeable, name
        np.testing.assert_array_equal(mine, from_mx(theirs))
    assert loaded.tensors["bf16"].dtype == BFLOAT16
    others = {"f64": ("F64", np.arange(3.0)), "c64": ("C64", np.array([1 + 2j], np.complex64)),
              "e4m3": ("F8_E4M3", np.array([0.5, -2], ml_dtypes.float8_e4m3fn)),
              "e5m2": ("F8_E5M2", np.array([1.5], ml_dtypes.float8_e5m2))}
    write_safetensors(tmp_path / "more.safetensors", others, metadata={"k": "v"})
    loaded = qmetal.load_safetensors(tmp_path / "more.safetensors")
    assert loaded.metadata == {"k": "v"}
    for name, (_, array) in others.items():
        assert loaded.tensors[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.tensors[name], array)


def _valid_header():
    return {"__metadata__": {"format": "mlx"},
            "a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b.weight": {"dtype": "F16", "shape": [4], "data_offsets": [16, 24]}}


def _file(header, data=bytes(24), length=None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _edit(tensor, **changes):
    header = _valid_header()
    header[tensor] = {**header[tensor], **changes}
    return _file(header)


BAD_FILES = [
    ("empty", b"", r"truncated: 0 bytes"),
    ("short", b"\x05\0\0", r"truncated: 3 bytes"),
    ("length past the end", _file(_valid_header(), length=10_000), r"header length 10000 runs past the end"),
    ("huge length", _file(_valid_header(), length=2**64 - 1), r"header length 18446744073709551615 runs past"),
    ("cut in the data", _file(_valid_header())[:-3], r"tensor 'b.weight': data_offsets \[16, 24\] run past the end"),
    ("not JSON", _file(b"{not json"), r"header: not valid JSON"),
    ("not UTF-8", _file(b'{"\xff": 1}'), r"header: not valid JSON"),
    ("nested deep", _file(b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"), r"header: not valid JSON"),
    ("long number", _file(b'{"a": ' + b"9" * 5000 + b"}"), r"header: not valid JSON"),
    ("not an object", _file(b"[1, 2]"), r"header: expected a JSON object, got list"),
    ("duplicate", _file(b'{"a": {}, "a": {}}'), r"duplicate key 'a'"),
    ("metadata", _file({"__metadata__": {"k": 1}}), r"__metadata__ must map strings to strings"),
    ("entry", _file({"a.weight": [1]}), r"tensor 'a.weight': expected an object"),
    ("no dtype", _file({"a.weight": {"shape": [1], "data_offsets": [0, 4]}}), r"tensor 'a.weight': no 'dtype'"),
    ("unknown dtype", _edit("a.weight", dtype="F128"), r"tensor 'a.weight': unknown dtype 'F128'"),
    ("dtype type", _edit("a.weight", dtype=7), r"tensor 'a.weight': unknown dtype 7"),
    ("negative dim", _edit("a.weight", shape=[-2, -2]), r"tensor 'a.weight': shape must be a list"),
    ("float dim", _edit("a.weight", shape=[2.0, 2]), r"tensor 'a.weight': shape must be a list"),
    ("bool dim", _edit("a.weight", shape=[True, 4]), r"tensor 'a.weight': shape must be a list"),
    ("string dim", _edit("a.weight", shape=["2", 2]), r"tensor 'a.weight': shape must be a list"),
    ("many dims", _edit("a.weight", shape=[1] * 65), r"tensor 'a.weight': shape must be a list"),
    ("huge shape", _edit("a.weight", shape=[0, 2**40, 2**40]), r"tensor 'a.weight': shape .* too many elements"),
    ("byte count", _edit("a.weight", shape=[2, 3]), r"tensor 'a.weight': shape \[2, 3\] of F32 needs 24 bytes"),
    ("zero extent", _edit("a.weight", shape=[0, 2]), r"tensor 'a.weight': .* needs 0 bytes, .* hold 16"),
    ("offsets reversed", _edit("a.weight", data_offsets=[16, 0]), r"tensor 'a.weight': data_offsets \[16, 0\] are "
                                                                   r"out of order"),
    ("negative offset", _edit("a.weight", data_offsets=[-8, 8]), r"tensor 'a.weight': data_offsets \[-8, 8\] are out"),
    ("offset past end", _edit("b.weight", data_offsets=[24, 32]), r"tensor 'b.weight': data_offsets \[24, 32\] run"),
    ("huge offset", _edit("b.weight", data_offsets=[2**64, 2**64 + 8]), r"tensor 'b.weight': data_offsets .* run"),
    ("offsets shape", _edit("a.weight", data_offsets=[0, 8, 16]), r"tensor 'a.weight': data_offsets must be"),
    ("float offsets", _edit("a.weight", data_offsets=[0.0, 16]), r"tensor 'a.weight': data_offsets must be"),
    ("overlap", _edit("b.weight", data_offsets=[8, 16]), r"tensors 'a.weight' and 'b.weight' overlap \(data_offsets \[0, 16\] and \[8, 16\]\)"),
]


@pytest.mark.parametrize("data, message", [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_malformed_safetensors_files_are_refused(tmp_path, data, message):
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as error:
        qmetal.load_safetensors(path)
    assert str(error.value).startswith(str(path))
    # The same file in a model directory: the same error.
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=message):
        qmetal.load_mlx(tmp_path)


def test_valid_header_of_the_malformed_cases_loads(tmp_path):
    path = tmp_path / "ok.safetensors"
    path.write_bytes(_file(_valid_header()))
    loaded = qmetal.load_safetensors(path)
    assert loaded.tensors["a.weight"].shape == (2, 2) and loaded.tensors["b.weight"].dtype == np.float16


def _small_model(directory, quantization={"group_size": 64, "bits": 4}, drop=(), extra=None):  # noqa: B006
    rng = np.random.default_rng(0)
    packed, scales, biases = mx.quantize(mx.array(rng.standard_normal((8, 128)).astype(np.float16)), 64, 4)
    tensors = {"l.weight": packed, "l.scales": scales, "l.biases": biases, "n.weight": mx.ones((128,))}
    for name in drop:
        del tensors[name]
    mx.save_safetensors(str(directory / "model.safetensors"), {**tensors, **(extra or {})})
    config = {} if quantization is None else {"quantization": quantization}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _sharded(directory, weight_map, files):
    for name, tensors in files.items():
        mx.save_safetensors(str(directory / name), {t: mx.ones((2,)) for t in tensors})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (directory / "config.json").write_text("{}")


BAD_DIRECTORIES = {
    "no config": (lambda d: (d / "model.safetensors").write_bytes(_file(_valid_header())),
                  r"config.json: cannot be read"),
    "config not JSON": (lambda d: (d / "config.json").write_text("{"), r"config.json: not valid JSON"),
    "config a list": (lambda d: (d / "config.json").write_text("[]"), r"config.json: expected a JSON object"),
    "no weights": (lambda d: (d / "config.json").write_text("{}"), r"no model.safetensors, "),
    "mode mxfp4": (lambda d: _small_model(d, {"group_size": 32, "bits": 4, "mode": "mxfp4"}),
                   r"quantization: mode 'mxfp4' is one of MLX's modes, which qmetal has no kernels for yet; qmetal "
                   r"loads affine"),
    "layer mode nvfp4": (lambda d: _small_model(d, {"group_size": 64, "bits": 4,
                                                    "l": {"group_size": 16, "bits": 4, "mode": "nvfp4"}}),
                         r"quantization\['l'\]: mode 'nvfp4'"),
    "bits a string": (lambda d: _small_model(d, {"group_size": 64, "bits": "4"}), r"'bits' must be an integer"),
    "no quantization": (lambda d: _small_model(d, None),
                        r"model.safetensors: tensor 'l.scales': the layer is quantized but config.json has no"),
    "marked false": (lambda d: _small_model(d, {"group_size": 64, "bits": 4, "l": False}),
                     r"tensor 'l.scales': the layer is quantized but config.json marks 'l' unquantized"),
    "no biases": (lambda d: _small_model(d, drop=["l.biases"]),
                  r"tensor 'l.scales': a quantized layer needs 'l.biases' too"),
    "wrong bits": (lambda d: _small_model(d, {"group_size": 64, "bits": 8}),
                   r"model.safetensors: quantized layer 'l' \(8 bits, group size 64\): scales: expected shape"),
    "bits unsupported": (lambda d: _small_model(d, {"group_size": 64, "bits": 7}),
                         r"quantized layer 'l' \(7 bits, group size 64\): bits: expected one of"),
    "packed not uint32": (lambda d: _small_model(d, drop=["l.weight"], extra={"l.weight": mx.zeros((8, 16))}),
                          r"quantized layer 'l' .*packed: expected uint32"),
    "name clash": (lambda d: _small_model(d, extra={"l": mx.ones((2,))}),
                   r"tensor 'l' has the name of the quantized layer 'l'"),
    "missing shard": (lambda d: _sharded(d, {"a": "model-1.safetensors", "b": "model-2.safetensors"},
                                         {"model-1.safetensors": ["a"]}),
                      r"index.json: shard 'model-2.safetensors' \(holding tensor 'b'\) is missing"),
    "tensor not in shard": (lambda d: _sharded(d, {"a": "model-1.safetensors", "b": "model-1.safetensors"},
                                               {"model-1.safetensors": ["a"]}),
                            r"model-1.safetensors: tensor 'b' \(listed there by model.safetensors.index.json\) is "
                            r"not in it; no shard the index lists has it"),
    "tensor in another shard": (lambda d: _sharded(d, {"a": "model-1.safetensors", "b": "model-1.safetensors",
                                                       "c": "model-2.safetensors"},
                                                   {"model-1.safetensors": ["a"], "model-2.safetensors": ["b", "c"]}),
                                r"model-1.safetensors: tensor 'b' .* is not in it; it is in .*model-2.safetensors"),
    "tensor in two shards": (lambda d: _sharded(d, {"a": "model-1.safetensors", "b": "model-2.safetensors"},
                                                {"model-1.safetensors": ["a", "b"], "model-2.safetensors": ["b"]}),
                             r"model-2.safetensors: tensor 'b' is also in .*model-1.safetensors"),
    "shard outside": (lambda d: _sharded(d, {"a": "../model-1.safetensors"}, {}),
                      r"tensor 'a': shard '../model-1.safetensors' is not a file name in the directory"),
    "index without map": (lambda d: [(d / name).write_text(text) for name, text in
                                     (("model.safetensors.index.json", '{"metadata": {}}'), ("config.json", "{}"))],
                          r"index.json: expected \{\"weight_map\""),
}


@pytest.mark.parametrize("case", list(BAD_DIRECTORIES))
def test_malformed_model_directories_are_refused(tmp_path, case):
    make, message = BAD_DIRECTORIES[case]
    make(tmp_path)
    with pytest.raises(ValueError, match=message) as error:
        qmetal.load_mlx(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match=r"not a directory"):
        qmetal.load_mlx(tmp_path / "nowhere")


def test_shards_without_index_and_leniency(tmp_path):
    """Without an index, model*.safetensors are read (as mlx-lm globs them);
    config keys that name no layer and non-object values are ignored;
    `quantization_config` serves when `quantization` is absent."""
    mx.save_safetensors(str(tmp_path / "model-00001-of-00002.safetensors"), {"a": mx.ones((2,))})
    mx.save_safetensors(str(tmp_path / "model-00002-of-00002.safetensors"), {"b": mx.zeros((3,))})
    (tmp_path / "config.json").write_text("{}")
    model = qmetal.load_mlx(tmp_path)
    assert sorted(model.weights) == ["a", "b"] and len(model.files) == 2
    for path in tmp_path.iterdir():
        path.unlink()
    _small_model(tmp_path, None)
    config = {"quantization_config": {"group_size": 64, "bits": 4, "quant_method": None, "unrelated.layer": False}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json has no"):  # another tool's quantization_config
        qmetal.load_mlx(tmp_path)
    del config["quantization_config"]["quant_method"]
    config["quantization_config"]["note"] = "written by a tool"
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = qmetal.load_mlx(tmp_path)
    assert model.weights["l"].bits == 4 and model.weights["n.weight"].shape == (128,)
    assert "1 quantized layers, 1 other tensors" in repr(model)
