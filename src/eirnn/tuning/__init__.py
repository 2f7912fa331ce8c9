"""Optuna studies whose trials are nested MLflow runs.

`search_space`, `options` and `launcher` (SLURM jobs) import neither optuna nor mlflow (the CLI
builds its flags from them); the study itself is `study` (driver), `workers`, `slurm_workers`,
`summary`, `settings` and `storage`; lost workers are `dead_trials` (dead ones) and `claims`
(live ones that lost their trial).
"""
