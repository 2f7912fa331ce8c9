"""Input embeddings e(u): map an input vector u [..., n_inputs] to [..., embed_dim]."""

from __future__ import annotations

import math

import torch
from torch import nn

from eirnn.choices import EMBEDDINGS

# Every embedding takes (n_inputs, embed_dim, heads, token_dim), so that `create_embedding` builds
# each alike from its registry entry; heads and token_dim shape the attention embedding only.


class LinearEmbedding(nn.Module):
    def __init__(self, n_inputs: int, embed_dim: int, heads: int = 4, token_dim: int = 16) -> None:
        super().__init__()
        self.projection = nn.Linear(n_inputs, embed_dim)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.projection(inputs)


class MLPEmbedding(nn.Module):
    """One hidden layer of width `embed_dim` with a GELU."""

    def __init__(self, n_inputs: int, embed_dim: int, heads: int = 4, token_dim: int = 16) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_inputs, embed_dim)
        self.output = nn.Linear(embed_dim, embed_dim)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.output(torch.nn.functional.gelu(self.hidden(inputs)))


class AttentionEmbedding(nn.Module):
    """Self-attention across input channels.

    Each channel c is a token `u_c * value_embedding[c] + channel_embedding[c]`, so a token says
    both which channel it is and how strongly it is on. Multi-head self-attention mixes the
    tokens (with a residual connection); the mixed tokens are flattened and projected to
    `embed_dim`. The attention weights show which channels read which, e.g. per task condition.
    """

    def __init__(self, n_inputs: int, embed_dim: int, heads: int = 4, token_dim: int = 16) -> None:
        super().__init__()
        if token_dim % heads:
            raise ValueError(f"attention token_dim ({token_dim}) must be a multiple of attention_heads ({heads})")
        self.heads = heads
        self.head_dim = token_dim // heads
        self.value_embedding = nn.Parameter(torch.randn(n_inputs, token_dim) / math.sqrt(token_dim))
        self.channel_embedding = nn.Parameter(torch.randn(n_inputs, token_dim) / math.sqrt(token_dim))
        self.query_key_value = nn.Linear(token_dim, 3 * token_dim)
        self.projection = nn.Linear(n_inputs * token_dim, embed_dim)

    def _tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.unsqueeze(-1) * self.value_embedding + self.channel_embedding

    def _heads(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values, each [n, heads, n_inputs, head_dim]."""
        n_vectors, n_inputs, _ = tokens.shape
        split = self.query_key_value(tokens).view(n_vectors, n_inputs, 3, self.heads, self.head_dim)
        queries, keys, values = split.permute(2, 0, 3, 1, 4).unbind(0)
        return queries, keys, values

    def _weights(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.softmax(queries @ keys.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)

    def attention_weights(self, inputs: torch.Tensor) -> torch.Tensor:
        """[n_vectors, heads, n_inputs, n_inputs]: row i says how token i reads every token."""
        queries, keys, _ = self._heads(self._tokens(inputs))
        return self._weights(queries, keys)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        leading = inputs.shape[:-1]
        tokens = self._tokens(inputs.reshape(-1, inputs.shape[-1]))
        queries, keys, values = self._heads(tokens)
        mixed = (self._weights(queries, keys) @ values).transpose(1, 2).reshape(tokens.shape)
        return self.projection((tokens + mixed).flatten(1)).view(*leading, -1)


def create_embedding(kind: str, n_inputs: int, embed_dim: int, *, heads: int = 4, token_dim: int = 16) -> nn.Module:
    """The input embedding named `kind` (`TrainConfig.input_embed_type`, `eirnn.choices.EMBEDDINGS`).

    Examples
    --------
    >>> import torch
    >>> from eirnn.model.embeddings import create_embedding
    >>> embedding = create_embedding("attention", n_inputs=3, embed_dim=8, heads=2, token_dim=4)
    >>> embedding(torch.zeros(5, 3)).shape
    torch.Size([5, 8])
    """
    return EMBEDDINGS[kind](n_inputs, embed_dim, heads=heads, token_dim=token_dim)
