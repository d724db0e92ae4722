"""Mixture-aware pre-training data: mixes as TOML (data_mix/), hub / local / pre-tokenized sources,
token-exact resumable sampling, packing with document boundaries, realized-mix metrics.

  loader.py           MixtureDataLoader, the torchtitan dataloader component
  mixture_dataset.py  the packed, stateful iterable behind it
  mix_config.py       mix TOML parsing (load_mix, parse_phases, MixError)
  tokenize.py         `mlr1 tokenize` as a function (tokenize_mix)
  preview.py          `mlr1 data preview` as a function (preview_mix)
"""
