"""MLflow models-from-code entry point of a logged eirnn model: MLflow runs this file when it
loads the model (`mlflow.pyfunc.load_model`, `mlflow models serve`); the weights come from the
model's artifacts, loaded as tensors (see eirnn.tracking.serving)."""

import mlflow

from eirnn.tracking.serving import RatePredictor

mlflow.models.set_model(RatePredictor())
