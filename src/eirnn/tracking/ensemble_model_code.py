"""MLflow models-from-code entry point of a logged eirnn ensemble (eirnn.tracking.serving)."""

import mlflow

from eirnn.tracking.serving import EnsemblePredictor

mlflow.models.set_model(EnsemblePredictor())
