"""Mixture-aware pre-training data: mixes as TOML (data_mix/), hub / local / pre-tokenized sources,
token-exact resumable sampling, packing with document boundaries, realized-mix metrics.

Public API (imported lazily so `mlr1 --help` stays fast):
  MixtureDataLoader   torchtitan dataloader component (loader.py)
  MixtureDataset      the packed, stateful iterable behind it (mixture_dataset.py)
  load_mix, parse_phases, MixError   mix TOML parsing (mix_config.py)
  tokenize_mix        `mlr1 tokenize` as a function (tokenize.py)
  preview_mix         `mlr1 data preview` as a function (preview.py)
"""

_EXPORTS = {
    "MixtureDataLoader": "mlr1_titan.data.loader",
    "MixtureDataset": "mlr1_titan.data.mixture_dataset",
    "MixMeter": "mlr1_titan.data.mix_metrics",
    "load_mix": "mlr1_titan.data.mix_config",
    "parse_phases": "mlr1_titan.data.mix_config",
    "MixError": "mlr1_titan.data.mix_config",
    "DataSourceError": "mlr1_titan.data.sources",
    "tokenize_mix": "mlr1_titan.data.tokenize",
    "preview_mix": "mlr1_titan.data.preview",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mlr1_titan.data' has no attribute {name!r}")
