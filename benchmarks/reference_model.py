"""Plain reference implementation of EIRNN, and a timing comparison against the fused path.

`ReferenceEIRNN` has EIRNN's constructor, parameters and equations (state dicts load both ways),
but runs the textbook way: a Python loop over time, autograd through every step, the embedding
applied to every step's inputs. Tests check the fused path against it; the timing compares both.

    python benchmarks/reference_model.py --threads 1 2 --epochs 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from eirnn.model import EIRNN, ModelOutput, PreparedInputs, prepare_inputs

NONLINEARITIES = {"softplus": F.softplus, "relu": F.relu}


class ReferenceEIRNN(EIRNN):
    def forward(
        self,
        inputs: torch.Tensor | PreparedInputs,
        noise: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> ModelOutput:
        if isinstance(inputs, PreparedInputs):
            inputs = inputs.dense()
        batch_size, n_steps, _ = inputs.shape
        nonlinearity = NONLINEARITIES[self.activation]
        weights = self.effective_recurrent_weights()
        xi = self.draw_noise(batch_size, n_steps, generator) if self.uses_noise(noise) else None
        x = self.h0.expand(batch_size, self.n_units)
        r = nonlinearity(x)
        unit_rates = []
        for step in range(n_steps):
            drive = self.input_projection(self.embedding(inputs[:, step]))
            x = (1 - self.alpha) * x + self.alpha * (r @ weights.T + drive)
            if xi is not None:
                x = x + self.noise_std * xi[:, step]
            r = nonlinearity(x)
            unit_rates.append(r)
        units = torch.stack(unit_rates, dim=1)
        behavior = None if self.readout is None else self.readout(units[..., : self.n_e])
        return ModelOutput(rates=units[..., self.recorded_units] * self.rate_gain, units=units, behavior=behavior)


def task_inputs(n_trials: int, n_steps: int, n_inputs: int, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant inputs like a reach task's: a condition cue from 10% of the trial, a go
    signal (last channel) from half way."""
    generator = torch.Generator().manual_seed(seed)
    n_conditions = n_inputs - 1
    condition = torch.randint(n_conditions, (n_trials,), generator=generator)
    inputs = torch.zeros(n_trials, n_steps, n_inputs)
    inputs[torch.arange(n_trials), n_steps // 10 :, condition] = 1.0
    inputs[:, n_steps // 2 :, -1] = 1.0
    return inputs


def seconds_per_epoch(model: EIRNN, inputs: torch.Tensor | PreparedInputs, targets: torch.Tensor, epochs: int) -> float:
    """Median wall time of forward (noise on) + MSE + backward + Adam step, after one warm-up."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for _ in range(epochs + 1):
        started = time.perf_counter()
        loss = F.mse_loss(model(inputs, generator=generator).rates, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=835)
    parser.add_argument("--steps", type=int, default=219)
    parser.add_argument("--n-e", type=int, default=41)
    parser.add_argument("--n-i", type=int, default=13)
    parser.add_argument("--inputs", type=int, default=14)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--embeddings", nargs="+", default=["attention", "linear", "mlp"])
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    inputs = task_inputs(args.trials, args.steps, args.inputs)
    prepared = prepare_inputs(inputs)
    targets = torch.rand(args.trials, args.steps, args.n_e + args.n_i) * 20
    for threads in args.threads:
        torch.set_num_threads(threads)
        for embedding in args.embeddings:
            hparams = dict(n_classic=args.n_e, n_interneuron=args.n_i, n_inputs=args.inputs, input_embed_type=embedding, seed=0)
            fast = seconds_per_epoch(EIRNN(**hparams), prepared, targets, args.epochs)
            line = f"threads={threads} {embedding:9s} fused {fast:.3f} s/epoch"
            if not args.skip_reference:
                reference = seconds_per_epoch(ReferenceEIRNN(**hparams), inputs, targets, args.epochs)
                line += f"  reference {reference:.3f} s/epoch  speed-up {reference / fast:.1f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
