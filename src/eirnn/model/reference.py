"""Plain reference implementation of EIRNN, kept to check and time the fused path against.

`ReferenceEIRNN` has EIRNN's constructor, parameters and equations (state dicts load both ways),
but runs the textbook way: a Python loop over time, autograd through every step, the embedding
applied to every step's inputs. tests/test_model_fast_path.py checks the fused path against it;
benchmarks/bench_epoch.py times both. It is not used in training.
"""

from __future__ import annotations

import torch

from eirnn.model.network import EIRNN, ModelOutput
from eirnn.model.prepared_inputs import PreparedInputs


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
        nonlinearity = self.nonlinearity.rate
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
