"""The first `norm_first=True` encoder layer of PyTorch (pytorch/pytorch#61165), trimmed.

`normlint check examples/` reports the bug; the fix is in pytorch#61165's PR:
`x = x + self._sa_block(self.norm1(x))`.
"""
import torch.nn as nn
import torch.nn.functional as F


class EncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src):
        src = self.norm1(src)
        src = src + self.dropout1(self.self_attn(src, src, src)[0])
        src = self.norm2(src)
        src = src + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(src)))))
        return src
