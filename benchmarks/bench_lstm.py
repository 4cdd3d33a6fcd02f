"""LSTM forward + backward (seq 50, batch 32, input 64, hidden 128, float32): dlmath's nn.LSTM against
torch.nn.LSTM on the CPU, same weights, same threads.

Target (issue 8): dlmath at most 1.5x PyTorch.

Run (the environment's OPENBLAS_* variables force a slow OpenBLAS kernel; unset them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lstm.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lstm.py --threads 1 --repeat 100
"""

from __future__ import annotations

import numpy as np
import torch

import dlmath as dm
from _harness import (
    LoadMonitor,
    apply_guard_args,
    common_parser,
    guard_report,
    med,
    print_machine_info,
    print_table,
    reset_guard_stats,
    schedule,
    thread_limit,
    time_interleaved,
)
from dlmath import nn

TARGET = 1.5
SEQ, BATCH, INPUT, HIDDEN = 50, 32, 64, 128


def make_pair() -> tuple[nn.LSTM, torch.nn.LSTM, np.ndarray]:
    torch.manual_seed(0)
    tm = torch.nn.LSTM(INPUT, HIDDEN)
    m = nn.LSTM(INPUT, HIDDEN)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    return m, tm, x


def dlmath_step(m: nn.LSTM, x: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    xt = dm.tensor(x, requires_grad=True)
    out, (h, c) = m(xt)
    loss = (out * out).sum() + h.sum() + c.sum()
    m.zero_grad()
    loss.backward()
    return float(loss.data), {k: p.grad.data for k, p in m.named_parameters()}


def torch_step(tm: torch.nn.LSTM, x: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    xt = torch.from_numpy(x).requires_grad_()
    out, (h, c) = tm(xt)
    loss = (out * out).sum() + h.sum() + c.sum()
    tm.zero_grad()
    loss.backward()
    return float(loss), {k: p.grad.numpy() for k, p in tm.named_parameters()}


def check() -> float:
    """Largest relative gradient difference between the two at float32 (a sanity check, not the oracle)."""
    m, tm, x = make_pair()
    _, g = dlmath_step(m, x)
    _, tg = torch_step(tm, x)
    return max(float(np.abs(g[k] - tg[k]).max() / np.abs(tg[k]).max()) for k in tg)


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=60, warmup=5)
    args = p.parse_args()
    apply_guard_args(args)
    print_machine_info(f"LSTM forward+backward, seq {SEQ}, batch {BATCH}, input {INPUT}, hidden {HIDDEN}, float32",
                       args.threads)
    print(f"correctness: max relative gradient difference dlmath vs torch (float32) = {check():.1e}")
    verdicts = []
    for n in args.threads:
        block, settle = schedule(n, args.block, args.settle)
        block = min(block, 5)
        reset_guard_stats()
        with thread_limit(n), LoadMonitor() as load:
            m, tm, x = make_pair()
            times = time_interleaved({"dlmath": lambda: dlmath_step(m, x) and None,
                                      "torch": lambda: torch_step(tm, x) and None},
                                     args.repeat, args.warmup, block, settle)
        t = {name: med(v["total"]) for name, v in times.items()}
        ratio = t["dlmath"] / t["torch"]
        print(f"-- {n} thread(s): median of {args.repeat} steps --")
        print_table(["engine", "median ms", "dlmath / torch"],
                    [(k, f"{v * 1e3:.2f}", f"{ratio:.2f}" if k == "dlmath" else "1.00") for k, v in t.items()])
        print(load.describe())
        print(guard_report())
        verdicts.append((n, ratio))
    for n, ratio in verdicts:
        print(f"TARGET dlmath <= {TARGET}x PyTorch, {n} thread(s): {ratio:.2f} -> "
              f"{'MET' if ratio <= TARGET else 'NOT MET'}")


if __name__ == "__main__":
    main()
