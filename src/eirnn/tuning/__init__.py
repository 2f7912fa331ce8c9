"""Optuna studies whose trials are nested MLflow runs.

`search_space` and `options` import neither optuna nor mlflow (the CLI builds its flags from them);
the study itself is `study` (driver), `workers`, `summary`, `settings` and `storage`.
"""
