"""Declarative pipelines: a YAML list of `curate` commands with their flags, validated up front.

    vars: {out: data/coins, seed: 0}
    out: ${out}            # the tree every step works on (DIR argument, or --out of a source step)
    seed: ${seed}          # given to every step that has --seed (same for workers)
    steps:
      - kaggle: {dataset: coins, label-names: true}
      - dedupe: {threshold: 4}

A step is exactly a registered command: its keys are that command's flags (without `--`) or argument
names, checked against the command's own parameters, so errors name file, line and field before
anything runs. Steps run in-process, in order; each one's parameters hash, exit code and duration
go into OUT/curate.json, and a re-run skips steps whose inputs and parameters are unchanged.
"""

from curate.pipeline.commands import registered_commands, tree_param
from curate.pipeline.load import load_pipeline
from curate.pipeline.model import (
    CONTINUE_BY_DEFAULT,
    Pipeline,
    PipelineError,
    PipelineResult,
    Step,
    StepResult,
)
from curate.pipeline.run import input_fingerprint, params_hash, run_pipeline, tree_fingerprint
from curate.pipeline.yamlfile import parse_set

__all__ = ["CONTINUE_BY_DEFAULT", "Pipeline", "PipelineError", "PipelineResult", "Step", "StepResult",
           "input_fingerprint", "load_pipeline", "params_hash", "parse_set", "registered_commands",
           "run_pipeline", "tree_fingerprint", "tree_param"]
