"""Files for TensorBoard's embedding projector: `tensorboard --logdir <this folder>`.

The vectors go in a TSV file the projector reads directly, so no TensorFlow checkpoint is
needed and the folder works after a plain download from MLflow.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from tensorboard.plugins.projector import ProjectorConfig, visualize_embeddings

TENSOR_NAME = "penultimate"


def sprite(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28, 1) floats -> one square uint8 sheet, row-major, as the projector expects."""
    n, side = len(images), math.ceil(math.sqrt(len(images)))
    sheet = np.zeros((side * side, 28, 28), dtype=np.uint8)
    sheet[:n] = np.round(images[..., 0] * 255)
    return sheet.reshape(side, side, 28, 28).transpose(0, 2, 1, 3).reshape(side * 28, side * 28)


def write_metadata(path: Path, rows: list[tuple[int, str, str, bool]]) -> Path:
    """Header plus one row per embedded image; extra columns let the projector colour by them."""
    lines = ["test_index\tlabel\tpredicted\tcorrect"]
    lines += [f"{i}\t{label}\t{pred}\t{'yes' if ok else 'no'}" for i, label, pred, ok in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_projector(features: np.ndarray, images: np.ndarray, rows: list[tuple[int, str, str, bool]],
                    out: Path) -> list[Path]:
    """tensors.tsv, metadata.tsv, sprite.png and projector_config.pbtxt in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    np.savetxt(out / "tensors.tsv", features, fmt="%.5g", delimiter="\t")
    cv2.imwrite(str(out / "sprite.png"), sprite(images))  # 8-bit grayscale: a quarter of RGBA's size
    config = ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = TENSOR_NAME
    embedding.tensor_path = "tensors.tsv"
    embedding.metadata_path = "metadata.tsv"
    embedding.sprite.image_path = "sprite.png"
    embedding.sprite.single_image_dim.extend([28, 28])
    visualize_embeddings(str(out), config)
    return [out / "tensors.tsv", write_metadata(out / "metadata.tsv", rows), out / "sprite.png",
            out / "projector_config.pbtxt"]
