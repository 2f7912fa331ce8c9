"""Optuna studies as nested MLflow runs, on a tiny recording, a temp SQLite tracking store and
the default journal storage in the test's working folder."""

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
import yaml
from conftest import REPO, small_flags, small_settings, tiny_recording
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback

from eirnn.config import ConfigError, TrainConfig, mlproject_default
from eirnn.logged_names import ERROR_TAG, SELECTION_METRIC, TRIAL_STATE_TAG, TRIAL_TAG, study_metric
from eirnn.tracking.model_registry import CHAMPION
from eirnn.tuning.search_space import (
    default_search_space,
    load_search_space,
    suggest_settings,
    validate_search_space,
)
from eirnn.tuning.settings import PARENT_RUN_ATTR, WORKER_ATTR, PrunerSettings, StudySettings
from eirnn.tuning.storage import DEFAULT_JOURNAL_FILE, open_storage
from eirnn.tuning.study import run_study
from eirnn.tuning.workers import split_trials

SMALL = small_settings(experiment_name="tuning")
# learning rates over four decades: the slow end is clearly worse after a few epochs, so the
# median pruner has something to prune
WIDE_SPACE = {
    "learning_rate": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True},
    "tau": {"type": "float", "low": 25.0, "high": 200.0, "log": True},
}
AGGRESSIVE = PrunerSettings("median", startup_trials=1, warmup_epochs=1)
MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


@pytest.fixture(scope="module")
def tiny_dataset():
    dataset, _ = tiny_recording(0)
    return dataset


def child_runs(client: MlflowClient, parent_run_id: str) -> list:
    parent = client.get_run(parent_run_id)
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    )


def artifact_names(client: MlflowClient, run_id: str, path: str) -> set[str]:
    return {item.path.rsplit("/", 1)[-1] for item in client.list_artifacts(run_id, path)}


def load_trials(study_name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study_name, storage=open_storage("")).trials


def assert_children_match_trials(client, parent_run_id, trials) -> dict:
    """One child run per trial, tagged with its number and state, status mapped from the state."""
    children = {int(run.data.tags[TRIAL_TAG]): run for run in child_runs(client, parent_run_id)}
    assert sorted(children) == [trial.number for trial in trials]
    for trial in trials:
        run = children[trial.number]
        assert run.data.tags[TRIAL_STATE_TAG] == trial.state.name
        assert run.info.status == MLFLOW_STATUS[trial.state.name]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        # a short name; the searched settings are the run's params
        assert run.info.run_name == f"trial-{trial.number}"
        for name, value in trial.params.items():
            assert run.data.params[name] == mlproject_default(value)
    return children


def test_study_nests_trials_prunes_and_registers_the_best(tracking_store, tiny_dataset):
    config = TrainConfig(max_epochs=6, seed=0, **SMALL)
    settings = StudySettings(study_name="wide-lr", n_trials=6, search_space=WIDE_SPACE, pruner=AGGRESSIVE)
    outcome = run_study(config, settings, dataset=tiny_dataset)

    client = MlflowClient()
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "wide-lr"
    assert parent.data.tags["eirnn.tuning.study"] == "wide-lr"
    assert parent.data.tags["eirnn.tuning.storage"] == "journal"

    trials = load_trials("wide-lr")
    assert len(trials) == 6
    children = assert_children_match_trials(client, outcome.parent_run_id, trials)
    assert any(trial.state.name == "PRUNED" for trial in trials)
    for trial in trials:  # a pruned trial's value in Optuna is its run's best, as for the others
        if trial.state.name in ("PRUNED", "COMPLETE"):
            run_best = children[trial.number].data.metrics[SELECTION_METRIC]
            assert trial.value == pytest.approx(run_best), trial.number

    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert outcome.best_trial == best.number
    assert parent.data.metrics[study_metric("best_value")] == pytest.approx(best.value)
    for name, value in best.params.items():
        assert float(parent.data.params[f"best.{name}"]) == pytest.approx(value)
    assert parent.data.metrics[study_metric("trials_pruned")] == sum(t.state.name == "PRUNED" for t in trials)
    assert optuna.load_study(study_name="wide-lr", storage=open_storage("")).metric_names == [SELECTION_METRIC]
    assert f"best trial {best.number}: {SELECTION_METRIC} {best.value:.3f}" in parent.data.tags["mlflow.note.content"]

    tuning_files = artifact_names(client, outcome.parent_run_id, "tuning")
    assert {"trials.csv", "search_space.yaml", "optimization_history.png", "parallel_coordinate.png"} <= tuning_files
    assert "param_importances.png" in tuning_files or "notes.txt" in tuning_files
    table = mlflow.artifacts.download_artifacts(run_id=outcome.parent_run_id, artifact_path="tuning/trials.csv")
    with open(table) as handle:
        assert len(list(csv.DictReader(handle))) == 6

    champion = client.get_model_version_by_alias(config.registered_model_name, CHAMPION)
    assert champion.run_id == children[best.number].info.run_id
    assert str(champion.version) == str(outcome.champion_version) == outcome.model_version


def test_a_diverging_trial_fails_alone(tracking_store, tiny_dataset):
    study = optuna.create_study(study_name="diverge", storage=open_storage(""), direction="maximize")
    study.enqueue_trial({"learning_rate": 1.0e6})
    config = TrainConfig(max_epochs=3, **SMALL)
    space = {"learning_rate": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True}}
    settings = StudySettings(study_name="diverge", n_trials=3, search_space=space, pruner=PrunerSettings("none"))
    outcome = run_study(config, settings, dataset=tiny_dataset)

    trials = load_trials("diverge")
    assert [trial.state.name for trial in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    client = MlflowClient()
    children = assert_children_match_trials(client, outcome.parent_run_id, trials)
    assert "diverged" in children[0].data.tags["eirnn.error"]
    assert outcome.best_trial in (1, 2)
    assert client.get_run(outcome.parent_run_id).info.status == "FINISHED"


def test_local_workers_share_one_study_exactly(tracking_store, tiny_dataset):
    config = TrainConfig(max_epochs=3, **SMALL)
    space = {"learning_rate": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True}}
    settings = StudySettings(
        study_name="two-workers", n_trials=4, n_workers=2, search_space=space, pruner=PrunerSettings("none")
    )
    outcome = run_study(config, settings, dataset=tiny_dataset)

    trials = load_trials("two-workers")
    assert len(trials) == 4 and all(trial.state.name == "COMPLETE" for trial in trials)
    assert_children_match_trials(MlflowClient(), outcome.parent_run_id, trials)
    assert len({trial.params["learning_rate"] for trial in trials}) == 4  # workers sample differently


def test_mlflow_run_tune_makes_the_launcher_run_the_parent_and_a_rerun_resumes(tracking_store, tiny_recording_file):
    space_file = tracking_store / "space.yaml"
    # `1e-3` without a dot is a string to YAML: the loader must still read it as a number
    space_file.write_text("learning_rate: {type: float, low: 1e-3, high: 1.0e-2, log: true}\n")
    common = {
        "data": str(tiny_recording_file),
        "max_epochs": 3,
        "input_embed_dim": 8,
        "attention_heads": 2,
        "threads": 1,
        "log_figures": "false",
        "study_name": "resumed",
        "search_space": str(space_file),
        "pruner": "none",
    }
    submitted = mlflow.projects.run(
        str(REPO),
        entry_point="tune",
        parameters={**common, "n_trials": 2},
        # named: an earlier test's mlflow.set_experiment leaves an experiment id of another store active
        experiment_name="tune-project",
        env_manager="local",
        synchronous=True,
    )
    client = MlflowClient()
    launcher = client.get_run(submitted.run_id)
    assert launcher.info.status == "FINISHED" and launcher.info.run_name == "resumed"
    assert len(child_runs(client, submitted.run_id)) == 2
    assert "best.learning_rate" in launcher.data.params

    flags = [f"--{key.replace('_', '-')}={value}" for key, value in common.items()]
    subprocess.run([sys.executable, "-m", "eirnn.cli", "tune", *flags, "--n-trials=1"], check=True, timeout=300)
    trials = load_trials("resumed")
    assert len(trials) == 3
    second_parent = {trial.user_attrs["mlflow_parent_run_id"] for trial in trials} - {submitted.run_id}
    assert len(second_parent) == 1
    assert_children_match_trials(client, second_parent.pop(), trials[2:])


def test_search_space_draws_embeddings_that_the_heads_divide(tiny_dataset):
    base = TrainConfig(**SMALL)
    space = validate_search_space(
        {
            "attention_heads": {"type": "categorical", "choices": [1, 2, 3, 4]},
            "input_embed_dim": {"type": "int", "low": 6, "high": 30, "step": 2},
            "tau": {"type": "float", "low": "30", "high": 1.0e2, "log": True},
        },
        base,
        tiny_dataset,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        values = suggest_settings(study.ask(), space, base)
        assert values["input_embed_dim"] % values["attention_heads"] == 0 and values["input_embed_dim"] % 2 == 0
        assert 6 <= values["input_embed_dim"] <= 30 and 30.0 <= values["tau"] <= 100.0
        base.replace(**values)  # a valid TrainConfig


def test_default_search_space_fits_the_data(tiny_dataset):
    space = validate_search_space(default_search_space(tiny_dataset), TrainConfig(), tiny_dataset)
    assert space["tau"]["low"] >= tiny_dataset.bin_ms
    assert "poisson" in space["loss"]["choices"]
    rates_only = dataclasses.replace(tiny_dataset, counts=None, rates=tiny_dataset.rates_hz)
    assert "poisson" not in default_search_space(rates_only)["loss"]["choices"]
    with pytest.raises(ConfigError, match="spike counts"):
        validate_search_space(default_search_space(tiny_dataset), TrainConfig(), rates_only)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"tau_ms": {"type": "float", "low": 30, "high": 60}}, "not a TrainConfig setting"),
        ({"tau": {"type": "float", "low": 30}}, "takes"),
        ({"tau": {"type": "float", "low": 60, "high": 30}}, "above high"),
        ({"tau": {"type": "float", "low": 5, "high": 60}}, "bin size"),
        ({"loss": {"type": "float", "low": 0, "high": 1}}, "expected a mapping with type"),
        ({"input_embed_dim": {"type": "int", "low": 9, "high": 9}}, "no multiple of 2"),
        ({"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}}, "log"),
        (
            {
                "input_embed_dim": {"type": "categorical", "choices": [8, 12]},
                "attention_heads": {"type": "int", "low": 2, "high": 4},
            },
            "divide",
        ),
        ({"learnable_h0": {"type": "categorical", "choices": [True, "maybe"]}}, "learnable_h0"),
        ({"lr_schedule": {"type": "categorical", "choices": ["constant", "step"]}}, r"\['step'\] not among constant"),
    ],
)
def test_search_space_errors_name_the_setting(space, message, tiny_dataset):
    with pytest.raises(ConfigError, match=message):
        validate_search_space(space, TrainConfig(**SMALL), tiny_dataset)


def test_heads_need_not_divide_the_embedding_without_attention(tiny_dataset):
    linear = TrainConfig(input_embed_type="linear", input_embed_dim=10, attention_heads=4)
    validate_search_space({"tau": {"type": "float", "low": 30, "high": 60}}, linear, tiny_dataset)


def test_search_space_file_has_the_default_format(tmp_path, tiny_dataset):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(default_search_space(tiny_dataset)))
    assert load_search_space(path) == default_search_space(tiny_dataset)


@pytest.mark.parametrize("n_trials, n_workers", [(8, 2), (7, 3), (2, 4), (0, 2)])
def test_trials_split_exactly_across_workers(n_trials, n_workers):
    shares = split_trials(n_trials, n_workers)
    assert sum(shares) == n_trials and all(share > 0 for share in shares) and len(shares) <= n_workers


def test_halving_pruner_keeps_the_top_third_at_each_rung_of_the_default_budget():
    pruner = PrunerSettings("halving").build(max_epochs=2000)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def pruned_at(value: float) -> int | None:
        """First epoch at which a trial scoring `value` every epoch is pruned (None: never)."""
        trial = study.ask()
        for epoch in range(500):
            trial.report(value, epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return epoch
        study.tell(trial, value)
        return None

    assert pruned_at(0.5) is None  # the first trial at every rung leads it
    assert pruned_at(0.4) == 50  # below the leader at the first rung (2000 / 40 epochs)
    assert pruned_at(0.3) == 50
    assert pruned_at(0.6) is None  # the best so far, at 50, 150 and 450 epochs
    assert PrunerSettings("median").first_rung(2000) == 200


def test_a_new_study_starts_from_the_given_settings_and_a_resumed_one_does_not(tracking_store, tiny_dataset):
    space = {**WIDE_SPACE, "weight_decay": {"type": "float", "low": 1.0e-8, "high": 1.0e-3, "log": True}}
    config = TrainConfig(max_epochs=2, seed=0, learning_rate=0.003, tau=60.0, **SMALL)
    given = {"learning_rate": 0.003, "tau": 60.0, "weight_decay": 1.0e-8}  # 0 lies below the log range
    settings = StudySettings(study_name="given", n_trials=2, search_space=space, pruner=PrunerSettings("none"))
    run_study(config, settings, dataset=tiny_dataset)
    run_study(config, dataclasses.replace(settings, n_trials=1), dataset=tiny_dataset)  # resumes the study
    trials = load_trials("given")
    assert trials[0].params == given and trials[0].user_attrs["eirnn.first_trial"] == "given"
    assert all(
        trial.params["learning_rate"] != 0.003 and not trial.user_attrs.get("eirnn.first_trial") for trial in trials[1:]
    )

    sampled = dataclasses.replace(settings, study_name="sampled", n_trials=1, first_trial="sampled")
    run_study(config, sampled, dataset=tiny_dataset)
    assert load_trials("sampled")[0].params["learning_rate"] != 0.003
    with pytest.raises(ConfigError, match="first-trial"):
        run_study(config, dataclasses.replace(settings, first_trial="best"), dataset=tiny_dataset)


def test_given_settings_move_onto_the_search_space_and_say_so(tiny_dataset):
    from eirnn.tuning.first_trial import given_point

    space = {
        "attention_heads": {"type": "categorical", "choices": [2, 4]},
        "input_embed_dim": {"type": "int", "low": 16, "high": 40, "step": 8},
        "noise_scale": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.05},
        "input_embed_type": {"type": "categorical", "choices": ["linear", "mlp"]},
    }
    base = TrainConfig(attention_heads=4, input_embed_dim=44, noise_scale=0.12)
    point, notes = given_point(validate_search_space(space, base, tiny_dataset), base)
    assert point == {"attention_heads": 4, "input_embed_dim": 40, "noise_scale": pytest.approx(0.1)}
    assert any(note.startswith("input_embed_dim 44 -> 40") for note in notes)
    assert any("input_embed_type 'attention' is not among the choices" in note for note in notes)


def test_one_worker_on_every_core_is_told_about_one_worker_per_core(tracking_store, tiny_dataset, capsys):
    config = TrainConfig(max_epochs=1, **{**SMALL, "threads": 0})
    settings = StudySettings(study_name="hint", n_trials=2, search_space=WIDE_SPACE, pruner=PrunerSettings("none"))
    run_study(config, settings, dataset=tiny_dataset)
    cores = os.cpu_count() or 1
    assert (f"--n-workers {cores} runs {cores} trials at a time" in capsys.readouterr().out) == (cores > 1)
    run_study(config.replace(threads=1), dataclasses.replace(settings, study_name="no-hint"), dataset=tiny_dataset)
    assert "hint:" not in capsys.readouterr().out


@pytest.mark.slow
def test_a_local_worker_killed_mid_trial_leaves_its_trial_to_the_lead(tracking_store, tiny_recording_file):
    """`eirnn tune --n-workers 2` on the default journal file (no heartbeats): one worker process
    is SIGKILLed in the middle of a trial, the way the kernel's out-of-memory killer ends it. The
    lead fails that trial, ends its child run FAILED, queues its settings again and runs what is
    left itself: every trial of the parent finishes, none stays RUNNING."""
    space = tracking_store / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n")
    flags = small_flags(
        data=str(tiny_recording_file),
        experiment_name="killed",
        study_name="killed",
        search_space=str(space),
        pruner="none",
        n_trials=3,
        n_workers=2,
        max_epochs=1000,  # trials of several seconds: the kill lands mid-trial
        patience=1000,
    )
    lead = subprocess.Popen(
        [sys.executable, "-m", "eirnn.cli", "tune", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline, victim, journal = time.monotonic() + 300, None, tracking_store / DEFAULT_JOURNAL_FILE
    while victim is None and time.monotonic() < deadline:
        assert lead.poll() is None, lead.stdout.read()[-3000:]
        if journal.exists() and "killed" in optuna.get_all_study_names(open_storage("")):
            running = [t for t in load_trials("killed") if t.state.name == "RUNNING" and WORKER_ATTR in t.user_attrs]
            victim = running[0] if running else None
        time.sleep(0.5)
    assert victim is not None, "no trial started within 300 s"
    time.sleep(1)  # some epochs into the trial, which is still running:
    victim = next(t for t in load_trials("killed") if t.number == victim.number)
    assert victim.state.name == "RUNNING"
    os.kill(int(victim.user_attrs[WORKER_ATTR].rsplit(":", 1)[1]), signal.SIGKILL)
    output, _ = lead.communicate(timeout=600)
    assert lead.returncode == 0, output[-3000:]
    assert "was killed by SIGKILL; 1 trial(s) queued again" in output

    trials = load_trials("killed")
    assert next(t for t in trials if t.number == victim.number).state.name == "FAIL"
    reruns = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert [(t.state.name, t.params) for t in reruns] == [("COMPLETE", victim.params)]
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3
    client = MlflowClient()
    parent_run_id = victim.user_attrs[PARENT_RUN_ATTR]
    children = {int(run.data.tags[TRIAL_TAG]): run for run in child_runs(client, parent_run_id)}
    assert not [run for run in children.values() if run.info.status == "RUNNING"]
    assert children[victim.number].info.status == "FAILED"
    assert "killed by SIGKILL" in children[victim.number].data.tags[ERROR_TAG]
    assert client.get_run(parent_run_id).info.status == "FINISHED"
