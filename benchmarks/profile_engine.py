"""Where dlmath's time goes: the MLP SGD step of bench_mlp_step.py and the tiny-op chain of
bench_op_overhead.py, profiled three ways (one thread; nothing in src/ is changed, the
instrumentation wraps the engine's functions from outside, in this process only):

1. cProfile, per function, normalised per step / per op. cProfile does not see NumPy
   ufunc calls (np.matmul, np.add... are not Python or builtin functions), so their time
   lands in the *calling* function's tottime; part 2 separates it.
2. MLP step, manual breakdown: nested timers around every primitive forward (the NumPy
   work), every VJP rule, and the reverse sweep's helpers, accumulated per phase, compared
   with the raw matrix products and the hand-written NumPy step.
3. Tiny-op chain, a ladder: the per-op cost of ever larger pieces of the engine's path
   (raw ufunc, forward through apply, full operator; one node of the reverse sweep split
   into its helpers), each timed on its own with timeit.

Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_engine.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_engine.py --part chain --top 30
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
import timeit
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch  # noqa: F401  (so that the thread limit below covers its pools too)

import _mlp
import dlmath as dm
from _harness import med, print_machine_info, print_table, thread_limit, time_interleaved, wait_quiet
from bench_op_overhead import make_dlmath as make_chain
from dlmath.autodiff import sweep as bp
from dlmath.autodiff.core import Node, Primitive, Tensor, apply


# ----- 1. cProfile -----------------------------------------------------------------------------------
def cprofile_table(fn: Callable[[], Any], calls: int, unit: str, per: int, top: int, real: float) -> None:
    """Run ``fn`` ``calls`` times under cProfile; print the top functions by own time per ``unit``.

    ``real`` is the un-profiled time of one call: the last column rescales each function's
    share of the profiled total to it (cProfile's own per-call cost inflates small functions).
    """
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        fn()
    pr.disable()
    st = pstats.Stats(pr)
    total = st.total_tt
    rows = []
    entries = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    for (file, line, name), (_cc, nc, tt, ct, _callers) in entries:
        where = f"{file.split('/src/')[-1].split('/benchmarks/')[-1]}:{line}" if line else "~"
        rows.append((f"{name} ({where})", f"{nc / calls / per:.2f}", f"{tt / calls / per * 1e6:.2f}",
                     f"{ct / calls / per * 1e6:.2f}", f"{100 * tt / total:.1f}",
                     f"{tt / total * real / per * 1e6:.2f}"))
    print_table(["function (file:line)", f"calls/{unit}", f"own us/{unit}", f"cum us/{unit}", "own %",
                 f"own us/{unit}, rescaled to real"], rows)
    print(f"(profiled total {total / calls / per * 1e6:.2f} us/{unit}; un-profiled {real / per * 1e6:.2f} us/{unit})")


# ----- 2. MLP step: nested timers ---------------------------------------------------------------------
class NestedTimer:
    """Inclusive and exclusive time per path of nested labels ('backward/vjp matmul/numpy matmul')."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []
        self.incl: dict[str, float] = defaultdict(float)
        self.excl: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.clock = time.perf_counter

    def enter(self, label: str) -> None:
        path = f"{self.stack[-1][0]}/{label}" if self.stack else label
        self.stack.append([path, self.clock(), 0.0])

    def exit(self) -> None:
        path, t0, child = self.stack.pop()
        dt = self.clock() - t0
        self.incl[path] += dt
        self.excl[path] += dt - child
        self.count[path] += 1
        if self.stack:
            self.stack[-1][2] += dt

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(label)
            try:
                return fn(*args, **kwargs)
            finally:
                self.exit()
        return timed


def instrument(timer: NestedTimer) -> Callable[[], None]:
    """Wrap every primitive's forward, every VJP rule and the sweep's helpers; returns an undo."""
    undo: list[Callable[[], None]] = []
    for obj in list(vars(dm.ops).values()):
        if isinstance(obj, Primitive) and not hasattr(obj.forward, "_timed"):
            orig = obj.forward
            w = timer.wrap(f"numpy {obj.name}", orig)
            w._timed = True  # type: ignore[attr-defined]
            obj.forward = w
            undo.append(lambda o=obj, f=orig: setattr(o, "forward", f))
    orig_rule = Primitive.vjp_rule

    def vjp_rule(self: Primitive, argnum: int) -> Any:
        return timer.wrap(f"vjp rule {self.name}[{argnum}]", orig_rule(self, argnum))
    Primitive.vjp_rule = vjp_rule  # type: ignore[method-assign]
    undo.append(lambda: setattr(Primitive, "vjp_rule", orig_rule))
    for name in ("topological_order", "reduce_to_shape", "_check_versions", "_accumulate_leaf", "make_seed"):
        orig = getattr(bp, name)
        setattr(bp, name, timer.wrap(name, orig))
        undo.append(lambda n=name, f=orig: setattr(bp, n, f))

    def restore() -> None:
        for u in reversed(undo):
            u()
    return restore


def mlp_breakdown(steps: int) -> None:
    wait_quiet()  # the machine is shared: start each part once other processes are idle
    params = _mlp.init_params()
    x, labels = _mlp.make_batch()
    ps = [dm.tensor(p, requires_grad=True) for p in params]
    xt = dm.tensor(x)
    rows_idx = np.arange(len(labels))
    lr = _mlp.LR
    timer = NestedTimer()

    def step() -> None:
        timer.enter("forward")
        h = xt
        for i in range(3):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < 2:
                h = dm.relu(h)
        loss = -dm.log_softmax(h, axis=-1)[rows_idx, labels].mean()
        timer.exit()
        timer.enter("backward")
        loss.backward()
        timer.exit()
        timer.enter("update")
        with dm.no_grad():
            for p in ps:
                p -= lr * p.grad
                p.grad = None
        timer.exit()

    plain = _mlp.make_dlmath(params, x, labels)
    hand = _mlp.make_numpy(params, x, labels)
    for _ in range(20):
        plain()
        hand()
    t_plain = med([timeit.timeit(plain, number=1) for _ in range(steps)])
    t_hand = med([timeit.timeit(hand, number=1) for _ in range(steps)])
    restore = instrument(timer)
    try:
        for _ in range(10):
            step()
        timer.incl.clear()
        timer.excl.clear()
        timer.count.clear()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        t_instr = (time.perf_counter() - t0) / steps
    finally:
        restore()

    def per(v: float) -> str:
        return f"{v / steps * 1e6:.1f}"

    print(f"dlmath step un-instrumented {t_plain * 1e3:.3f} ms, instrumented {t_instr * 1e3:.3f} ms "
          f"(timer overhead ~{(t_instr - t_plain) * 1e6:.0f} us/step, spread over the labels below); "
          f"hand-written NumPy step {t_hand * 1e3:.3f} ms")
    children: dict[str, list[str]] = defaultdict(list)
    for path in timer.incl:
        children[path.rpartition("/")[0]].append(path)
    rows = []

    def walk(parent: str, depth: int) -> None:
        for path in sorted(children.get(parent, []), key=lambda q: -timer.incl[q]):
            if timer.incl[path] / steps < 0.5e-6:
                continue
            rows.append(("  " * depth + path.split("/")[-1], f"{timer.count[path] / steps:.0f}",
                         per(timer.incl[path]), per(timer.excl[path])))
            walk(path, depth + 1)
    walk("", 0)
    print_table(["label (indent = nested inside)", "calls/step", "inclusive us/step", "exclusive us/step"], rows)

    # roll-up: NumPy work vs the rest, per phase
    numpy_mm = defaultdict(float)
    numpy_other = defaultdict(float)
    for path, v in timer.excl.items():
        phase, last = path.split("/")[0], path.split("/")[-1]
        if last == "numpy matmul":
            numpy_mm[phase] += v
        elif last.startswith("numpy "):
            numpy_other[phase] += v
    print()
    rows = []
    for phase in ("forward", "backward", "update"):
        tot = timer.incl[phase]
        rest = tot - numpy_mm[phase] - numpy_other[phase]
        rows.append((phase, per(tot), per(numpy_mm[phase]), per(numpy_other[phase]), per(rest)))
    print("roll-up (us/step): 'numpy other prims' = the NumPy work inside the other primitives' forwards (also "
          "those called by VJP rules and reduce_to_shape); 'rest' = VJP-rule arithmetic on raw arrays "
          "(g * mask...), the engine's Python bookkeeping and the timers")
    print_table(["phase", "total", "numpy matmul", "numpy other prims", "rest"], rows)


def raw_matmuls() -> float:
    params = _mlp.init_params()
    x, _ = _mlp.make_batch()
    rng = np.random.default_rng(2)
    h1 = rng.standard_normal((128, 512), dtype=np.float32)
    h2 = rng.standard_normal((128, 512), dtype=np.float32)
    dz = rng.standard_normal((128, 10), dtype=np.float32)
    w1, w2, w3 = params[0], params[2], params[4]
    pairs = [(x, w1), (h1, w2), (h2, w3), (h2.T, dz), (dz, w3.T), (h1.T, h2), (h2, w2.T), (x.T, h1)]

    def run() -> None:
        for a, b in pairs:
            np.matmul(a, b)
    return med(time_interleaved({"mm": run}, 200, 20)["mm"]["total"])


# ----- 3. tiny ops: the ladder -----------------------------------------------------------------------
def us(stmt: Callable[[], Any], number: int = 20000, repeat: int = 7) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6


def chain_ladder() -> None:
    wait_quiet()  # the machine is shared: start each part once other processes are idle
    rng = np.random.default_rng(0)
    a_np, b_np = rng.uniform(0.9, 1.1, 4), rng.uniform(-0.1, 0.1, 4)
    a = dm.tensor(a_np, requires_grad=True)
    b = dm.tensor(b_np, requires_grad=True)
    c = dm.tensor(b_np)  # constant
    mul = dm.ops.multiply
    args = (a, b)
    kwargs: dict[str, Any] = {}
    node = Node(mul, args, kwargs, (0, 0))
    out = apply(mul, args, kwargs)
    g = np.ones(4)
    rule0 = mul.vjp_rule(0)
    tanh_rule = dm.ops.tanh.vjp_rule(0)
    sin_rule = dm.ops.sin.vjp_rule(0)
    ans = np.tanh(a_np)

    print("forward, one multiply of two (4,) float64 tensors that require grad (best of 7 x 20000, us):")
    fwd = [
        ("np.multiply(a, b) on the raw arrays (the floor)", us(lambda: np.multiply(a_np, b_np))),
        ("mul.forward(a, b) (attribute lookup + ufunc)", us(lambda: mul.forward(a_np, b_np))),
        ("raw = tuple(x.data if isinstance(x, Tensor) else x for x in args)",
         us(lambda: tuple(x.data if isinstance(x, Tensor) else x for x in args))),
        ("versions = tuple(x._version[0] for x in args if isinstance(x, Tensor))",
         us(lambda: tuple(x._version[0] for x in args if isinstance(x, Tensor)))),
        ("Node(prim, args, kwargs, versions)", us(lambda: Node(mul, args, kwargs, (0, 0)))),
        ("Tensor._wrap(arr) (constant result)", us(lambda: Tensor._wrap(g))),
        ("apply(mul, (a, b), {}) with dm.no_grad()", _nograd_us(lambda: apply(mul, args, kwargs))),
        ("apply(mul, (a, b), {}) recording", us(lambda: apply(mul, args, kwargs))),
        ("mul(a, b) (Primitive.__call__ -> apply)", us(lambda: mul(a, b))),
        ("a * b (Tensor.__mul__ -> Primitive.__call__ -> apply)", us(lambda: a * b)),
        ("a * c (c constant, still recorded)", us(lambda: a * c)),
        ("dm.tanh(a)", us(lambda: dm.tanh(a))),
    ]
    print_table(["piece", "us"], [(k, f"{v:.3f}") for k, v in fwd])
    print()
    print("backward, one node of the reverse sweep (us):")
    bwd = [
        ("mul VJP rule g * y on raw arrays (the floor of the rule)", us(lambda: rule0(g, g, a_np, b_np))),
        ("tanh VJP rule g * (1 - ans * ans)", us(lambda: tanh_rule(g, ans, a_np))),
        ("sin VJP rule g * cos(x) (cos via Primitive.__call__ plain path)", us(lambda: sin_rule(g, ans, a_np))),
        ("  of which cos(x) through Primitive.__call__", us(lambda: dm.ops.cos(a_np))),
        ("  vs np.cos(x)", us(lambda: np.cos(a_np))),
        ("prim.vjp_rule(i) lookup", us(lambda: mul.vjp_rule(0))),
        ("reduce_to_shape(g, shape, dtype), shapes equal (no-op)", us(lambda: bp.reduce_to_shape(g, (4,), g.dtype))),
        ("  of which its function-level `from . import ops`", us(_relative_import_ops())),
        ("  its shape and dtype tests alone", us(lambda: _shape_dtype_test(g, (4,), g.dtype))),
        ("_check_versions(t)", us(lambda: bp._check_versions(out))),
        ("args = tuple(a.data if isinstance(a, Tensor) else a for a in node.args)",
         us(lambda: tuple(x.data if isinstance(x, Tensor) else x for x in node.args))),
        ("grads dict: prev = grads.get(id(a)); grads[id(a)] = ...", us(lambda: _dict_accumulate(a, g))),
        ("prev + gi (accumulating a leaf's cotangent, (4,) arrays)", us(lambda: g + g)),
    ]
    print_table(["piece", "us"], [(k, f"{v:.3f}") for k, v in bwd])
    print()

    # whole-chain numbers, and topological_order per node
    run, _ = make_chain((4,), 1000)
    for _ in range(10):
        run()
    res = [run() for _ in range(50)]
    f = med([r["forward"] for r in res]) / 1000 * 1e6
    bwd_total = med([r["backward"] for r in res]) / 1000 * 1e6
    gc.disable()
    try:
        res = [run() for _ in range(50)]
    finally:
        gc.enable()
    f_nogc = med([r["forward"] for r in res]) / 1000 * 1e6
    b_nogc = med([r["backward"] for r in res]) / 1000 * 1e6
    x = dm.tensor(np.ones(4), requires_grad=True)
    y = x
    for _ in range(250):
        y = dm.sin(dm.tanh(y * a + b))
    loss = y.sum()
    topo = us(lambda: bp.topological_order([loss]), number=50) / 1000
    print(f"chain of 1000 ops on (4,): forward {f:.2f} us/op, backward {bwd_total:.2f} us/op; with the cyclic GC "
          f"paused: forward {f_nogc:.2f}, backward {b_nogc:.2f} us/op; topological_order alone {topo:.2f} us/node")


def _relative_import_ops() -> Callable[[], Any]:
    """A function that runs `from . import ops` as backprop.reduce_to_shape does (same package)."""
    ns: dict[str, Any] = {"__name__": bp.__name__, "__package__": bp.__package__, "__spec__": bp.__spec__}
    exec("def _imp():\n    from . import ops\n    return ops\n", ns)
    return ns["_imp"]


def _shape_dtype_test(g: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if g.shape != shape:
        raise AssertionError
    if g.dtype != dtype:
        raise AssertionError
    return g


def _nograd_us(fn: Callable[[], Any]) -> float:
    with dm.no_grad():
        return us(fn)


_grads: dict[int, Any] = {}


def _dict_accumulate(a: Tensor, gi: Any) -> None:
    prev = _grads.get(id(a))
    _grads[id(a)] = gi if prev is None else prev
    return None


def chain_cprofile(top: int) -> None:
    wait_quiet()  # the machine is shared: start each part once other processes are idle
    run, _ = make_chain((4,), 1000)
    for _ in range(10):
        run()
    res = [run() for _ in range(50)]
    real_f = med([r["forward"] for r in res])
    real_b = med([r["backward"] for r in res])
    # profile forward and backward separately by building the graph outside the profiler for backward
    x, a, b = (dm.tensor(v, requires_grad=True) for v in (np.ones(4), np.full(4, 0.99), np.full(4, 0.01)))

    def forward() -> Any:
        y = x
        for _ in range(250):
            y = y * a
            y = y + b
            y = dm.tanh(y)
            y = dm.sin(y)
        return y.sum()

    print("forward (1000 ops + sum), per op:")
    cprofile_table(forward, 50, "op", 1000, top, real_f)
    losses = [forward() for _ in range(50)]
    it = iter(losses)
    print()
    print("backward, per op (graph built outside the profiler):")
    cprofile_table(lambda: next(it).backward(), 50, "op", 1000, top, real_b)


def mlp_cprofile(top: int) -> None:
    wait_quiet()  # the machine is shared: start each part once other processes are idle
    params = _mlp.init_params()
    x, labels = _mlp.make_batch()
    step = _mlp.make_dlmath(params, x, labels)
    for _ in range(20):
        step()
    real = med([timeit.timeit(step, number=1) for _ in range(100)])
    cprofile_table(step, 100, "step", 1, top, real)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["mlp", "chain", "all"], default="all")
    p.add_argument("--top", type=int, default=22, help="functions shown per cProfile table")
    p.add_argument("--steps", type=int, default=200, help="MLP steps for the manual breakdown")
    p.add_argument("--threads", type=int, default=1, help="thread count (default 1)")
    args = p.parse_args()
    print_machine_info("profile of dlmath: MLP step and tiny-op chain", [args.threads])
    with thread_limit(args.threads):
        if args.part in ("mlp", "all"):
            print("=== MLP step 784-512-512-10 x 128 float32: cProfile (us per step) ===")
            mlp_cprofile(args.top)
            print()
            print("=== MLP step: manual breakdown (nested timers) ===")
            mlp_breakdown(args.steps)
            mm = raw_matmuls()
            print(f"the 8 matrix products of a step, timed alone: {mm * 1e3:.3f} ms")
            print()
        if args.part in ("chain", "all"):
            print("=== tiny-op chain, (4,) float64: cProfile (us per op) ===")
            chain_cprofile(args.top)
            print()
            print("=== tiny-op chain: the ladder ===")
            chain_ladder()


if __name__ == "__main__":
    main()
