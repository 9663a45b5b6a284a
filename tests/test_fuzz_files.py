"""Corruption fuzzer for model files (issue 17, part 5): GGUF through
``qmetal.load_gguf``, and safetensors through ``qmetal.load_safetensors``
(skipped where qmetal has no safetensors loader).

Model files are untrusted input. From a valid file (written by llama.cpp's
own ``gguf.GGUFWriter``: Q4_0, Q8_0, Q4_K, F32 and I32 tensors, a stacked
one, metadata with strings, arrays of strings and floats, nested arrays,
and ``general.alignment`` = 64 -- or, in a second file, no alignment key),
the fuzzer derives corrupt ones:

* ``truncate:B`` -- the file cut at every structural boundary B (each
  field's start and end, and one byte either side), found by parsing the
  file with the independent parser below;
* ``set:FIELD=VALUE`` -- every integer field (counts, string lengths,
  value and element types, n_dims, dims, GGML type ids, offsets,
  general.alignment, version) overwritten with huge, zero, "negative"
  (two's complement), odd, off-by-one and file-size values, and offsets
  with the other tensors' (overlaps);
* ``flip:SEED:I`` -- 1 to 4 random bytes of the header region (everything
  before the tensor data) XORed with random values.

The only allowed outcomes are a load after which every tensor reads in
full (``qmetal.dequantize`` for GGMLWeights), or a ``ValueError`` whose
message names the file. Anything else -- another exception, a crash, a
hang -- fails. The cases run in one subprocess per mutator, so a segfault
fails the test with the case that caused it (the subprocess writes each
case's id before running it) instead of killing pytest; a watchdog ends a
case that hangs. A sample of the cases also runs with AddressSanitizer
preloaded.

The engine (``Format``, ``Field``, the three mutators) works on any binary
file format and loader pair: a format supplies a valid file, its parsed
fields, and how to load and read it; safetensors is the second (its
``set`` mutator also rewrites the JSON header's numbers and dtypes).

CI runs every truncation and overwrite (about 3,800 cases per GGUF file,
550 for safetensors) and 3,000 flips per file, seeded by QMETAL_TEST_SEED
(printed in pytest's header), in about 15 s::

    python -m pytest tests/test_fuzz_files.py -q

Long run: ``QMETAL_FUZZ_EXAMPLES=N`` makes it 20 N flips per file (2000:
40,000, about a minute); or run the fuzzer alone, as long as wanted::

    QMETAL_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_ops.py tests/test_fuzz_files.py -q
    python tests/test_fuzz_files.py --format gguf --mutators flip --flips 100000 --seed 7

Repeat one case (the failing test prints this command)::

    python tests/test_fuzz_files.py --format gguf --seed S --only 'set:tensor[2](...).dims[0]=0xffffffffffffffff'
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import re
import secrets
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CASE_TIMEOUT_S = 20  # a case that takes longer hangs (a load takes about a millisecond)
DEFAULT_FLIPS = 3000


@dataclass(frozen=True)
class Field:
    """One field of a file: bytes [start, start + width). `fmt` is its
    struct format when it is an integer the overwrite mutator may set."""

    start: int
    width: int
    kind: str
    label: str
    value: int | None = None
    fmt: str | None = None

    @property
    def end(self):
        return self.start + self.width


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes


# --- the mutators (any format) ---------------------------------------------------------------------

def truncations(data: bytes, fields):
    """The file cut at every field boundary and one byte either side."""
    cuts = {0, 1}
    for f in fields:
        for b in (f.start, f.end):
            cuts.update((b - 1, b, b + 1))
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        yield Case(f"truncate:{cut}", data[:cut])


def interesting_values(field, file_size, extra=()):
    """Values to write into an integer field: huge, zero, -1 and other
    two's complement negatives, odd, off by one, sizes of the file."""
    bits = struct.calcsize(field.fmt) * 8
    mask = (1 << bits) - 1
    v = field.value
    values = {0, 1, 2, 3, 5, 7, 8, 9, 12, 31, 33, 63, 64, 65, 255, 256, 4097, 2**15, 2**16 - 1, 2**31 - 1, 2**31,
              2**32 - 1, 2**32, 2**32 + 1, 2**48, 2**61, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64 - 2,
              file_size - 1, file_size, file_size + 1, v - 1, v + 1, 2 * v, v + 2**32, v | (1 << (bits - 1)), *extra}
    return sorted({x & mask for x in values} - {v})


def overwrites(data: bytes, fields, extra_values=lambda field: ()):
    """Every integer field set to each of its interesting values."""
    for f in fields:
        if f.fmt is None:
            continue
        unsigned = f.fmt.replace("q", "Q").replace("i", "I").replace("h", "H").replace("b", "B")
        for value in interesting_values(f, len(data), extra_values(f)):
            mutated = bytearray(data)
            struct.pack_into(unsigned, mutated, f.start, value)
            yield Case(f"set:{f.label}={value:#x}", bytes(mutated))


def flip_case(data: bytes, header_end: int, seed: int, index: int) -> Case:
    rng = np.random.default_rng([seed, index])
    mutated = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        at = int(rng.integers(0, header_end))
        mutated[at] ^= int(rng.integers(1, 256))
    return Case(f"flip:{seed}:{index}", bytes(mutated))


def flips(data: bytes, header_end: int, seed: int, count: int):
    for index in range(count):
        yield flip_case(data, header_end, seed, index)


# --- formats ----------------------------------------------------------------------------------------

class Format:
    """A file format to fuzz: a valid file, its fields, and how to load one
    and read all of it. `load` raises ValueError naming the path for a bad
    file; anything it returns is read in full by `touch`."""

    name = ""
    suffix = ""

    def build(self) -> bytes:
        raise NotImplementedError

    def fields(self, data: bytes) -> tuple[list[Field], int]:
        """The fields, and where the header ends (the flip region)."""
        raise NotImplementedError

    def loader(self):
        raise NotImplementedError

    def extra_values(self, fields):
        return lambda field: ()

    def cases(self, mutators, seed, flip_count):
        data = self.build()
        fields, header_end = self.fields(data)
        if "truncate" in mutators:
            yield from truncations(data, fields)
        if "set" in mutators:
            yield from overwrites(data, fields, self.extra_values(fields))
        if "flip" in mutators:
            yield from flips(data, header_end, seed, flip_count)


def touch(loaded):
    """Reads everything a loaded file exposes: every weight dequantized (and
    of its shape), every array summed, the metadata formatted."""
    import qmetal

    tensors = getattr(loaded, "tensors", loaded)
    items = tensors.items() if isinstance(tensors, dict) else enumerate(tensors)
    for name, tensor in items:
        if isinstance(tensor, (qmetal.GGMLWeight, qmetal.QuantizedWeight)):
            dense = qmetal.dequantize(tensor)
            if dense.shape != tensor.shape:
                raise AssertionError(f"tensor {name!r}: dequantized to {dense.shape}, its shape is {tensor.shape}")
        else:
            np.asarray(tensor).tobytes()  # every byte of the view read
    repr(getattr(loaded, "metadata", None))


class GGUF(Format):
    """GGUF v3 through qmetal.load_gguf; `alignment` None leaves
    general.alignment out (the default, 32, applies)."""

    suffix = ".gguf"

    def __init__(self, name, alignment):
        self.name, self.alignment = name, alignment

    def build(self) -> bytes:
        """A valid GGUF file from llama.cpp's writer (deterministic)."""
        import gguf

        from qmetal import reference as ref

        rng = np.random.default_rng(20240517)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "base.gguf")
            writer = gguf.GGUFWriter(path, "llama")
            if self.alignment is not None:
                writer.add_custom_alignment(self.alignment)
            writer.add_name("fuzz")
            writer.add_array("tokenizer.ggml.tokens", ["a", "bc", "", "d\u00e9f"])
            writer.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
            writer.add_array("fuzz.nested", [[1, 2, 3], [4], [5, 6]])
            writer.add_array("fuzz.nested_strings", [["x", "yz"], ["w"]])
            writer.add_bool("fuzz.flag", True)
            writer.add_uint64("fuzz.u64", 2**40)
            writer.add_int8("fuzz.i8", -3)
            writer.add_float64("fuzz.f64", 1.25)
            for name, type_name, shape in (("blk.0.attn_q.weight", "Q4_0", (8, 64)),
                                           ("blk.0.ffn_down.weight", "Q8_0", (16, 32)),
                                           ("blk.0.ffn_gate_exps.weight", "Q4_K", (2, 4, 256))):
                blocks = ref.ggml_quantize((rng.standard_normal(shape) * 0.1).astype(np.float32), type_name)
                writer.add_tensor(name, blocks, raw_dtype=gguf.GGMLQuantizationType[type_name])
            writer.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(64).astype(np.float32))
            writer.add_tensor("output.weight", rng.standard_normal((4, 32)).astype(np.float32))
            writer.add_tensor("token_types", np.arange(6, dtype=np.int32))  # a type qmetal has no kernels for
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            return Path(path).read_bytes()

    # GGUF metadata value types: struct format of the scalars.
    SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def fields(self, data: bytes):
        """An independent GGUF parser (of valid files) that records every field."""
        import gguf

        fields = []
        pos = 0

        def take(kind, width, label, fmt=None):
            nonlocal pos
            value = struct.unpack_from(fmt, data, pos)[0] if fmt else None
            integral = fmt is not None and fmt[-1] not in "fd?"
            fields.append(Field(pos, width, kind, label, value if integral else None, fmt if integral else None))
            pos += width
            return value

        def string(label):
            length = take("string_len", 8, f"{label}.len", "<Q")
            take("string", length, label)
            return data[pos - length:pos].decode("utf-8")

        def value(kind, label):
            if kind == 8:
                return string(label)
            if kind == 9:
                element = take("array_type", 4, f"{label}.type", "<I")
                count = take("count", 8, f"{label}.count", "<Q")
                return [value(element, f"{label}[{i}]") for i in range(count)]
            fmt = self.SCALARS[kind]
            return take("scalar", struct.calcsize(fmt), label, fmt)

        take("magic", 4, "magic")
        take("version", 4, "version", "<I")
        tensor_count = take("count", 8, "tensor_count", "<Q")
        kv_count = take("count", 8, "kv_count", "<Q")
        alignment = 32
        for i in range(kv_count):
            key = string(f"kv[{i}].key")
            kind = take("value_type", 4, f"kv[{i}]({key}).type", "<I")
            result = value(kind, f"kv[{i}]({key})")
            if key == "general.alignment":
                alignment = result
        infos = []
        for i in range(tensor_count):
            name = string(f"tensor[{i}].name")
            label = f"tensor[{i}]({name})"
            n_dims = take("n_dims", 4, f"{label}.n_dims", "<I")
            dims = [take("dim", 8, f"{label}.dims[{j}]", "<Q") for j in range(n_dims)]
            type_id = take("ggml_type", 4, f"{label}.type", "<I")
            offset = take("offset", 8, f"{label}.offset", "<Q")
            infos.append((label, dims, type_id, offset))
        data_start = -(-pos // alignment) * alignment
        fields.append(Field(pos, data_start - pos, "padding", "padding"))
        for label, dims, type_id, offset in infos:
            block_values, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(type_id)]
            nbytes = int(np.prod(dims)) // block_values * block_bytes
            fields.append(Field(data_start + offset, nbytes, "data", f"{label}.data"))
        return fields, data_start

    def extra_values(self, fields):
        offsets = [f.value for f in fields if f.kind == "offset"]

        def extra(field):
            if field.kind == "offset":  # another tensor's data (an overlap), one alignment either side
                step = self.alignment or 32
                return [*offsets, field.value + step, field.value - step, field.value + 8]
            if field.kind == "ggml_type":  # every GGML type id, known or not
                return list(range(0, 42))
            if field.kind in ("value_type", "array_type"):
                return list(range(0, 14))
            return ()
        return extra

    def loader(self):
        import qmetal

        return qmetal.load_gguf


class Safetensors(Format):
    """safetensors: u64 header length, a JSON header, the data. Loaded by
    qmetal's safetensors loader, whichever of these names it has."""

    name, suffix = "safetensors", ".safetensors"
    LOADERS = ("load_safetensors", "load_mlx")

    def build(self) -> bytes:
        from qmetal import reference as ref

        rng = np.random.default_rng(20240518)
        packed, scales, biases = ref.affine_quantize(rng.standard_normal((8, 64)).astype(np.float16), 4, 64)
        tensors = {
            "model.layers.0.mlp.up_proj.weight": ("U32", packed),
            "model.layers.0.mlp.up_proj.scales": ("F16", scales),
            "model.layers.0.mlp.up_proj.biases": ("F16", biases),
            "model.norm.weight": ("F32", rng.standard_normal(64).astype(np.float32)),
            "lm_head.weight": ("F16", rng.standard_normal((4, 64)).astype(np.float16)),
        }
        header = {"__metadata__": {"format": "mlx"}}
        blobs, offset = [], 0
        for name, (dtype, array) in tensors.items():
            raw = np.ascontiguousarray(array).tobytes()
            header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
            blobs.append(raw)
            offset += len(raw)
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + b"".join(blobs)

    def fields(self, data: bytes):
        length = struct.unpack_from("<Q", data)[0]
        end = 8 + length
        fields = [Field(0, 8, "header_len", "header_len", length, "<Q"), Field(8, length, "json", "header")]
        text = data[8:end].decode()
        for match in re.finditer(r"-?\d+", text):
            fields.append(Field(8 + match.start(), len(match.group()), "text_int", f"header@{match.start()}"))
        header = json.loads(text)
        for name, info in header.items():
            if name != "__metadata__":
                begin, stop = info["data_offsets"]
                fields.append(Field(end + begin, stop - begin, "data", f"{name}.data"))
        return fields, end

    def cases(self, mutators, seed, flip_count):
        yield from super().cases(mutators, seed, flip_count)
        if "set" in mutators:
            yield from self.text_overwrites(self.build())

    def text_overwrites(self, data):
        """Numbers and dtypes in the JSON header replaced (the header length
        kept consistent): huge, negative, fractional, off by one."""
        fields, _ = self.fields(data)
        header = data[8:fields[1].end]
        replacements = [b"0", b"-1", b"1", b"18446744073709551615", b"18446744073709551616", b"9223372036854775808",
                        b"4294967296", b"1e309", b"1.5", b"null", b'"7"', str(len(data)).encode()]
        edits = [(f.start - 8, f.width, r, f.label) for f in fields if f.kind == "text_int" for r in replacements]
        for match in re.finditer(rb'"dtype": "(\w+)"', header):
            for dtype in (b"F64", b"I8", b"BOOL", b"U32", b"BF16", b"X", b""):
                edits.append((match.start(1), len(match.group(1)), dtype, f"header@{match.start(1)}.dtype"))
        for start, width, replacement, label in edits:
            text = header[:start] + replacement + header[start + width:]
            yield Case(f"text:{label}={replacement.decode()}", struct.pack("<Q", len(text)) + text +
                       data[fields[1].end:])

    def loader(self):
        import qmetal

        for name in self.LOADERS:
            if hasattr(qmetal, name):
                return getattr(qmetal, name)
        return None


FORMATS = {"gguf": GGUF("gguf", 64), "gguf-default-alignment": GGUF("gguf-default-alignment", None),
           "safetensors": Safetensors()}
GGUF_FORMATS = ("gguf", "gguf-default-alignment")


# --- running cases (in the subprocess) -------------------------------------------------------------

def check(load, path: str):
    """(outcome, problem): outcome "loaded", "refused" (a ValueError) or
    "failed" (another exception); problem None if the outcome is allowed,
    else what went wrong."""
    try:
        loaded = load(path)
    except ValueError as error:
        if str(path) in str(error) or os.path.basename(path) in str(error):
            return "refused", None
        return "refused", f"ValueError that does not name the file: {error}"
    except Exception as error:  # noqa: BLE001 - any other exception is the failure reported
        return "failed", f"{type(error).__name__} (only ValueError is allowed): {error}"
    try:
        touch(loaded)
    except Exception as error:  # noqa: BLE001
        return "loaded", f"loaded, but reading it failed: {type(error).__name__}: {error}"
    finally:
        del loaded
    return "loaded", None


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Corruption fuzzer for qmetal's model-file loaders.")
    parser.add_argument("--format", choices=sorted(FORMATS), default="gguf")
    parser.add_argument("--mutators", default="truncate,set,flip", help="comma-separated: truncate, set, flip")
    parser.add_argument("--seed", type=int, default=None, help="seed of the flips and of --sample")
    parser.add_argument("--flips", type=int, default=DEFAULT_FLIPS)
    parser.add_argument("--only", action="append", default=[], help="run only this case id (repeatable)")
    parser.add_argument("--sample", type=int, default=0, help="run this many cases drawn at random")
    parser.add_argument("--progress", default=None, help="file that receives each case id before it runs")
    parser.add_argument("--verbose", action="store_true", help="print every case's outcome")
    parser.add_argument("--require-asan", action="store_true", help="fail unless ASan's runtime is loaded")
    args = parser.parse_args(argv)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    if args.require_asan and "libasan" not in Path("/proc/self/maps").read_text():
        print("AddressSanitizer's runtime is not loaded (LD_PRELOAD)")
        return 3
    fmt = FORMATS[args.format]
    load = fmt.loader()
    if load is None:
        print(f"qmetal has no {fmt.name} loader")
        return 2
    cases = list(fmt.cases(set(args.mutators.split(",")), seed, args.flips))
    if args.only:
        cases = [c for c in cases if c.id in set(args.only)]
        missing = set(args.only) - {c.id for c in cases}
        if missing:
            print(f"no such case: {sorted(missing)}")
            return 2
    if args.sample:
        rng = np.random.default_rng(seed)
        cases = [cases[i] for i in sorted(rng.choice(len(cases), min(args.sample, len(cases)), replace=False))]
    progress = open(args.progress, "w") if args.progress else None  # noqa: SIM115 - kept open for the run
    failures, outcomes = 0, {"loaded": 0, "refused": 0, "failed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for n, case in enumerate(cases):
            if progress:
                progress.write(f"CASE {case.id}\n")
                progress.flush()
            path = os.path.join(tmp, f"case{n}{fmt.suffix}")  # a fresh name: no live mapping is rewritten
            with open(path, "wb") as f:
                f.write(case.data)
            faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
            try:
                outcome, problem = check(load, path)
                outcomes[outcome] += 1
            finally:
                faulthandler.cancel_dump_traceback_later()
            os.unlink(path)
            if problem:
                failures += 1
                print(f"FAIL\t{case.id}\t{problem}", flush=True)
            elif args.verbose:
                print(f"{outcome}\t{case.id}")
            if n % 256 == 255:
                gc.collect()  # mappings held in cycles, if any
    if progress:
        progress.write("DONE\n")
        progress.close()
    print(f"{fmt.name}: {len(cases)} cases ({outcomes['loaded']} loaded, {outcomes['refused']} refused), "
          f"{failures} failures (seed {seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    faulthandler.enable()
    sys.exit(run())


# --- the tests --------------------------------------------------------------------------------------

import pytest  # noqa: E402 - the module also runs as the fuzzer's command, without pytest

from conftest import SEED  # noqa: E402

FLIPS = 20 * int(os.environ.get("QMETAL_FUZZ_EXAMPLES", "0") or 0) or DEFAULT_FLIPS


def run_fuzzer(tmp_path, fmt, mutators, *, flips=0, sample=0, env=None, extra=(), timeout=None):
    """Runs the fuzzer in a subprocess; fails with the case that crashed,
    hung or gave a wrong outcome, and the command that repeats it."""
    progress = tmp_path / f"progress-{fmt}-{mutators}.txt"
    timeout = timeout or 300 + flips // 50  # a case takes about a millisecond
    command = [sys.executable, __file__, "--format", fmt, "--mutators", mutators, "--seed", str(SEED),
               "--flips", str(flips), "--progress", str(progress), *extra]
    if sample:
        command += ["--sample", str(sample)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **(env or {})}, cwd=os.path.dirname(__file__))
        rc, stdout, stderr = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as expired:
        rc, stdout, stderr = "timeout", expired.stdout or "", expired.stderr or ""
        stdout, stderr = (s.decode(errors="replace") if isinstance(s, bytes) else s for s in (stdout, stderr))
    lines = progress.read_text().splitlines() if progress.exists() else []
    repeat = f"python tests/test_fuzz_files.py --format {fmt} --seed {SEED} --mutators {mutators} --flips {flips}"
    if rc == 0 and lines[-1:] == ["DONE"]:
        return stdout, stderr
    fails = [line.split("\t", 2)[1:] for line in stdout.splitlines() if line.startswith("FAIL\t")]
    report = []
    if fails:
        report.append(f"{len(fails)} cases with outcomes other than a load or a ValueError naming the file:\n"
                      + "\n".join(f"  {case}: {problem}" for case, problem in fails[:20])
                      + f"\nrepeat one: {repeat} --only '{fails[0][0]}'")
    if lines[-1:] != ["DONE"]:
        last = lines[-1][5:] if lines and lines[-1].startswith("CASE ") else None
        report.append(f"the fuzzer process ended with {rc} during case {last!r} (a crash or a hang)\n"
                      f"repeat: {repeat} --only '{last}'\nstderr:\n{stderr[-3000:]}")
    elif not fails:
        report.append(f"the fuzzer process ended with {rc}:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    raise AssertionError("\n".join(report))


@pytest.mark.parametrize("name", GGUF_FORMATS)
def test_gguf_base_file_loads_and_its_fields_cover_the_header(name):
    """The fuzzer's own checks: the valid file loads with every tensor, and
    the parser's fields tile the header and name every tensor's data."""
    import qmetal

    fmt = FORMATS[name]
    data = fmt.build()
    fields, header_end = fmt.fields(data)
    header = sorted((f for f in fields if f.kind != "data"), key=lambda f: f.start)
    assert header[0].start == 0 and header[-1].end == header_end
    assert all(a.end == b.start for a, b in zip(header, header[1:]))
    assert {f.kind for f in fields} >= {"count", "string_len", "array_type", "n_dims", "dim", "ggml_type", "offset",
                                        "scalar", "value_type", "version", "data"}
    assert any(f.label.endswith("(general.alignment)") and f.value == fmt.alignment for f in fields) == \
        (fmt.alignment is not None)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "base.gguf")
        Path(path).write_bytes(data)
        model = qmetal.load_gguf(path)
        assert model.metadata["fuzz.nested"] == [[1, 2, 3], [4], [5, 6]]
        assert model.metadata.get("general.alignment") == fmt.alignment
        assert set(model.tensors) == {"blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.0.ffn_gate_exps.weight",
                                      "blk.0.attn_norm.weight", "output.weight"}
        assert model.unsupported == {"token_types": 26}
        assert model.tensors["blk.0.ffn_gate_exps.weight"].shape == (2, 4, 256)
        assert check(qmetal.load_gguf, path) == ("loaded", None)
        del model


@pytest.mark.parametrize("mutators", ["truncate", "set", "flip"])
@pytest.mark.parametrize("name", GGUF_FORMATS)
def test_gguf_corruption(tmp_path, name, mutators):
    stdout, _ = run_fuzzer(tmp_path, name, mutators, flips=FLIPS)
    assert " 0 failures" in stdout
    print(stdout.splitlines()[-1])


def test_gguf_corruption_sample_under_asan(tmp_path):
    """~20 of the cases with AddressSanitizer preloaded. The qmetal
    extension is not built with ASan, so this guards what ASan intercepts
    in an uninstrumented process -- the allocator, memcpy and friends, as
    used by the extension, NumPy and the mmap path -- not every load
    inside the extension; out-of-bounds reads of the mapping itself show
    as a crash in the plain runs."""
    import qmetal.sim

    preload = qmetal.sim.sanitizer_preload()
    if not preload:
        pytest.skip("the C++ compiler has no AddressSanitizer runtime")
    stdout, stderr = run_fuzzer(tmp_path, "gguf", "truncate,set,flip", flips=200, sample=20,
                                env={"LD_PRELOAD": preload, "ASAN_OPTIONS": "detect_leaks=0"},
                                extra=["--require-asan"])
    assert "ERROR: AddressSanitizer" not in stderr, stderr[-3000:]
    assert "gguf: 20 cases" in stdout and " 0 failures" in stdout


def test_safetensors_engine_builds_valid_cases():
    """The mutation engine on safetensors, checked without a loader: the
    valid file parses as safetensors and the cases are many and distinct."""
    fmt = FORMATS["safetensors"]
    data = fmt.build()
    fields, header_end = fmt.fields(data)
    header = json.loads(data[8:header_end])
    assert header["model.layers.0.mlp.up_proj.weight"]["shape"] == [8, 8]
    assert max(f.end for f in fields if f.kind == "data") == len(data)
    cases = list(fmt.cases({"truncate", "set", "flip"}, 0, 50))
    assert len({c.id for c in cases}) == len(cases) > 500
    assert any(c.id.startswith("text:") for c in cases)


@pytest.mark.parametrize("mutators", ["truncate", "set", "flip"])
def test_safetensors_corruption(tmp_path, mutators):
    if FORMATS["safetensors"].loader() is None:
        pytest.skip("qmetal has no safetensors loader yet (qmetal.load_mlx / qmetal.load_safetensors); "
                    "the engine is ready for it")
    stdout, _ = run_fuzzer(tmp_path, "safetensors", mutators, flips=FLIPS)
    assert " 0 failures" in stdout
    print(stdout.splitlines()[-1])
