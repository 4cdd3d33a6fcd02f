"""Shared plumbing for the benchmark scripts: machine info, thread control, timing, tables.

Every script times all of its contenders in one process, under one thread count that
is applied to both PyTorch (``torch.set_num_threads``) and every native thread pool
NumPy links (``threadpoolctl.threadpool_limits``: OpenBLAS, and libgomp).
Contenders are timed interleaved in rounds (a block of consecutive calls of each per
round, the order rotating every round) so that slow drifts of the machine hit all of them
alike; the statistic reported is the median over all timed calls. The machine these
numbers come from is shared, so a load guard waits for quiet and redoes chunks of rounds
during which other processes used the CPU (see ``time_interleaved``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

try:
    import threadpoolctl
except ImportError:  # pragma: no cover - reported, not fatal
    threadpoolctl = None

# Environment variables that change which OpenBLAS kernel NumPy picks (see BENCHMARKS.md).
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def common_parser(description: str, repeat: int, warmup: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeat", type=int, default=repeat, help=f"timed rounds per thread count (default {repeat})")
    p.add_argument("--warmup", type=int, default=warmup,
                   help=f"untimed calls of each contender first (default {warmup})")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts to run, one after the other in this process (default: 1 2)")
    p.add_argument("--block", type=int, default=0,
                   help="timed consecutive calls per contender per round (default 25)")
    p.add_argument("--settle", type=float, default=-1.0,
                   help="untimed seconds of calls per contender before each block (default 0.2)")
    p.add_argument("--quiet-threshold", type=float, default=0.15,
                   help="load guard: redo ~1 s chunks of rounds during which other processes used more than this "
                        "many cores, and wait for quiet before each chunk (0 turns the guard off; default 0.15)")
    p.add_argument("--quiet-wait", type=float, default=90.0,
                   help="load guard: longest wait for quiet before a chunk, in seconds (default 90)")
    return p


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo, or None if unknown."""
    try:
        cores = set()
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":", 1)[1].strip()
                elif not line.strip() and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        if core is not None:
            cores.add((phys, core))
        return len(cores) or None
    except OSError:
        return None


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    keep = [x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "avx_vnni") if x in flags]
                    return " ".join(keep)
    except OSError:
        pass
    return "?"


def blas_lines() -> list[str]:
    if threadpoolctl is None:
        return ["threadpoolctl not installed: BLAS kernel unknown, thread limits NOT applied to NumPy"]
    lines = []
    for info in threadpoolctl.threadpool_info():
        name = os.path.basename(info.get("filepath", "?"))
        extra = ""
        if info.get("internal_api") == "openblas":
            extra = f", kernel (architecture) {info.get('architecture')}, threading {info.get('threading_layer')}"
        lines.append(f"{info.get('user_api')}: {info.get('internal_api')} {info.get('version')} ({name}), "
                     f"max threads {info.get('num_threads')}{extra}")
    return lines


def print_machine_info(title: str, threads: Sequence[int], extra_versions: Mapping[str, str] | None = None) -> None:
    print(f"== {title} ==")
    print(f"CPU              : {cpu_model()} ({cpu_flags()})")
    print(f"cores            : {os.cpu_count()} logical, {physical_cores()} physical; "
          f"affinity {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    print(f"python           : {platform.python_version()} ({sys.implementation.name}) on {platform.platform()}")
    versions = {"numpy": np.__version__}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        versions["torch"] = torch.__version__
    versions.update(extra_versions or {})
    print("versions         : " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        print(f"torch            : MKL available {torch.backends.mkl.is_available()}, "
              f"mkldnn {torch.backends.mkldnn.is_available()}, intra-op threads now {torch.get_num_threads()}")
    for line in blas_lines():
        print(f"native pool      : {line}")
    env = {k: os.environ[k] for k in BLAS_ENV if k in os.environ}
    print(f"BLAS environment : {env or 'none of ' + ', '.join(BLAS_ENV) + ' set'}")
    if "OPENBLAS_CORETYPE" in env or "OPENBLAS_L2_SIZE" in env:
        print("WARNING          : OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; they force a slower OpenBLAS kernel. "
              "Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...`.")
    print(f"dlmath source    : {git_revision()}")
    print(f"thread counts    : {list(threads)} (same count for PyTorch and NumPy's pools in each run)")
    print()


def git_revision() -> str:
    """Commit of the working tree the engine was imported from, and whether src/ has local edits."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return f"commit {rev or '?'}" + (" + uncommitted changes in src/" if dirty else "")


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run the block with ``n`` threads in PyTorch and in NumPy's native pools."""
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    ctx = threadpoolctl.threadpool_limits(limits=n) if threadpoolctl is not None else contextlib.nullcontext()
    try:
        with ctx:
            yield
    finally:
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)


Timed = Callable[[], Any]


def schedule(threads: int, block: int = 0, settle: float = -1.0) -> tuple[int, float]:
    """Block size and settle time (0 / negative: the defaults, 25 calls and 0.2 s).

    Each contender runs in blocks of consecutive timed calls, after ``settle`` seconds of
    untimed calls, for two reasons. With several threads, NumPy's OpenBLAS workers and
    PyTorch's OpenMP workers busy-wait for a while after each call (OpenBLAS for up to
    ~0.1 s), and on a machine with as many cores as threads each pool then steals the
    other's cores: a call right after the other library's calls can be several times
    slower. And with any thread count, interleaving call by call evicts each contender's
    weights and activations from the caches between its calls (one MLP step touches
    ~5 MB); measured here that adds ~0.5 ms to a 2.3 ms step, which is not what a training
    loop sees. ``threads`` is accepted so that a caller can choose per thread count.
    """
    del threads
    if block <= 0:
        block = 25
    if settle < 0:
        settle = 0.2
    return block, settle


# Guard against a shared machine: before each chunk of rounds wait until other processes are
# quiet, and throw away (and redo) a chunk during which they were not. Set by apply_guard_args.
GUARD = {"threshold": 0.15, "max_wait": 90.0, "chunk": 1.0, "max_redo_factor": 2.0}
GUARD_STATS = {"chunks": 0, "discarded": 0, "waited": 0.0, "loaded_kept": 0}


def apply_guard_args(args: argparse.Namespace) -> None:
    GUARD["threshold"] = args.quiet_threshold
    GUARD["max_wait"] = args.quiet_wait


def reset_guard_stats() -> None:
    GUARD_STATS.update(chunks=0, discarded=0, waited=0.0, loaded_kept=0)


def guard_report() -> str:
    if GUARD["threshold"] <= 0:
        return "load guard off"
    g = GUARD_STATS
    return (f"load guard: {g['chunks']} chunks kept, {g['discarded']} discarded and redone because other processes "
            f"used > {GUARD['threshold']} cores, {g['waited']:.0f} s spent waiting for quiet"
            + (f", {g['loaded_kept']} loaded chunks kept after giving up waiting" if g["loaded_kept"] else ""))


def wait_quiet() -> bool:
    """Wait (up to GUARD max_wait s) until other processes use < threshold cores over 0.5 s."""
    t_end = time.perf_counter() + GUARD["max_wait"]
    t0 = time.perf_counter()
    while True:
        with LoadMonitor() as m:
            time.sleep(0.5)
        if m.others < GUARD["threshold"]:
            GUARD_STATS["waited"] += time.perf_counter() - t0 - 0.5
            return True
        if time.perf_counter() > t_end:
            GUARD_STATS["waited"] += time.perf_counter() - t0
            return False


def time_interleaved(fns: Mapping[str, Timed], repeat: int, warmup: int, block: int = 1,
                     settle: float = 0.0) -> dict[str, dict[str, list[float]]]:
    """Time each contender ``repeat`` times after ``warmup`` untimed calls.

    Rounds: each contender in turn (the order rotating every round) runs untimed calls for
    ``settle`` seconds, then ``block`` timed calls. A contender either returns None (the
    harness times the whole call, phase "total") or a dict {phase: seconds} that it measured
    itself (e.g. forward and backward separately). Returns {name: {phase: [seconds]}}.

    Rounds are grouped into chunks of about ``GUARD['chunk']`` seconds; with the load guard on,
    each chunk starts once the machine is quiet, and a chunk during which other processes
    used more than the threshold is discarded and run again (see GUARD_STATS).
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    out: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    clock = time.perf_counter
    rounds = -(-repeat // block)
    guard = GUARD["threshold"] > 0
    redo_budget = int(GUARD["max_redo_factor"] * rounds) + 2
    r = 0
    while r < rounds:
        quiet = wait_quiet() if guard else True
        chunk: dict[str, dict[str, list[float]]] = {n: {} for n in names}
        r_start = r
        with LoadMonitor() as load:
            t_chunk = clock()
            while r < rounds and (r == r_start or clock() - t_chunk < GUARD["chunk"]):
                k = r % len(names)
                for name in names[k:] + names[:k]:
                    fn = fns[name]
                    if settle > 0:
                        t_end = clock() + settle
                        while clock() < t_end:
                            fn()
                    for _ in range(min(block, repeat - r * block)):
                        t0 = clock()
                        res = fn()
                        dt = clock() - t0
                        phases = res if isinstance(res, dict) else {"total": dt}
                        for ph, v in phases.items():
                            chunk[name].setdefault(ph, []).append(v)
                r += 1
        if guard and load.others >= GUARD["threshold"]:
            if quiet and redo_budget > 0:
                redo_budget -= r - r_start
                GUARD_STATS["discarded"] += 1
                r = r_start
                continue
            GUARD_STATS["loaded_kept"] += 1
        GUARD_STATS["chunks"] += 1
        for name in names:
            for ph, v in chunk[name].items():
                out[name].setdefault(ph, []).extend(v)
    return out


class LoadMonitor:
    """How much CPU other processes took while a measurement ran (this machine may be shared).

    ``others`` is the busy time of the whole machine minus this process's CPU time, as a
    fraction of one core, averaged over the block. Near 0: the numbers are clean.
    """

    def __enter__(self) -> LoadMonitor:
        self._t0 = time.perf_counter()
        self._busy0 = self._machine_busy()
        self._self0 = self._self_cpu()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self._t0
        busy = self._machine_busy() - self._busy0
        mine = self._self_cpu() - self._self0
        self.others = max(0.0, (busy - mine) / wall) if wall > 0 and busy == busy else float("nan")

    @staticmethod
    def _machine_busy() -> float:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
            idle = fields[3] + fields[4]
            return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            return float("nan")

    @staticmethod
    def _self_cpu() -> float:
        t = os.times()
        return t.user + t.system

    def describe(self) -> str:
        return (f"other processes used {self.others:.2f} cores on average over this whole measurement "
                f"(waits and discarded chunks included)")


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def iqr(xs: Sequence[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return q[0], q[2]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(r: Sequence[str]) -> str:
        padded = (c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    print(fmt(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(fmt(r))
