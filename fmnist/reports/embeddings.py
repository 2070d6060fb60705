"""Static 2-D views of the penultimate layer: PCA (global shape, cheap) beside t-SNE
(local neighbourhoods, costly, so on a smaller sample). Well-separated class clusters
mean the features carry the classes; overlapping ones show what the model confuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fmnist.reports.figures import CLASS_COLORS, figure, margins, save
from fmnist.reports.files import write_csv


def sample(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of `n` indices in seeded random order: the same images for every run, and
    any prefix is itself a random sample (the t-SNE subset is the first few)."""
    return np.random.default_rng(seed).permutation(n)[:size]


def project(features: np.ndarray, tsne_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA of all `features`, t-SNE of the first `tsne_size` rows."""
    # scikit-learn is imported here, not at module level: a run with reports off never pays for it.
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pca = PCA(2, random_state=seed).fit_transform(features)
    head = features[:tsne_size]
    perplexity = min(30.0, (len(head) - 1) / 3)
    # One OpenMP thread: on a busy 2-core machine two spin-waiting threads made t-SNE 8x slower,
    # and a few hundred points gain nothing from more. 350 iterations (250 of them the early
    # exaggeration phase) drew the same clusters as 500 in two thirds of the time.
    with threadpool_limits(1, user_api="openmp"):
        tsne = TSNE(2, perplexity=perplexity, init="pca", max_iter=350, random_state=seed).fit_transform(head)
    return pca, tsne


def plot_embeddings(pca: np.ndarray, tsne: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                    path: Path) -> Path:
    fig = figure(13, 6)
    for ax, points, title in zip(fig.subplots(1, 2), (pca, tsne), ("PCA", "t-SNE"), strict=False):
        shown = labels[: len(points)]
        ax.scatter(points[:, 0], points[:, 1], c=np.asarray(CLASS_COLORS)[shown], s=8, alpha=0.8, linewidths=0)
        ax.set(title=f"{title} of the penultimate layer, {len(points)} test images", xticks=[], yticks=[])
    handles = [fig.axes[0].scatter([], [], color=CLASS_COLORS[i], label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    margins(fig, left=0.01, right=0.99, bottom=0.1, top=0.94, wspace=0.04)
    return save(fig, path)


def write_embeddings(pca: np.ndarray, tsne: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                     names: tuple[str, ...], out: Path) -> list[Path]:
    """embeddings.png and embeddings.csv (test_index, label, pca_x/y, tsne_x/y; t-SNE blank
    beyond its sample) from the two projections of the images at `indices`."""
    rows = [[int(i), names[y], *map(float, pca[k]), *(map(float, tsne[k]) if k < len(tsne) else ("", ""))]
            for k, (i, y) in enumerate(zip(indices, labels, strict=False))]
    header = ["test_index", "label", "pca_x", "pca_y", "tsne_x", "tsne_y"]
    return [plot_embeddings(pca, tsne, labels, names, out / "embeddings.png"),
            write_csv(out / "embeddings.csv", header, rows)]
