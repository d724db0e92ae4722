"""Build the transformers reference model (HF Llama4ForCausalLM) for an MLR1 flavor; shared by tests."""

from __future__ import annotations

from mlr1_titan.model.flavors import MLR1Flavor


def llama4_text_config(flavor: MLR1Flavor, max_position_embeddings: int = 4096):
    """A ``llama4_text`` config describing the same dense MobileLLM-R1 block.

    It is the ``config.json`` that ``mlr1 export-hf`` writes (``mlr1_titan.hf.config``), read the
    way ``from_pretrained`` reads it.
    """
    from transformers import Llama4TextConfig

    from mlr1_titan.hf.config import hf_config_dict

    return Llama4TextConfig.from_dict(hf_config_dict(flavor.replace(max_seq_len=max_position_embeddings)))
