"""The two network architectures: ``paper`` (the published one) and ``wbnet`` (the default).

Both map a batch of crops ``(B, 1, H, W)`` holding T x T patches plus ``context`` pixels of
surroundings on each side to two logits per patch, class index 0 = weak beam, 1 = strong beam
(:meth:`tile_logits`), and a whole (padded, normalised) frame to per-patch logits
(:meth:`frame_logits`). Training and inference see exactly the same pixels around each patch.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("scanwb", "wbnet", "paper")


def _overlap_weights(n_cells: int, stride: int, starts: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Area weights (len(starts), n_cells): the share of each cell of a stride-``stride`` map that
    falls inside the pixel interval [start, start + patch_size), normalised to sum to one."""
    cell0 = torch.arange(n_cells, dtype=torch.float32) * stride
    a = torch.maximum(starts[:, None].float(), cell0[None, :])
    b = torch.minimum(starts[:, None].float() + patch_size, cell0[None, :] + stride)
    w = (b - a).clamp(min=0)
    return w / w.sum(dim=1, keepdim=True).clamp(min=1e-12)


class WBNet(nn.Module):
    """Patch-size-independent depthwise-separable network, run fully convolutionally.

    A 4x4 stride-4 stem, two strided depthwise-separable blocks and one more at stride 16, all with
    batch norm, then a 1x1 head giving two logits per 16x16 cell. The logits of the cells a patch
    covers are averaged (area-weighted, exact for any patch size), which equals global average
    pooling of the features followed by a linear layer. ~4 k parameters.
    """

    stride = 16

    def __init__(self, width: int = 16, context: int = 32, dropout: float = 0.1):
        super().__init__()
        w = int(width)
        c1, c2, c3, c4 = w, (3 * w) // 2, 2 * w, 3 * w
        self.hparams = {"width": w, "context": int(context), "dropout": float(dropout)}
        self.context = int(context)

        def sep(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=4, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            sep(c1, c2, 2),
            sep(c2, c3, 2),
            sep(c3, c4, 1),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(c4, 2, 1)

    def cell_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 48, ceil(H/16), ceil(W/16)) features per 16 x 16 cell."""
        return self.dropout(self.features(x))

    def cell_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 2, ceil(H/16), ceil(W/16)) logits per cell."""
        return self.head(self.cell_features(x))

    def tile_logits(self, crops: torch.Tensor, offsets: torch.Tensor, patch_size: int, tiles: int = 1) -> torch.Tensor:
        """Logits (B, T, T, 2) of the T x T patches whose top-left corner is at pixel ``offsets``
        (B, 2) (row, col) inside each crop (B, 1, H, W)."""
        return self._pool_tiles(self.cell_logits(crops), offsets, patch_size, tiles)

    def frame_logits(self, frame: torch.Tensor, patch_size: int) -> torch.Tensor:
        """(1, 1, H, W) frame padded to the patch grid plus ``context`` zeros on each side ->
        (grid_rows, grid_cols, 2) logits."""
        return self._pool_frame(self.cell_logits(frame)[0], frame.shape, patch_size)

    def _pool_tiles(self, cells: torch.Tensor, offsets: torch.Tensor, patch_size: int, tiles: int) -> torch.Tensor:
        """Per-cell maps (B, K, h, w) -> their area-weighted mean over each patch: (B, T, T, K)."""
        s, b, t = self.stride, cells.shape[0], int(tiles)
        step = patch_size * torch.arange(t, device=offsets.device)
        rows = (offsets[:, 0, None] + step).reshape(-1).cpu()
        cols = (offsets[:, 1, None] + step).reshape(-1).cpu()
        wr = _overlap_weights(cells.shape[2], s, rows, patch_size).to(cells).reshape(b, t, -1)
        wc = _overlap_weights(cells.shape[3], s, cols, patch_size).to(cells).reshape(b, t, -1)
        return torch.einsum("bkhw,bih,bjw->bijk", cells, wr, wc)

    def _pool_frame(self, cells: torch.Tensor, frame_shape: torch.Size, patch_size: int) -> torch.Tensor:
        """Per-cell maps (K, h, w) of a padded frame -> their mean over each patch: (gr, gc, K)."""
        m, p, s = self.context, patch_size, self.stride
        gr = (frame_shape[2] - 2 * m) // p
        gc = (frame_shape[3] - 2 * m) // p
        wr = _overlap_weights(cells.shape[1], s, m + p * torch.arange(gr), p).to(cells)
        wc = _overlap_weights(cells.shape[2], s, m + p * torch.arange(gc), p).to(cells)
        return torch.einsum("khw,ih,jw->ijk", cells, wr, wc)


class ScanNet(WBNet):
    """The scan-aware network (default): WBNet's appearance features pooled per patch, joined with
    the patch's scan features (core.classification.scan_context: its intensity relative to its own rocking-curve
    peak and to the layer, its offset from its own curve's centre in curve widths), then a small
    per-patch MLP. Frames are normalised with levels of the whole layer, never per frame.

    Scan features are trained with random drop-out (context flag 0), so the same network classifies
    from appearance alone where no rocking curve exists (fixed-angle layer scans, a lone frame).
    """

    def __init__(self, width: int = 16, context: int = 32, dropout: float = 0.1, n_features: int = 9, hidden: int = 32):
        super().__init__(width, context, dropout)
        c4 = 3 * int(width)
        self.hparams.update({"n_features": int(n_features), "hidden": int(hidden)})
        self.n_features = int(n_features)
        self.head = nn.Sequential(  # replaces WBNet's 1x1 conv head: per-patch, after pooling
            nn.Linear(c4 + self.n_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 2),
        )

    def tile_logits(self, crops: torch.Tensor, offsets: torch.Tensor, patch_size: int, tiles: int = 1,
                    scan_features: torch.Tensor | None = None) -> torch.Tensor:
        """As WBNet.tile_logits, with ``scan_features`` (B, T, T, n_features)."""
        pooled = self._pool_tiles(self.cell_features(crops), offsets, patch_size, tiles)
        return self.head(torch.cat([pooled, self._features_or_zeros(scan_features, pooled)], dim=-1))

    def frame_logits(self, frame: torch.Tensor, patch_size: int, scan_features: torch.Tensor | None = None) -> torch.Tensor:
        """As WBNet.frame_logits, with ``scan_features`` (grid_rows, grid_cols, n_features)."""
        pooled = self._pool_frame(self.cell_features(frame)[0], frame.shape, patch_size)
        return self.head(torch.cat([pooled, self._features_or_zeros(scan_features, pooled)], dim=-1))

    def _features_or_zeros(self, f: torch.Tensor | None, pooled: torch.Tensor) -> torch.Tensor:
        if f is None:
            return pooled.new_zeros(pooled.shape[:-1] + (self.n_features,))
        return f.to(pooled)


class PaperNet(nn.Module):
    """The published network (Benhadjira et al., DL-WBDF), kept as the reference.

    Three blocks of depthwise 5x5 conv (no bias) + pointwise 1x1 conv + ReLU, channels
    1 -> 16 -> 32 -> 64, Dropout2d(0.3) after each, one 2x2 max-pool, Linear(64*P/2*P/2 -> 10),
    ReLU, dropout, Linear(10 -> 2). The first linear layer ties it to one patch size.

    The published code z-scores its input; without that the network stays on its initial plateau
    (constant output). Here the input is standardised with fixed constants (``input_mean``,
    ``input_std``: the mean and spread of normalised simulator frames) rather than per-split
    statistics, so nothing leaks between training and test sets and the invariances of
    core.classification.normalise are kept.
    """

    stride = 1
    context = 0

    def __init__(
        self,
        patch_size: int = 64,
        dropout: float = 0.3,
        hidden: int = 10,
        input_mean: float = 0.33,
        input_std: float = 0.30,
    ):
        super().__init__()
        self.patch_size = int(patch_size)
        self.hparams = {
            "dropout": float(dropout),
            "hidden": int(hidden),
            "input_mean": float(input_mean),
            "input_std": float(input_std),
        }

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cin, 5, padding=2, groups=cin, bias=False),
                nn.Conv2d(cin, cout, 1),
                nn.ReLU(inplace=True),
                nn.Dropout2d(dropout),
            ]

        self.features = nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64), nn.MaxPool2d(2))
        half = self.patch_size // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * half * half, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, 1, P, P) -> (B, 2)."""
        x = (patches - self.hparams["input_mean"]) / self.hparams["input_std"]
        return self.classifier(self.features(x))

    def tile_logits(self, crops: torch.Tensor, offsets: torch.Tensor, patch_size: int, tiles: int = 1) -> torch.Tensor:
        """Crops (B, 1, T*P, T*P) with no context -> (B, T, T, 2)."""
        b, t, p = crops.shape[0], int(tiles), patch_size
        patches = crops[:, 0].reshape(b, t, p, t, p).permute(0, 1, 3, 2, 4).reshape(-1, 1, p, p)
        return self(patches).reshape(b, t, t, 2)

    def frame_logits(self, frame: torch.Tensor, patch_size: int, batch: int = 64) -> torch.Tensor:
        """(1, 1, H, W) with H, W multiples of P -> (grid_rows, grid_cols, 2)."""
        p = patch_size
        gr, gc = frame.shape[2] // p, frame.shape[3] // p
        patches = frame[0, 0].reshape(gr, p, gc, p).permute(0, 2, 1, 3).reshape(-1, 1, p, p)
        out = torch.cat([self(patches[i : i + batch]) for i in range(0, len(patches), batch)])
        return out.reshape(gr, gc, 2)


def build_network(arch: str, patch_size: int, **hp) -> nn.Module:
    """Instantiate an architecture by name."""
    if arch == "scanwb":
        return ScanNet(**hp)
    if arch == "wbnet":
        return WBNet(**hp)
    if arch == "paper":
        if patch_size % 2:
            raise ValueError(f"the paper architecture needs an even patch size, got {patch_size}")
        return PaperNet(patch_size, **hp)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)

