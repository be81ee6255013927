"""PyTorch reference definitions of the two ACCM-specific modules.

These are the modules the Swift engine loads next to the stock CLIP / LLM
checkpoints. Both are stored in a Hugging Face-like directory:

    <dir>/config.json        JSON object, keys listed below
    <dir>/model.safetensors  the module's state_dict, tensor names listed below

CaptionMapper  (ClipCap's TransformerMapper as modified by the ACCM authors)
---------------------------------------------------------------------------
config.json:
    model_type      "accm_caption_mapper"
    input_size      I   width of the input tokens (e.g. CLIP projection_dim)
    hidden_size     H   width of the produced prefix (the LLM's hidden size)
    prefix_length   P   number of produced prefix tokens
    num_layers      L
    num_heads       NH  (H must be divisible by NH)
    mlp_ratio       r   MLP width is F = int(H * r)
    layer_norm_eps  eps of every LayerNorm

tensors (all float; i in 0..L-1):
    linear.weight                                [H, I]
    linear.bias                                  [H]
    prefix_const                                 [P, H]
    transformer.layers.{i}.norm1.weight          [H]
    transformer.layers.{i}.norm1.bias            [H]
    transformer.layers.{i}.attn.to_queries.weight      [H, H]   (no bias)
    transformer.layers.{i}.attn.to_keys_values.weight  [2H, H]  (no bias)
    transformer.layers.{i}.attn.project.weight   [H, H]
    transformer.layers.{i}.attn.project.bias     [H]
    transformer.layers.{i}.norm2.weight          [H]
    transformer.layers.{i}.norm2.bias            [H]
    transformer.layers.{i}.mlp.fc1.weight        [F, H]
    transformer.layers.{i}.mlp.fc1.bias          [F]
    transformer.layers.{i}.mlp.fc2.weight        [H, F]
    transformer.layers.{i}.mlp.fc2.bias          [H]

The output rows of `to_keys_values` are laid out as [2, NH, H/NH]: rows
0..H-1 are the keys, rows H..2H-1 the values, each split into heads in order.
There are no positional embeddings, no attention mask and no final LayerNorm.

CaptionSelector
---------------
config.json:
    model_type         "accm_caption_selector"
    hidden_size        D
    num_heads          NH
    intermediate_size  F
    num_layers         L
    layer_norm_eps     eps of every LayerNorm
    hidden_act         "gelu" (exact, erf-based)

tensors (all float; i in 0..L-1), PyTorch nn.TransformerEncoderLayer naming:
    transformer.layers.{i}.self_attn.in_proj_weight   [3D, D]  rows: q, k, v
    transformer.layers.{i}.self_attn.in_proj_bias     [3D]
    transformer.layers.{i}.self_attn.out_proj.weight  [D, D]
    transformer.layers.{i}.self_attn.out_proj.bias    [D]
    transformer.layers.{i}.linear1.weight             [F, D]
    transformer.layers.{i}.linear1.bias               [F]
    transformer.layers.{i}.linear2.weight             [D, F]
    transformer.layers.{i}.linear2.bias               [D]
    transformer.layers.{i}.norm1.weight               [D]
    transformer.layers.{i}.norm1.bias                 [D]
    transformer.layers.{i}.norm2.weight               [D]
    transformer.layers.{i}.norm2.bias                 [D]
    head.weight                                       [1, D]
    head.bias                                         [1]

Each layer is pre-norm (norm_first=True):
    x = x + self_attn(norm1(x));  x = x + linear2(gelu(linear1(norm2(x))))
There is no positional encoding, no mask and no final LayerNorm after the
last layer; the head maps every candidate to one logit (no softmax).
"""

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    """ClipCap's self-attention (separate query and fused key/value projections)."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scale = self.head_dim**-0.5
        self.to_queries = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_keys_values = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.project = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        q = self.to_queries(x).reshape(b, n, self.num_heads, self.head_dim)
        kv = self.to_keys_values(x).reshape(b, n, 2, self.num_heads, self.head_dim)
        k, v = kv[:, :, 0], kv[:, :, 1]
        scores = torch.einsum("bnhd,bmhd->bnmh", q, k) * self.scale
        attention = scores.softmax(dim=2)
        out = torch.einsum("bnmh,bmhd->bnhd", attention, v).reshape(b, n, h)
        return self.project(out)


class MLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerLayer(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, layer_norm_eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attn = MultiHeadAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = MLP(hidden_size, int(hidden_size * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, hidden_size, num_layers, num_heads, mlp_ratio, layer_norm_eps):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(hidden_size, num_heads, mlp_ratio, layer_norm_eps) for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class CaptionMapper(nn.Module):
    """Maps N input tokens to `prefix_length` LLM prefix embeddings.

    The input tokens are projected to `hidden_size`, the learned prefix
    constants are appended after them, and after the transformer only the
    outputs at the prefix positions are returned.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        prefix_length: int,
        num_layers: int,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.prefix_length = prefix_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_eps = layer_norm_eps
        self.linear = nn.Linear(input_size, hidden_size)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, hidden_size))
        self.transformer = Transformer(hidden_size, num_layers, num_heads, mlp_ratio, layer_norm_eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, input_size] -> prefix [B, prefix_length, hidden_size]"""
        n = tokens.shape[1]
        x = self.linear(tokens)
        prefix = self.prefix_const.unsqueeze(0).expand(x.shape[0], -1, -1)
        x = self.transformer(torch.cat([x, prefix], dim=1))
        return x[:, n:]

    def config(self) -> dict:
        return {
            "model_type": "accm_caption_mapper",
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "prefix_length": self.prefix_length,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "layer_norm_eps": self.layer_norm_eps,
        }


class CaptionSelector(nn.Module):
    """Scores C candidate caption embeddings jointly; returns one logit per candidate."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, num_layers: int, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.d_model = d_model
        self.nhead = nhead
        self.dim_feedforward = dim_feedforward
        self.num_layers = num_layers
        self.layer_norm_eps = layer_norm_eps
        layer = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward,
            dropout=0.1,
            activation="gelu",
            norm_first=True,
            batch_first=True,
            layer_norm_eps=layer_norm_eps,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, d_model] -> scores [B, C]"""
        return self.head(self.transformer(x)).squeeze(-1)

    def config(self) -> dict:
        return {
            "model_type": "accm_caption_selector",
            "hidden_size": self.d_model,
            "num_heads": self.nhead,
            "intermediate_size": self.dim_feedforward,
            "num_layers": self.num_layers,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": "gelu",
        }
