"""Optuna studies whose trials are nested MLflow runs (imports optuna only in `study`)."""
