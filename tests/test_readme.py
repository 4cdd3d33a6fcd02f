"""The README's API tour runs as written (a README that lies is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_api_tour_runs_and_its_results_are_right() -> None:
    tour = next(b for b in _python_blocks() if "import dlmath as dm" in b)
    scope: dict[str, object] = {}
    exec(compile(tour, str(README), "exec"), scope)  # our own README, run as a user would
    # spot-check the values the tour computes against closed forms
    np.testing.assert_allclose(scope["H"], np.diag(6 * np.arange(3.0)))
    np.testing.assert_allclose(scope["Hv"], 6 * np.arange(3.0))
    assert scope["d3"] == -1.0  # d^3/dx^3 sin x at 0
    p = np.exp(np.arange(4.0)) / np.exp(np.arange(4.0)).sum()
    np.testing.assert_allclose(scope["J"], np.diag(p) - np.outer(p, p), atol=1e-15)
    assert scope["report"].passed
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(scope["ld"], np.linalg.inv(A).T, rtol=1e-13)  # d log|det A| / dA
    assert [r.tolist() for r in scope["rows"]] == [[1.0, 2.0], [3.0, 4.0]]
    np.testing.assert_allclose(scope["grads"]["w"], 2 * np.ones(3))
    assert float(scope["grads"]["b"]) == 1.0 and scope["aux"] == "aux"


def test_the_readme_commands_are_the_ones_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)
    assert len(commands) == 2
    for command in commands:
        assert command in ci


def test_the_adding_a_claim_example_uses_a_new_id() -> None:
    from dlmath import verify as vf
    from dlmath.chapters import load_all

    block = next(b for b in _python_blocks() if "@claim(" in b)
    claim_id = re.search(r'@claim\("([^"]+)"', block).group(1)  # type: ignore[union-attr]
    assert claim_id.split(".", 1)[0] in vf.CHAPTER_BY_ID
    assert claim_id not in load_all(), f"the README's example reuses the existing claim id {claim_id!r}"


def test_the_networks_tour_trains_saves_and_reloads(tmp_path, monkeypatch) -> None:
    block = next(b for b in _python_blocks() if "resnet_small" in b)
    monkeypatch.chdir(tmp_path)  # the tour saves resnet.safetensors in the working directory
    scope: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), scope)
    model = scope["model"]
    saved = scope["dm"].load(str(tmp_path / "resnet.safetensors"))
    assert set(saved) == set(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(saved[key], value)
    assert not model.training
    assert scope["out"].shape == (2, 5, 8) and scope["kernels"].ntk.shape == (6, 6)
    # the analytic and the finite-width NTK of the same description are both symmetric positive semi-definite
    for k in (scope["kernels"].ntk, scope["theta"]):
        k = np.asarray(k)
        np.testing.assert_allclose(k, k.T, rtol=1e-12, atol=1e-12)
        assert np.linalg.eigvalsh(k).min() > -1e-9 * np.abs(k).max()
    fit = scope["fit"]
    assert fit.measured_error <= fit.error_bound < 1e-3
    grid = np.linspace(0, np.pi, 10001)
    assert np.max(np.abs(fit.network(grid[:, None]).ravel() - np.sin(grid))) < 1e-3  # checked here, not trusted
