"""Reading safetensors files and MLX model directories without copying
their tensors.

safetensors (https://huggingface.co/docs/safetensors): an 8-byte
little-endian header length N, N bytes of UTF-8 JSON mapping each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into
the data that follows the header) plus an optional ``"__metadata__"`` of
strings, then the data. The header is parsed here rather than with the
``safetensors`` package so that every tensor is a NumPy view into one
read-only mapping of the file (each file is mapped once), which
``qmetal.asbuffer`` wraps without copying where the offset is aligned for
the device.

An MLX model directory (as ``mlx_lm.convert`` writes it) holds
``config.json`` and either ``model.safetensors`` or shards listed in
``model.safetensors.index.json``. A quantized linear layer ``<name>`` is
three tensors: ``<name>.weight`` (uint32, packed), ``<name>.scales`` and
``<name>.biases``; its bits and group size come from config.json's
``"quantization"``, where a layer path may map to its own
``{"group_size", "bits"}`` or to ``false`` (left unquantized).

Files come from the internet, so they are treated as untrusted: the
header length, the JSON (types of every field, duplicate keys, nesting),
dtypes, shapes, byte counts, offsets (inside the data, begin <= end, no
two tensors overlapping) and shard names are validated before any view is
made. A bad file gives a ValueError naming the file and the tensor or
field; never a crash."""

from __future__ import annotations

import json
import math
import mmap
import os
import struct

import ml_dtypes
import numpy as np

__all__ = ["MLXModel", "SafetensorsFile", "load_mlx", "load_safetensors"]

_HEADER_LENGTH_BYTES = 8
# The safetensors library refuses headers over 100 MB; so do we (a bigger
# one is a corrupt length, and would only cost memory and time to parse).
_MAX_HEADER_BYTES = 100_000_000
_MAX_DIMS = 64  # NumPy's limit
# safetensors dtype names -> NumPy dtypes (all little-endian).
_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
}
_METADATA_KEY = "__metadata__"

_CONFIG = "config.json"
_SINGLE = "model.safetensors"
_INDEX = "model.safetensors.index.json"
_QUANTIZED_PARTS = ("weight", "scales", "biases")
_MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")  # MLX's; only affine has kernels here


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _json(text, where):
    """JSON with duplicate keys refused; every parse failure (syntax,
    encoding, nesting too deep, numbers too long) is a ValueError naming
    `where`."""

    def pairs(items):
        result = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{where}: not valid JSON ({error})") from None


class SafetensorsFile:
    """One safetensors file, mapped read-only. ``tensors``: name -> NumPy
    view (read-only; bfloat16 as ``ml_dtypes.bfloat16``), in header order.
    ``metadata``: the header's ``__metadata__`` (strings). ``offsets``:
    name -> the tensor's byte range in the file."""

    def __init__(self, path):
        self.path = os.fspath(path)
        where = self.path
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < _HEADER_LENGTH_BYTES:
                    raise ValueError(f"{where}: not a safetensors file (truncated: {size} bytes, the header length "
                                     f"alone takes {_HEADER_LENGTH_BYTES})")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as error:
            raise ValueError(f"{where}: cannot be read ({error.strerror or error})") from None
        size = len(self._map)
        (header_length,) = struct.unpack_from("<Q", self._map, 0)
        if header_length > size - _HEADER_LENGTH_BYTES:
            raise ValueError(f"{where}: header length {header_length} runs past the end of the file ({size} bytes; "
                             f"truncated or not a safetensors file)")
        if header_length > _MAX_HEADER_BYTES:
            raise ValueError(f"{where}: header length {header_length} is over the limit of {_MAX_HEADER_BYTES} bytes")
        data_start = _HEADER_LENGTH_BYTES + header_length
        header = _json(self._map[_HEADER_LENGTH_BYTES:data_start], f"{where}: header")
        if not isinstance(header, dict):
            raise ValueError(f"{where}: header: expected a JSON object, got {type(header).__name__}")
        metadata = header.pop(_METADATA_KEY, None)
        if metadata is None:  # mlx writes "__metadata__": null when there is none
            metadata = {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError(f"{where}: header: {_METADATA_KEY} must map strings to strings")
        self.metadata = metadata
        data_size = size - data_start
        raw = np.frombuffer(self._map, dtype=np.uint8)
        self.tensors, self.offsets = {}, {}
        extents = []
        for name, info in header.items():
            dtype, shape, begin, end = _tensor_info(name, info, data_size, f"{where}: tensor {name!r}")
            start, stop = data_start + begin, data_start + end
            self.tensors[name] = raw[start:stop].view(dtype).reshape(shape)
            self.offsets[name] = (start, stop)
            if end > begin:
                extents.append((begin, end, name))
        extents.sort()
        for (first_begin, first_end, first), (begin, end, second) in zip(extents, extents[1:]):
            if begin < first_end:
                raise ValueError(f"{where}: the data of tensors {first!r} and {second!r} overlap (data_offsets "
                                 f"[{first_begin}, {first_end}] and [{begin}, {end}])")

    def __repr__(self):
        return f"<SafetensorsFile {self.path!r}: {len(self.tensors)} tensors>"


def _tensor_info(name, info, data_size, where):
    """A header entry, checked: (dtype, shape, begin, end) with the byte
    range inside the data and exactly as long as the shape needs."""
    if not isinstance(info, dict):
        raise ValueError(f"{where}: expected an object with dtype, shape and data_offsets, got {info!r:.80}")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in info:
            raise ValueError(f"{where}: no {key!r}")
    dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise ValueError(f"{where}: unknown dtype {dtype_name!r:.40} (expected one of {', '.join(_DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > _MAX_DIMS
            or not all(_is_int(d) and d >= 0 for d in shape)):
        raise ValueError(f"{where}: shape must be a list of at most {_MAX_DIMS} non-negative integers, "
                         f"got {shape!r:.80}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise ValueError(f"{where}: data_offsets must be [begin, end] (integers), got {offsets!r:.80}")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise ValueError(f"{where}: data_offsets [{begin}, {end}] are out of order")
    if end > data_size:
        raise ValueError(f"{where}: data_offsets [{begin}, {end}] run past the end of the data "
                         f"({data_size} bytes after the header; truncated?)")
    dtype = _DTYPES[dtype_name]
    # NumPy's own limit on a shape (zero extents aside).
    if math.prod(max(d, 1) for d in shape) >= 2**63:
        raise ValueError(f"{where}: shape {shape} has too many elements")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != end - begin:
        raise ValueError(f"{where}: shape {shape} of {dtype_name} needs {nbytes} bytes, data_offsets [{begin}, {end}] "
                         f"hold {end - begin}")
    return dtype, tuple(shape), begin, end


def load_safetensors(path) -> SafetensorsFile:
    """Map one safetensors file and expose its tensors as NumPy views
    without copying them."""
    return SafetensorsFile(path)


class MLXModel:
    """An MLX model directory. ``config``: config.json, parsed. ``weights``:
    every quantized linear layer as a ``QuantizedWeight`` under its layer
    name (``model.layers.0.self_attn.q_proj``), with its own bits and group
    size, and every other tensor as a NumPy view under its full name
    (``model.norm.weight``). ``metadata``: the safetensors metadata of each
    file. ``files``: the safetensors files read. ``copied``: names of
    quantized weights whose arrays had to be copied to reach the device's
    ``capabilities["wrap_alignment"]``; the rest share the file's mapping.
    Alignment is the file's: ``mlx.core.save_safetensors`` writes tensors
    back to back after an unpadded header, so in its files most offsets are
    not aligned and those weights are copied once, at load (the arrays
    other than quantized weights stay views either way)."""

    def __init__(self, path, device=None):
        from ._affine import QuantizedWeight

        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise ValueError(f"{self.path}: not a directory (an MLX model is a directory with config.json and "
                             f"model*.safetensors)")
        self.config = _read_config(self.path)
        quantization = _quantization(self.config, os.path.join(self.path, _CONFIG))
        files, expected = _model_files(self.path)
        tensors, origin = {}, {}
        self.metadata = {}
        for file in files:
            loaded = SafetensorsFile(file)
            self.metadata[os.path.basename(file)] = loaded.metadata
            for name, array in loaded.tensors.items():
                if name in tensors:
                    raise ValueError(f"{file}: tensor {name!r} is also in {origin[name]}")
                tensors[name], origin[name] = array, file
        for name, file in expected.items():
            if origin.get(name) != file:
                found = f"it is in {origin[name]}" if name in tensors else "no shard the index lists has it"
                raise ValueError(f"{file}: tensor {name!r} (listed there by {_INDEX}) is not in it; {found}")
        self.weights, self.copied = {}, []
        consumed = set()
        for name in tensors:
            if not name.endswith(".scales"):
                continue
            layer = name[: -len(".scales")]
            where = f"{origin[name]}: tensor {name!r}"
            parts = {part: f"{layer}.{part}" for part in _QUANTIZED_PARTS}
            for part, full in parts.items():
                if full not in tensors:
                    raise ValueError(f"{where}: a quantized layer needs {full!r} too, and the model has none")
            bits, group_size = _layer_format(quantization, layer, where)
            arrays = [tensors[parts[part]] for part in _QUANTIZED_PARTS]
            try:
                weight = QuantizedWeight.from_arrays(*arrays, bits=bits, group_size=group_size, device=device)
            except (ValueError, TypeError) as error:
                raise ValueError(f"{origin[parts['weight']]}: quantized layer {layer!r} ({bits} bits, group size "
                                 f"{group_size}): {error}") from None
            self.weights[layer] = weight
            if weight.copied:
                self.copied.append(layer)
            consumed.update(parts.values())
        for name, array in tensors.items():
            if name in consumed:
                continue
            if name in self.weights:
                raise ValueError(f"{origin[name]}: tensor {name!r} has the name of the quantized layer {name!r}")
            self.weights[name] = array
        self.files = files

    def __repr__(self):
        quantized = sum(1 for w in self.weights.values() if not isinstance(w, np.ndarray))
        return (f"<MLXModel {self.path!r}: {quantized} quantized layers, "
                f"{len(self.weights) - quantized} other tensors, {len(self.files)} files>")


def _read_config(directory):
    path = os.path.join(directory, _CONFIG)
    try:
        with open(path, "rb") as f:
            text = f.read(_MAX_HEADER_BYTES + 1)
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error}); an MLX model directory has a "
                         f"{_CONFIG}") from None
    if len(text) > _MAX_HEADER_BYTES:
        raise ValueError(f"{path}: over {_MAX_HEADER_BYTES} bytes")
    config = _json(text, path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _format(entry, where):
    """(bits, group_size) of a quantization entry, refusing modes other
    than affine."""
    mode = entry.get("mode", "affine")
    if mode != "affine":
        known = "one of MLX's modes, which qmetal has no kernels for yet" if mode in _MODES else "an unknown mode"
        raise ValueError(f"{where}: mode {mode!r} is {known}; qmetal loads affine quantization (mode 'affine') only")
    values = []
    for key in ("bits", "group_size"):
        value = entry.get(key)
        if not _is_int(value):
            raise ValueError(f"{where}: {key!r} must be an integer, got {value!r:.40}")
        values.append(value)
    return tuple(values)


def _quantization(config, where):
    """config.json's "quantization": {"default": (bits, group_size) or None,
    "layers": {layer path: (bits, group_size) or False}}. None when the
    model is not quantized."""
    entry = config.get("quantization")
    if entry is None:
        # mlx-lm writes the same under "quantization_config" too (for
        # Hugging Face); other tools' quantization_config have a quant_method.
        fallback = config.get("quantization_config")
        if isinstance(fallback, dict) and "quant_method" not in fallback and "bits" in fallback:
            entry, where = fallback, f"{where}: quantization_config"
        else:
            return None
    else:
        where = f"{where}: quantization"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with bits and group_size, got {entry!r:.40}")
    default = _format(entry, where)
    layers = {}
    for key, value in entry.items():
        if key in ("bits", "group_size", "mode"):
            continue
        if value is False:
            layers[key] = False
        elif isinstance(value, dict):
            layers[key] = _format(value, f"{where}[{key!r}]")
        # Other values (strings some tools add) name no layer: ignored, as mlx-lm does.
    return {"default": default, "layers": layers}


def _layer_format(quantization, layer, where):
    if quantization is None:
        raise ValueError(f"{where}: the layer is quantized but {_CONFIG} has no \"quantization\" (bits, group_size)")
    override = quantization["layers"].get(layer)
    if override is False:
        raise ValueError(f"{where}: the layer is quantized but {_CONFIG} marks {layer!r} unquantized (false)")
    return override or quantization["default"]


def _model_files(directory):
    """The safetensors files of a model, and {tensor: file} the index
    promises (empty without an index)."""
    index = os.path.join(directory, _INDEX)
    if os.path.exists(index):
        try:
            with open(index, "rb") as f:
                text = f.read(_MAX_HEADER_BYTES + 1)
        except OSError as error:
            raise ValueError(f"{index}: cannot be read ({error.strerror or error})") from None
        if len(text) > _MAX_HEADER_BYTES:
            raise ValueError(f"{index}: over {_MAX_HEADER_BYTES} bytes")
        parsed = _json(text, index)
        weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{index}: expected {{\"weight_map\": {{tensor name: shard file name}}}}")
        files, expected = [], {}
        for name, shard in weight_map.items():
            if (not shard or shard in (".", "..") or os.path.basename(shard) != shard
                    or "/" in shard or "\\" in shard):
                raise ValueError(f"{index}: tensor {name!r}: shard {shard!r:.80} is not a file name in the directory")
            file = os.path.join(directory, shard)
            if file not in files:
                if not os.path.isfile(file):
                    raise ValueError(f"{index}: shard {shard!r} (holding tensor {name!r}) is missing from {directory}")
                files.append(file)
            expected[name] = file
        if not files:
            raise ValueError(f"{index}: the weight_map lists no tensors")
        return files, expected
    single = os.path.join(directory, _SINGLE)
    if os.path.isfile(single):
        return [single], {}
    # As mlx-lm: any model*.safetensors.
    files = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                   if n.startswith("model") and n.endswith(".safetensors"))
    if not files:
        raise ValueError(f"{directory}: no {_SINGLE}, {_INDEX} or model*.safetensors")
    return files, {}


def load_mlx(path, *, device=None) -> MLXModel:
    """Load an MLX model directory (config.json and model*.safetensors, as
    ``mlx_lm.convert`` writes it) without copying its tensors: quantized
    linear layers become ``QuantizedWeight``s with the bits and group size
    config.json gives them (per layer where it overrides), other tensors
    NumPy views. Modes other than affine (mxfp4, nvfp4, mxfp8) are refused
    with a ValueError, as is any malformed or inconsistent file."""
    return MLXModel(path, device)
