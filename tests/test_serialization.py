"""dlmath.save / dlmath.load (safetensors): round trips, torch interchange, clear errors for bad files."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import safetensors.torch
import torch

import dlmath as dm
from dlmath import nn
from dlmath.serialization import SerializationError


def _models():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(OrderedDict(
        fc1=torch.nn.Linear(5, 4), bn=torch.nn.BatchNorm1d(4), act=torch.nn.ReLU(), drop=torch.nn.Dropout(0.2),
        ln=torch.nn.LayerNorm(4), fc2=torch.nn.Linear(4, 3)))
    m = nn.Sequential(OrderedDict(
        fc1=nn.Linear(5, 4), bn=nn.BatchNorm1d(4), act=nn.ReLU(), drop=nn.Dropout(0.2), ln=nn.LayerNorm(4),
        fc2=nn.Linear(4, 3)))
    return m, tm


def test_round_trip_keeps_keys_shapes_dtypes_and_values(tmp_path) -> None:
    m, _ = _models()
    m.train()
    m(np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32))  # move the running statistics
    sd = m.state_dict()
    path = tmp_path / "model.safetensors"
    dm.save(sd, path)
    back = dm.load(path)
    assert set(back) == set(sd)
    for k, v in sd.items():
        assert back[k].shape == v.shape and back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)
    assert back["bn.num_batches_tracked"].shape == () and back["bn.num_batches_tracked"].dtype == np.int64
    back["fc1.weight"][0, 0] = 1.0  # writable copies


def test_weights_move_between_torch_and_dlmath(tmp_path) -> None:
    m, tm = _models()
    tm.train()
    tm(torch.randn(8, 5))  # non-trivial running statistics
    tm.eval()
    p = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(tm.state_dict(), str(p))
    m.load_state_dict(dm.load(p))
    m.eval()
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(m(x).data, tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # and back: dlmath -> file -> torch
    for prm in m.parameters():
        prm.data += 0.5
    q = tmp_path / "dlmath.safetensors"
    dm.save(m.state_dict(), q)
    tm.load_state_dict(safetensors.torch.load_file(str(q)))
    np.testing.assert_allclose(m(x).data, tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_mismatched_architecture_names_keys_and_shapes(tmp_path) -> None:
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    p = tmp_path / "other.safetensors"
    safetensors.torch.save_file(tm.state_dict(), str(p))
    m = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    with pytest.raises(nn.StateDictError) as err:
        m.load_state_dict(dm.load(p))
    msg = str(err.value)
    assert "0.weight: expected shape (4, 5), got (6, 5)" in msg and "2.weight: expected shape (3, 4), got (3, 6)" in msg
    assert "missing keys: 3.weight, 3.bias, 3.running_mean" in msg


def test_bad_files_give_clear_errors(tmp_path) -> None:
    with pytest.raises(SerializationError, match="no such file"):
        dm.load(tmp_path / "missing.safetensors")
    foreign = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, foreign)
    with pytest.raises(SerializationError, match="not a safetensors file"):
        dm.load(foreign)
    good = tmp_path / "good.safetensors"
    dm.save({"w": np.arange(100.0)}, good)
    data = good.read_bytes()
    for cut in (4, 20, len(data) - 8):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(SerializationError, match=r"not a safetensors file|truncated or corrupt") as err:
            dm.load(bad)
        assert str(bad) in str(err.value)
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(data[:8] + b"{" + b"x" * (len(data) - 9))
    with pytest.raises(SerializationError, match="corrupt"):
        dm.load(garbled)
    assert isinstance(SerializationError("x"), dm.DlmathError)


def test_save_refuses_non_arrays(tmp_path) -> None:
    with pytest.raises(SerializationError, match="entry 'lr' is a float, not an array"):
        dm.save({"w": np.ones(2), "lr": 0.1}, tmp_path / "x.safetensors")
    with pytest.raises(SerializationError, match="keys must be strings"):
        dm.save({1: np.ones(2)}, tmp_path / "x.safetensors")
    with pytest.raises(SerializationError, match="dtype object"):
        dm.save({"w": np.array([None])}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    dm.save({"t": dm.tensor(np.ones(2), requires_grad=True)}, tmp_path / "t.safetensors")  # Tensors are fine
    np.testing.assert_array_equal(dm.load(tmp_path / "t.safetensors")["t"], np.ones(2))


def test_the_docs_example_trains_saves_and_loads() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "nn.md").read_text(encoding="utf-8")
    block = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0]
    scope: dict[str, object] = {}
    exec(compile(block, "docs/nn.md", "exec"), scope)
    assert scope["accuracy"] > 0.8
    x = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    with dm.no_grad():
        np.testing.assert_array_equal(scope["clone"](x).data, scope["model"](x).data)
