"""A small model file with one site for every mutator of evaluation/mutators.py (read, never run)."""
import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        ms = x.pow(2).mean(-1, keepdim=True)
        return (x * torch.rsqrt(ms + self.eps)).to(dtype) * self.weight


class LayerNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(d))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.g


class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = RMSNorm(d)
        self.out = nn.Linear(d, d)

    def forward(self, x, attention_mask=None):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = self.q_norm(q)
        k = F.normalize(k, dim=-1)
        w = (q @ k.transpose(-1, -2)).softmax(-1)
        return self.out(w @ v)


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = Attention(d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Linear(d, d)

    def forward(self, x, attention_mask=None):
        h = self.norm1(x)
        x = x + self.attn(h, attention_mask)
        x = x + self.ff(self.norm2(x))
        return x


class Encoder(nn.Module):
    def __init__(self, d, depth=4):
        super().__init__()
        self.layers = nn.ModuleList(
            [Block(d) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(d)

    def forward(self, x, attention_mask=None):
        for layer in self.layers:
            x = layer(x, attention_mask)
        x = self.norm(x)
        return x


class ConvBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn(self.conv(x))


class PostNormEncoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, 4)
        self.encoder = nn.TransformerEncoder(layer, num_layers=6)

    def forward(self, x):
        return self.encoder(x)


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
