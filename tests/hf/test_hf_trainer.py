"""HF interop with the real trainer: FSDP-sharded DCP -> HF offline, torchtitan's last_save_in_hf
folder is complete, and training starts from an imported checkpoint with the same loss."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from hf_testkit import load_model_from_dcp, max_logit_diff, tokens
from trainer_testkit import run_trainer, tensorboard_losses

from mlr1_titan.hf.export import export_hf
from mlr1_titan.hf.importer import import_hf
from mlr1_titan.model.flavors import MLR1_FLAVORS
from mlr1_titan.resources import chat_template_file

pytestmark = pytest.mark.slow

SMALL = ("--training.seq_len", "64", "--training.local_batch_size", "2")
QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    """2 ranks, FSDP on CPU: a sharded DCP checkpoint at step 2, torchtitan's HF save at step 3."""
    dump = tmp_path_factory.mktemp("fsdp")
    run_trainer(
        "mlr1_tiny",
        dump,
        "--checkpoint.enable",
        "--checkpoint.interval",
        "2",
        "--training.steps",
        "3",
        "--checkpoint.last_save_in_hf",
        *SMALL,
        nproc=2,
    )
    return dump / "checkpoint"


def test_fsdp_sharded_checkpoint_exports_exactly(fsdp_run, tmp_path, llama3_tokenizer):
    step2 = fsdp_run / "step-2"
    assert sorted(p.name for p in step2.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # one file per rank
    assert (step2 / "mlr1_model.toml").is_file()  # written by MLR1CheckpointManager
    assert (step2 / "mlr1_tokenizer.json").is_file()  # the run's tokenizer, for `mlr1 mix score`
    result = export_hf(step2, tmp_path / "hf", tokenizer=llama3_tokenizer, log=QUIET)
    assert result.flavor == MLR1_FLAVORS["tiny"]
    assert str(step2 / "mlr1_model.toml") in result.flavor_source
    ours = load_model_from_dcp("tiny", step2)  # plain DCP load: the reference
    diff = max_logit_diff(ours, result.out_dir, tokens())
    print(f"\nFSDP step-2 checkpoint: max |logit diff| ours vs transformers: {diff:.3e}")
    assert diff <= 1e-4


def test_last_save_in_hf_is_a_complete_folder_outside_the_resume_scan(fsdp_run):
    from torchtitan.components.checkpointer import CheckpointManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_dir = fsdp_run / "hf" / "step-3"
    assert not (fsdp_run / "step-3").exists() and not (hf_dir / "sharded").exists()
    names = {p.name for p in hf_dir.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors.index.json",
    } <= names
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir))
    assert type(model).__name__ == "Llama4ForCausalLM" and model.config.max_position_embeddings == 4096
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    expected_template = chat_template_file().read_text()
    assert tokenizer.chat_template == expected_template
    assert json.loads((hf_dir / "generation_config.json").read_text())["temperature"] == 0.6
    # A resume of this run takes the DCP checkpoint of step 2, not the HF folder of step 3.
    assert CheckpointManager._find_load_step(object(), str(fsdp_run)) == 2


def test_training_starts_from_an_imported_checkpoint(fsdp_run, tmp_path, llama3_tokenizer):
    step2 = fsdp_run / "step-2"
    hf_dir = export_hf(step2, tmp_path / "hf", tokenizer=llama3_tokenizer, log=QUIET).out_dir
    imported = tmp_path / "imported"
    import_hf(hf_dir, imported, log=QUIET)
    back = load_model_from_dcp("tiny", imported)
    original = load_model_from_dcp("tiny", step2)
    for key, value in original.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key

    def first_loss(start, dump):
        run_trainer(
            "mlr1_tiny",
            dump,
            "--checkpoint.enable",
            "--checkpoint.initial_load_path",
            str(start.resolve()),
            "--checkpoint.initial_load_model_only",
            "--checkpoint.interval",
            "1000",
            "--training.steps",
            "1",
            *SMALL,
            nproc=1,
        )
        return tensorboard_losses(dump)[1]

    with ThreadPoolExecutor(2) as pool:
        from_imported = pool.submit(first_loss, imported, tmp_path / "run_imported")
        from_original = pool.submit(first_loss, step2, tmp_path / "run_original")
        loss_imported, loss_original = from_imported.result(), from_original.result()
    print(f"\nfirst loss from the imported checkpoint {loss_imported!r}, from the original {loss_original!r}")
    assert loss_imported == loss_original
