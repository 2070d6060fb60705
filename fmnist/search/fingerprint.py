"""What a resumed sweep, and a worker joining a chief, must share with the sweep it continues."""

from __future__ import annotations

import hashlib
import json

from fmnist.config import Config


def fingerprint(cfg: Config) -> str:
    keys = ("seed", "data", "model", "trainer", "search", "tuner", "photos", "validation", "photo", "finetune")
    return hashlib.sha256(json.dumps(cfg.model_dump(include=set(keys)), sort_keys=True).encode()).hexdigest()[:16]
