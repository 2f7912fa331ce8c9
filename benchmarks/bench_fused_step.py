"""What a fused compiled kernel would buy the recurrence: one step's element-wise work, as the
compiled loops run it (torch ops, one pass each) against the same arithmetic fused into one C
loop per step, compiled here with the system C compiler (gcc or cc: -O3 -march=native
-ffast-math, 512-bit vectors where the CPU has them, glibc's vector exp and log).

Neither side includes the step's matrix products, which are the same BLAS calls either way.
Forward: gather the drive row, add noise, leak and recurrent input, softplus, scale the first n
rates. Backward: add the rate and unit gradients, multiply by the slope f'(x) = 1 - exp(-r), add
the leaked adjoint, accumulate the gain's gradient. One thread; the two sides take turns in one
process, and each timing is the median of --repeats rounds of --steps steps.

    python benchmarks/bench_fused_step.py                 # seed shape: 835 trials, 65 units
    python benchmarks/bench_fused_step.py --trials 418    # one of two chunks (2 threads)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine

from eirnn.choices import ACTIVATIONS

RESULTS = Path(__file__).resolve().parent / "results"

FUSED_STEPS_C = r"""
#include <math.h>
#include <stdint.h>

void forward_step(int B, int N, int ns, const float* drive, const int64_t* rows, const float* noise,
                  const float* state, const float* recurrent, float leak, const float* gain,
                  float* next_state, float* rate, float* scaled) {
  for (int b = 0; b < B; b++) {
    const float* d = drive + rows[b] * N;
    int64_t o = (int64_t)b * N;
    for (int n = 0; n < N; n++) {
      float x = d[n] + noise[o + n] + leak * state[o + n] + recurrent[o + n];
      next_state[o + n] = x;
      rate[o + n] = fmaxf(logf(1.f + expf(fminf(fmaxf(x, -20.f), 20.f))), x);
    }
    for (int n = 0; n < ns; n++) scaled[(int64_t)b * ns + n] = rate[o + n] * gain[n];
  }
}

void backward_step(int B, int N, int ns, const float* from_next, const float* grad_rates,
                   const float* grad_units, const float* rate, const float* next_adjoint, float leak,
                   const float* gain, float* adjoint, float* gain_grad) {
  for (int b = 0; b < B; b++) {
    int64_t o = (int64_t)b * N, s = (int64_t)b * ns;
    for (int n = 0; n < N; n++) {
      float g = from_next[o + n] + grad_units[o + n] + (n < ns ? grad_rates[s + n] * gain[n] : 0.f);
      adjoint[o + n] = g * (1.f - expf(-rate[o + n])) + leak * next_adjoint[o + n];
    }
    for (int n = 0; n < ns; n++) gain_grad[s + n] += grad_rates[s + n] * rate[o + n];
  }
}
"""


def compile_fused_steps(folder: Path) -> ctypes.CDLL:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("no C compiler (gcc or cc) on PATH: nothing to compare")
    source, library = folder / "fused_steps.c", folder / "fused_steps.so"
    source.write_text(FUSED_STEPS_C)
    flags = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-shared"]
    if "avx512f" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False:
        flags.append("-mprefer-vector-width=512")
    subprocess.run([compiler, *flags, str(source), "-o", str(library), "-lm"], check=True)
    return ctypes.CDLL(str(library))


def compiled_torch_steps(nonlinearity: Any) -> tuple[Callable[..., None], Callable[..., None]]:
    rate_of, multiply_by_slope = nonlinearity.rate, nonlinearity.multiply_by_slope

    def forward_step(
        drive: torch.Tensor,
        rows: torch.Tensor,
        noise: torch.Tensor,
        state: torch.Tensor,
        recurrent: torch.Tensor,
        leak: float,
        gain: torch.Tensor,
        next_state: torch.Tensor,
        rate: torch.Tensor,
        scaled: torch.Tensor,
    ) -> None:
        torch.index_select(drive, 0, rows, out=next_state)
        next_state.add_(noise).add_(state, alpha=leak).add_(recurrent)
        rate_of(next_state, out=rate)
        torch.mul(rate[:, : gain.shape[0]], gain, out=scaled)

    def backward_step(
        from_next: torch.Tensor,
        grad_rates: torch.Tensor,
        grad_units: torch.Tensor,
        rate: torch.Tensor,
        next_adjoint: torch.Tensor,
        leak: float,
        gain: torch.Tensor,
        adjoint: torch.Tensor,
        gain_grad: torch.Tensor,
        slope: torch.Tensor,
    ) -> None:
        n_scaled = gain.shape[0]
        adjoint.copy_(from_next)
        adjoint[:, :n_scaled].addcmul_(grad_rates, gain)
        gain_grad.addcmul_(grad_rates, rate[:, :n_scaled])
        adjoint.add_(grad_units)
        multiply_by_slope(adjoint, rate, slope)
        adjoint.add_(next_adjoint, alpha=leak)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.script(forward_step), torch.jit.script(backward_step)


def median_microseconds(step: Callable[[], None], n_steps: int) -> float:
    started = time.perf_counter()
    for _ in range(n_steps):
        step()
    return (time.perf_counter() - started) / n_steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=835, help="trials in one chunk (default: the seed shape's 835)")
    parser.add_argument("--units", type=int, default=65)
    parser.add_argument("--scaled", type=int, default=54, help="recorded units, whose rates are scaled")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    B, N, ns, table_rows = args.trials, args.units, args.scaled, 400

    def draw(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale + shift

    softplus = ACTIVATIONS["softplus"]
    drive, noise, recurrent = draw(table_rows, N), draw(B, N, scale=0.1), draw(B, N)
    rows = torch.randint(0, table_rows, (B,), generator=generator)
    state = draw(B, N, scale=4.0, shift=-2.0)  # silent units sit far below zero
    gain, leak = torch.rand(ns, generator=generator) + 0.5, 0.9
    next_state, rate, scaled = torch.empty(B, N), torch.empty(B, N), torch.empty(B, ns)
    from_next, grad_units, grad_rates = draw(B, N), draw(B, N), draw(B, ns)
    next_adjoint, adjoint, slope = draw(B, N), torch.empty(B, N), torch.empty(B, N)
    gain_grad = torch.zeros(B, ns)

    # as the compiled loops do it (eirnn.model.recurrence: TorchScript, so the interpreter's
    # dispatch of each op counts as it does there), matrix products left out
    forward_steps_in_torch, backward_steps_in_torch = compiled_torch_steps(softplus)

    def forward_in_torch() -> None:
        forward_steps_in_torch(drive, rows, noise, state, recurrent, leak, gain, next_state, rate, scaled)

    def backward_in_torch() -> None:
        backward_steps_in_torch(
            from_next, grad_rates, grad_units, rate, next_adjoint, leak, gain, adjoint, gain_grad, slope
        )

    with tempfile.TemporaryDirectory() as folder:
        library = compile_fused_steps(Path(folder))

        def pointer(tensor: torch.Tensor) -> ctypes.c_void_p:
            return ctypes.c_void_p(tensor.data_ptr())

        def forward_fused() -> None:
            library.forward_step(
                B, N, ns, *map(pointer, (drive, rows, noise, state, recurrent)), ctypes.c_float(leak),
                *map(pointer, (gain, next_state, rate, scaled)),
            )  # fmt: skip

        def backward_fused() -> None:
            library.backward_step(
                B, N, ns, *map(pointer, (from_next, grad_rates, grad_units, rate, next_adjoint)), ctypes.c_float(leak),
                *map(pointer, (gain, adjoint, gain_grad)),
            )  # fmt: skip

        forward_in_torch()
        torch_rate = rate.clone()
        backward_in_torch()
        torch_adjoint = adjoint.clone()
        forward_fused()
        backward_fused()
        agreement = {
            "rate_max_abs_diff": float((rate - torch_rate).abs().max()),
            "adjoint_max_abs_diff": float((adjoint - torch_adjoint).abs().max()),
        }
        sides = {
            "forward_torch": forward_in_torch,
            "forward_fused": forward_fused,
            "backward_torch": backward_in_torch,
            "backward_fused": backward_fused,
        }
        rounds: dict[str, list[float]] = {name: [] for name in sides}
        for step in sides.values():
            median_microseconds(step, args.steps // 5)  # warm-up
        for _ in range(args.repeats):
            for name, step in sides.items():  # taking turns: a slow spell slows both sides alike
                rounds[name].append(median_microseconds(step, args.steps))
    microseconds = {name: round(statistics.median(values), 1) for name, values in rounds.items()}
    result = {
        "date": date.today().isoformat(),
        "machine": describe_machine(),
        "shape": {"trials": B, "units": N, "scaled_units": ns},
        "microseconds_per_step": microseconds,
        "agreement": agreement,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"bench_fused_step_{B}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
