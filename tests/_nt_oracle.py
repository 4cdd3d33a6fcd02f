"""Run by the neural-tangents venv (never imported by dlmath's tests): analytic kernels of an architecture spec.

Usage: python _nt_oracle.py IN.npz OUT.npz. IN holds x1, x2 (optional), specs (JSON: name -> nested lists:
["serial", ...], ["Dense", out, W_std, b_std, parameterization], ["Relu"], ["Erf"], ["residual", block],
["FanOut", n], ["FanInSum"], ["FanInConcat"], ["parallel", ...], ["LayerNorm"], ["Flatten"],
["Dropout", drop_probability] (dlmath's meaning; neural-tangents' rate is the keep probability), ...).
Writes nngp/NAME, ntk/NAME (x1 against x2) and nngp11/NAME, ntk11/NAME (x1 with itself).
"""

import json
import sys
import types

import numpy as np

sys.modules["neural_tangents.experimental"] = types.ModuleType("neural_tangents.experimental")
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
from neural_tangents import stax  # noqa: E402

SIMPLE = {"Relu": stax.Relu, "Erf": stax.Erf, "Gelu": stax.Gelu, "Sin": stax.Sin, "Abs": stax.Abs,
          "Identity": stax.Identity, "FanInSum": stax.FanInSum, "FanInConcat": stax.FanInConcat}


def build(s):
    kind, args = s[0], s[1:]
    if kind == "serial":
        return stax.serial(*map(build, args))
    if kind == "parallel":
        return stax.parallel(*map(build, args))
    if kind == "residual":
        return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), build(args[0])), stax.FanInSum())
    if kind == "Dense":
        out, w, b, p = args
        return stax.Dense(out, W_std=w, b_std=b, parameterization=p)
    if kind == "FanOut":
        return stax.FanOut(args[0])
    if kind == "LeakyRelu":
        return stax.LeakyRelu(args[0])
    if kind == "Dropout":
        return stax.Dropout(1.0 - args[0], mode="train")
    if kind == "LayerNorm":
        return stax.LayerNorm()
    if kind == "Conv":
        out, filt, padding, w, b = args
        return stax.Conv(out, tuple(filt), padding=padding, W_std=w, b_std=b)
    if kind == "AvgPool":
        return stax.AvgPool(tuple(args[0]), padding=args[1])
    if kind == "GlobalAvgPool":
        return stax.GlobalAvgPool()
    if kind == "Flatten":
        return stax.Flatten()
    if kind == "ABRelu":
        return stax.ABRelu(*args)
    return SIMPLE[kind]()


def main():
    d = np.load(sys.argv[1])
    specs = json.loads(str(d["specs"]))
    out = {}
    for name, spec in specs.items():
        x1 = d[f"x1/{name}"] if f"x1/{name}" in d.files else d["x1"]
        x2 = d[f"x2/{name}"] if f"x2/{name}" in d.files else d["x2"] if "x2" in d.files else None
        k = build(spec)[2](x1, x2, ("nngp", "ntk"))
        out[f"nngp/{name}"], out[f"ntk/{name}"] = np.asarray(k.nngp), np.asarray(k.ntk)
        k = build(spec)[2](x1, None, ("nngp", "ntk"))
        out[f"nngp11/{name}"], out[f"ntk11/{name}"] = np.asarray(k.nngp), np.asarray(k.ntk)
    np.savez(sys.argv[2], **out)


if __name__ == "__main__":
    main()
