"""invkit's C2ST beside sbibm 1.1.0's own ``c2st`` on the same sample pairs, with timings.

Pairs (each ``--n`` vs ``--n`` samples, in every dimension of ``--dims``):
``same``: two independent draws of N(0, I); ``shift``: N(0, I) against N(0.3 e_1, I);
``two_moons``: sbibm's reference posterior samples of two_moons (observation 1) against a copy
of themselves plus N(0, (k s)^2) noise, ``s`` each coordinate's std, for each k of
``--moons-noise`` (2-D only).

sbibm's function is loaded from the installed wheel's file (``pip install --no-deps
sbibm==1.1.0``; sbibm itself cannot be imported without its dependencies, and its c2st module
needs only torch, numpy and scikit-learn). Without it, only invkit's figures are printed.
Both sides get the same float32 tensors and seed, so their values should be equal.

Run pinned to one core, as the figures in the docs were:
  OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/c2st_check.py [--n 10000] [--dims 2,5,10]
      [--pairs same,shift,two_moons] [--moons-noise 0.01,0.05]
"""

from __future__ import annotations

import argparse
import bz2
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, set_threads, table  # noqa: E402

from invkit.evaluation.c2st import c2st  # noqa: E402


def sbibm_root() -> Path | None:
    spec = importlib.util.find_spec("sbibm")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def load_sbibm_c2st() -> Callable | None:
    root = sbibm_root()
    path = root / "metrics" / "c2st.py" if root is not None else None
    if path is None or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_sbibm_metrics_c2st", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.c2st


def two_moons_reference() -> torch.Tensor | None:
    root = sbibm_root()
    if root is None:
        return None
    path = (root / "tasks" / "two_moons" / "files" / "num_observation_1"
            / "reference_posterior_samples.csv.bz2")
    with bz2.open(path, "rt") as fh:
        return torch.from_numpy(np.loadtxt(fh, delimiter=",", skiprows=1).astype(np.float32))


def pairs(n: int, dims: list[int], kinds: list[str], moons_noise: list[float], seed: int
          ) -> list[tuple[str, int, torch.Tensor, torch.Tensor]]:
    out = []
    for d in dims:
        g = torch.Generator().manual_seed(seed + d)  # each pair the same whatever else runs
        a, b, c = (torch.randn(n, d, generator=g) for _ in range(3))
        shift = torch.zeros(d)
        shift[0] = 0.3
        if "same" in kinds:
            out.append(("same", d, a, b))
        if "shift" in kinds:
            out.append(("shift 0.3", d, a, c + shift))
    ref = two_moons_reference() if "two_moons" in kinds and 2 in dims else None
    if ref is not None:
        ref = ref[:n]
        for k in moons_noise:
            g = torch.Generator().manual_seed(seed)
            noisy = ref + k * ref.std(0) * torch.randn(ref.shape, generator=g)
            out.append((f"two_moons +{k:g}s", 2, ref, noisy))
    return out


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples per set")
    parser.add_argument("--dims", default="2,5,10", help="dimensions of the Gaussian pairs")
    parser.add_argument("--pairs", default="same,shift,two_moons", help="kinds of pairs")
    parser.add_argument("--moons-noise", default="0.01,0.05",
                        help="std of the noise added to the two_moons copy, in units of its std")
    parser.add_argument("--seed", type=int, default=1, help="c2st seed (sbibm's default: 1)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the sample pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--skip-sbibm", action="store_true", help="only invkit's c2st")
    args = parser.parse_args()
    set_threads(args.threads)
    header("C2ST: invkit vs sbibm 1.1.0")
    dims = [int(d) for d in args.dims.split(",")]
    theirs = None if args.skip_sbibm else load_sbibm_c2st()
    if theirs is None and not args.skip_sbibm:
        print("sbibm not installed (pip install --no-deps sbibm==1.1.0): invkit only\n")
    rows = []
    kinds = args.pairs.split(",")
    noise = [float(k) for k in args.moons_noise.split(",")]
    for name, d, a, b in pairs(args.n, dims, kinds, noise, args.data_seed):
        ours, t_ours = timed(lambda a=a, b=b: c2st(a, b, seed=args.seed))
        row = [name, d, f"{a.shape[0]} vs {b.shape[0]}", f"{ours:.4f}", f"{t_ours:.1f}"]
        if theirs is not None:
            ref, t_ref = timed(lambda a=a, b=b: float(theirs(a, b, seed=args.seed)))
            row += [f"{ref:.4f}", f"{t_ref:.1f}", f"{abs(ours - ref):.4f}"]
        rows.append(row)
        print(" | ".join(str(c) for c in row), flush=True)
    cols = ["pair", "dim", "samples", "invkit c2st", "invkit s"]
    if theirs is not None:
        cols += ["sbibm c2st", "sbibm s", "|diff|"]
    print()
    print(table(cols, rows))


if __name__ == "__main__":
    main()
