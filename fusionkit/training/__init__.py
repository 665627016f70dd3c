"""Training learned components (``fusionkit train``), beside the engine, not inside it.

- :mod:`.spec`: the training spec and its loader (the shared spec machinery of :mod:`fusionkit.specfile`);
- :mod:`.data`: real and synthetic data sources, the validation split, per-process shards, reproducible batches;
- :mod:`.loop`: the loop, validation, checkpoints, the result folder (:func:`train`);
- :mod:`.checkpoint`, :mod:`.curves`: checkpoints for ``--resume``; the learning curves as CSV and PNG;
- :mod:`.distributed`: ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on GPUs).

A trained network stays a registered component (kind ``model``); its weights are data (:mod:`fusionkit.weights`)
that the roles in :mod:`fusionkit.trained` load for pipelines.
"""
from __future__ import annotations

from .loop import TrainEvent, TrainResult, train
from .spec import ResolvedTrainSpec, TrainSpec, load_train_spec, train_json_schema

__all__ = ["train", "TrainEvent", "TrainResult", "TrainSpec", "ResolvedTrainSpec", "load_train_spec",
           "train_json_schema"]
