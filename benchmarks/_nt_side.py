"""Run by the neural-tangents venv (bench_kernels.py starts it): times neural-tangents on the benchmark's cases.

Prints one JSON object: {case: {"compile_s": first call, "times": [seconds of later calls]}}.
"""

import json
import sys
import time
import types

import numpy as np

sys.modules["neural_tangents.experimental"] = types.ModuleType("neural_tangents.experimental")
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402


def timed(fn, repeat):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return {"compile_s": first, "times": times}


def main():
    cfg = json.loads(sys.argv[1])
    out = {}
    layers = []
    for _ in range(5):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.05))
    kfn = jax.jit(kernel_fn, static_argnames="get")
    for n in cfg["ns"]:
        for dt in cfg["dtypes"]:
            x = jnp.asarray(np.random.default_rng(0).standard_normal((n, 64)), dtype=dt)
            out[f"analytic/{n}/{dt}"] = timed(lambda: kfn(x, None, ("nngp", "ntk")), cfg["repeat"])
    w = 512
    init_fn, apply_fn, _ = stax.serial(stax.Dense(w), stax.Relu(), stax.Dense(w), stax.Relu(), stax.Dense(1))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((256, 64)), dtype="float32")
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    params = jax.tree_util.tree_map(lambda a: a.astype("float32"), params)   # x64 is on for (a); this case is float32
    for impl in (3,):
        # vmap_axes=0 (the batch axis): without it implementation 3 is ~200x slower on CPU
        f = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=impl, vmap_axes=0))
        out[f"empirical/impl{impl}"] = timed(lambda: f(x, None, params), cfg["repeat"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
