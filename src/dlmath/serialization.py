"""`save` / `load`: state dicts in the safetensors format (no pickle), as ``dlmath.save`` / ``dlmath.load``.

The file is what ``safetensors.torch.save_file(model.state_dict(), path)`` writes, so weights move
between PyTorch and dlmath models of the same architecture key for key:
``model.load_state_dict(dlmath.load(path))``. Loading never executes code from the file (the format
is a JSON header and raw little-endian buffers), unlike ``torch.load`` of a pickle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .autodiff import DlmathError, Tensor

__all__ = ["SerializationError", "load", "save"]


class SerializationError(DlmathError):
    """A state dict that cannot be saved, or a file that is not a readable safetensors file."""


def _as_saveable(key: Any, value: Any, path: str) -> np.ndarray:
    if not isinstance(key, str):
        raise SerializationError(f"save({path!r}): state dict keys must be strings, got {key!r} "
                                 f"({type(key).__name__})")
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16; float32 holds every bfloat16 exactly
            value = value.float()
        value = value.numpy()
    if not isinstance(value, (np.ndarray, np.generic)):
        raise SerializationError(f"save({path!r}): entry {key!r} is a {type(value).__name__}, not an array "
                                 "(a state dict maps names to ndarrays or Tensors)")
    arr = np.asarray(value, order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)
    if arr.dtype.kind not in "biuf":
        raise SerializationError(f"save({path!r}): entry {key!r} has dtype {arr.dtype}, which safetensors cannot "
                                 "store (booleans, integers and floats only)")
    return arr


def save(state_dict: Mapping[str, Any], path: str | os.PathLike[str],
         metadata: Mapping[str, str] | None = None) -> None:
    """Write ``state_dict`` (name -> ndarray or Tensor) to ``path`` in the safetensors format.

    The file is written next to ``path`` first and renamed into place, so an interrupted save
    leaves the previous file intact."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    p = os.fspath(path)
    if not isinstance(state_dict, Mapping):
        raise SerializationError(f"save({p!r}): expected a mapping name -> array, got {type(state_dict).__name__}")
    arrays = {key: _as_saveable(key, value, p) for key, value in state_dict.items()}
    tmp = f"{p}.tmp-{os.getpid()}"
    try:
        save_file(arrays, tmp, metadata=None if metadata is None else dict(metadata))
        os.replace(tmp, p)
    except (OSError, SafetensorError) as exc:
        raise SerializationError(f"save({p!r}): cannot write the file: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a safetensors file into a dict name -> ndarray (writable copies, the file's dtypes)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    p = os.fspath(path)
    if not os.path.exists(p):
        raise SerializationError(f"load({p!r}): no such file")
    if os.path.isdir(p):
        raise SerializationError(f"load({p!r}): is a directory, not a safetensors file")
    size = os.path.getsize(p)
    with open(p, "rb") as fh:
        head = fh.read(9)
    # the format: an 8-byte little-endian header length, then a JSON header starting with '{'
    if size < 8 or len(head) < 9 or head[8:9] != b"{":
        raise SerializationError(f"load({p!r}): not a safetensors file ({size} bytes; a safetensors file starts "
                                 "with an 8-byte header length and a JSON header). Files from torch.save are "
                                 "pickles: save with safetensors.torch.save_file instead")
    header_len = int.from_bytes(head[:8], "little")
    if 8 + header_len > size:
        raise SerializationError(f"load({p!r}): truncated or corrupt safetensors file (header of {header_len} "
                                 f"bytes announced, file has {size} bytes)")
    if _has_bfloat16(p, header_len):
        return _load_with_bfloat16(p, header_len)
    try:
        loaded = load_file(p)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise SerializationError(f"load({p!r}): truncated or corrupt safetensors file: {exc}") from exc
    return {key: np.array(value, copy=True) for key, value in loaded.items()}


def _header(p: str, header_len: int) -> dict[str, Any]:
    import json

    with open(p, "rb") as fh:
        fh.seek(8)
        try:
            header = json.loads(fh.read(header_len))
        except ValueError as exc:
            raise SerializationError(f"load({p!r}): corrupt safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise SerializationError(f"load({p!r}): corrupt safetensors header (not a JSON object)")
    return header


def _has_bfloat16(p: str, header_len: int) -> bool:
    """Whether the file holds bfloat16 tensors (what ``safetensors.torch`` writes for bf16 models),
    which NumPy -- hence ``safetensors.numpy`` -- cannot represent."""
    return any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in _header(p, header_len).values())


def _load_with_bfloat16(p: str, header_len: int) -> dict[str, np.ndarray]:
    """Read every tensor from the raw buffer, widening bfloat16 to float32 (exact: a bfloat16 is the top
    16 bits of a float32)."""
    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
              "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?", "BF16": "<u2"}
    header = _header(p, header_len)
    with open(p, "rb") as fh:
        fh.seek(8 + header_len)
        buf = fh.read()
    out: dict[str, np.ndarray] = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
            raw = np.frombuffer(buf[begin:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"load({p!r}): entry {key!r}: corrupt or unsupported header entry "
                                     f"{info!r} ({exc})") from exc
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[key] = np.array(raw, copy=True)
    return out
