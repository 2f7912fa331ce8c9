"""Seconds to load an NWB session of MC_Maze size (units x trials, 1 kHz hand velocity) with
`eirnn.data.load_dataset`: spikes binned around movement onset, conditions from two trials
columns, hand velocity averaged into the bins.

    python benchmarks/bench_nwb_load.py [--units 182] [--trials 2000] [--repeats 3]

The file is written once with pynwb into a temporary folder (not timed); the load is timed
`--repeats` times in one process and the median reported. Results: results/bench_nwb_load.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_nwb_load.json"
TRIAL_S = 2.5
RATE_HZ = 15.0


def write_session(path: Path, n_units: int, n_trials: int, seed: int = 0) -> int:
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.testing.mock.file import mock_NWBFile

    rng = np.random.default_rng(seed)
    start = TRIAL_S * np.arange(n_trials)
    move = start + rng.uniform(0.8, 1.6, n_trials)
    end = start[-1] + TRIAL_S
    nwbfile = mock_NWBFile(session_description="benchmark session", identifier="bench")
    n_spikes = 0
    for _ in range(n_units):
        times = np.sort(rng.uniform(0, end, rng.poisson(RATE_HZ * end)))
        n_spikes += len(times)
        nwbfile.add_unit(spike_times=times)
    for name in ("move_onset_time", "trial_type", "trial_version"):
        nwbfile.add_trial_column(name, name)
    types, versions = rng.integers(1, 28, n_trials), rng.integers(0, 3, n_trials)
    for trial in range(n_trials):
        nwbfile.add_trial(
            start_time=start[trial],
            stop_time=start[trial] + TRIAL_S,
            move_onset_time=move[trial],
            trial_type=types[trial],
            trial_version=versions[trial],
        )
    velocity = rng.standard_normal((int(end * 1000), 2))
    module = nwbfile.create_processing_module("behavior", "hand")
    module.add(TimeSeries(name="hand_vel", data=velocity, unit="m/s", rate=1000.0, starting_time=0.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return n_spikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=182)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from eirnn.data import load_dataset

    settings = dict(
        align="move_onset_time",
        window_ms="-250,450",
        bin_ms=5,
        condition="trial_type,trial_version",
        behavior="hand_vel",
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "session.nwb"
        n_spikes = write_session(path, args.units, args.trials)
        seconds = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            dataset = load_dataset(path, **settings)
            seconds.append(time.perf_counter() - began)
        size_mb = path.stat().st_size / 1e6
    result = {
        "units": args.units,
        "trials": args.trials,
        "spikes": n_spikes,
        "file_mb": round(size_mb, 1),
        "settings": settings,
        "shape": list(dataset.counts.shape),
        "conditions": dataset.n_conditions,
        "load_s": [round(s, 3) for s in seconds],
        "median_s": round(float(np.median(seconds)), 3),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
