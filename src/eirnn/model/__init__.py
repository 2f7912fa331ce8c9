"""Excitatory/inhibitory (Dale's-law) leaky rate RNN, its input embeddings and fast recurrence."""

from eirnn.model.embeddings import AttentionEmbedding, LinearEmbedding, MLPEmbedding, create_embedding
from eirnn.model.network import (
    EIRNN,
    ModelOutput,
    count_units,
    create_model_for_dataset,
    create_model_from_data,
    recorded_unit_index,
)
from eirnn.model.prepared_inputs import PreparedInputs, prepare_inputs

__all__ = [
    "EIRNN",
    "AttentionEmbedding",
    "LinearEmbedding",
    "MLPEmbedding",
    "ModelOutput",
    "PreparedInputs",
    "count_units",
    "create_embedding",
    "create_model_for_dataset",
    "create_model_from_data",
    "prepare_inputs",
    "recorded_unit_index",
]
