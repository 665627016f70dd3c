"""Ablation studies: one base spec, a grid and/or named patches, run over a dataset and ranked (docs/ablation.md).

``load_ablation`` validates the file and every variant (nothing runs); ``run_study`` runs what is not done yet
in the study folder, on the local or Dask executor, and writes per-run and per-variant tables and plots.
"""
from .results import aggregate, average_ranks
from .spec import AblationSpec, StudyPlan, Variant, load_ablation, yaml_value
from .study import StudyProgress, StudyResult, check_resume, default_out_dir, run_study
from .worker import RunTask, run_task

__all__ = ["AblationSpec", "StudyPlan", "Variant", "load_ablation", "yaml_value", "aggregate", "average_ranks",
           "StudyProgress", "StudyResult", "check_resume", "default_out_dir", "run_study", "RunTask", "run_task"]
