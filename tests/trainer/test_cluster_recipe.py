"""The paper's recipe on any cluster, checked at the config level (no GPU needed): Table 2 global
batches on any GPU count, GPU-safe defaults, float8 wiring, and the familiar launch line."""

from __future__ import annotations

import pytest
from torchtitan.config import ConfigManager
from torchtitan.models.common.linear import Linear

from mlr1_titan.cluster import SDPA_DOC_MAX_MASK_BYTES, apply_float8, check_attention_memory
from mlr1_titan.config import to_table
from mlr1_titan.schedule import describe_batches, plan_batches
from mlr1_titan.train import torchtitan_argv


def parse(name: str, *overrides: str):
    return ConfigManager().parse_args(["--module", "mlr1_titan", "--config", name, *overrides])


@pytest.mark.parametrize(
    ("name", "global_batch", "local_batch", "seq"),
    [
        ("mlr1_950m", 2048, 16, 2048),  # Table 2, pre-training
        ("mlr1_360m_midtrain_phase2", 512, 4, 4096),  # mid-training
        ("mlr1_140m_sft_general", 512, 4, 4096),  # general SFT
        ("mlr1_950m_sft_reasoning", 1024, 8, 32768),  # reasoning SFT
    ],
)
def test_table2_global_batches_are_pinned_and_accumulation_follows_the_gpu_count(name, global_batch, local_batch, seq):
    # SFT: the padded reproduction (packing = false) splits conversations like the paper's TRL run;
    # packed rows are sized from the data at start-up (tests/sft/test_sft_step_plan.py).
    cfg = parse(name, *(["--dataloader.chat.no-packing"] if "sft" in name else []))
    assert (cfg.training.global_batch_size, cfg.training.local_batch_size, cfg.training.seq_len) == (
        global_batch,
        local_batch,
        seq,
    )
    for gpus in (8, 16, 128):
        plan = plan_batches(cfg, gpus)
        assert plan.global_batch_size == global_batch and plan.accumulation * gpus * local_batch == global_batch


def test_startup_line_for_8_and_128_gpus():
    cfg = parse("mlr1_950m")
    eight, all_128 = (describe_batches(cfg, plan_batches(cfg, n)) for n in (8, 128))
    assert "2,048 sequences x 2,048 tokens = 4.19M tokens per step" in eight
    assert "(8 DP ranks x 16 per rank x 16 accumulation steps, 8 ranks)" in eight
    assert "(128 DP ranks x 16 per rank x 1 accumulation steps, 128 ranks)" in all_128
    assert "500,000 steps = 2.10T tokens; paper budget of pretrain_phase1: 2.00T tokens" in all_128


def test_a_global_batch_the_job_cannot_split_fails_naming_the_numbers_and_valid_degrees():
    cfg = parse("mlr1_950m")
    with pytest.raises(ValueError) as err:
        plan_batches(cfg, 24)
    msg = str(err.value)
    assert "global_batch_size 2048" in msg and "local_batch_size 16 x data-parallel degree 24" in msg
    assert "[1, 2, 4, 8, 16, 32, 64, 128]" in msg
    # TP ranks are not data-parallel ranks: 16 GPUs with TP 2 are 8 DP ranks
    tp = parse("mlr1_950m", "--parallelism.tensor_parallel_degree", "2")
    assert plan_batches(tp, 16).dp_degree == 8 and plan_batches(tp, 16).accumulation == 16


def test_an_invalid_tensor_parallel_degree_fails_early_naming_the_valid_ones(capsys):
    with pytest.raises(SystemExit):  # tyro reports the __post_init__ error of the CLI value
        parse("mlr1_950m", "--parallelism.tensor_parallel_degree", "4")
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "tensor_parallel_degree 4 does not divide the 950M model's 6 KV heads" in err
    assert "valid tensor-parallel degrees: [1, 2, 3, 6]" in err
    assert parse("mlr1_950m", "--parallelism.tensor_parallel_degree", "3").parallelism.tensor_parallel_degree == 3


def test_varlen_attention_turns_cuda_graphs_off():
    assert parse("mlr1_tiny").training.disable_cuda_graphs is False
    assert parse("mlr1_tiny", "--model.attn_backend", "varlen").training.disable_cuda_graphs is True


def test_sdpa_doc_on_a_gpu_is_refused_above_its_mask_limit():
    reasoning = parse("mlr1_950m_sft_reasoning", "--model.attn_backend", "sdpa_doc")  # 8 x 32k x 32k = 8 GiB
    with pytest.raises(ValueError, match=r"8 x 32768 x 32768 boolean mask \(8.0 GiB\) .* above its 1 GiB limit"):
        check_attention_memory(reasoning, on_cuda=True)
    check_attention_memory(reasoning, on_cuda=False)  # CPU smoke runs are small by construction
    pretrain = parse("mlr1_950m", "--model.attn_backend", "sdpa_doc")  # 16 x 2k x 2k = 64 MiB
    assert 16 * 2048 * 2048 < SDPA_DOC_MAX_MASK_BYTES
    check_attention_memory(pretrain, on_cuda=True)
    check_attention_memory(parse("mlr1_950m_sft_reasoning", "--model.attn_backend", "flex"), on_cuda=True)


def test_float8_from_the_config_converts_every_linear_but_lm_head():
    cfg = parse("mlr1_tiny", "--model.float8", "tensorwise", "--model.float8_emulate")
    assert (cfg.model.float8, cfg.model.float8_filter_fqns) == ("tensorwise", ["lm_head"])
    apply_float8(cfg)
    converted = {fqn: type(c).__qualname__ for fqn, c, _, _ in cfg.model_spec.model.traverse(Linear.Config)}
    assert converted.pop("lm_head") == "Linear.Config"  # the tied 128,256-row head stays in bf16
    assert converted and set(converted.values()) == {"Float8Linear.Config"}
    assert {"layers.0.attention.qkv_linear.wqkv", "layers.0.attention.wo", "layers.3.feed_forward.w2"} <= set(converted)


def test_float8_without_hardware_or_torchao_is_a_clear_error_before_training(monkeypatch):
    cfg = parse("mlr1_tiny", "--model.float8", "rowwise")
    with pytest.raises(ValueError, match=r"model.float8 = 'rowwise': .*SM89"):
        apply_float8(cfg)  # this host has no float8-capable GPU
    import torchtitan.components.quantization.float8 as float8

    monkeypatch.setattr(float8, "Float8Linear", None)  # as without torchao
    with pytest.raises(ValueError, match=r"needs torchao: pip install 'mlr1_titan\[float8\]'"):
        apply_float8(parse("mlr1_tiny", "--model.float8", "rowwise", "--model.float8_emulate"))


def test_the_familiar_launch_line_resolves_to_the_same_config():
    overrides = ["--training.steps", "7", "--optimizer.lr=1e-3", "--parallelism.tensor_parallel_degree", "2"]
    for form in (["--job.config", "mlr1_950m.toml"], ["--job.config_file=mlr1_950m.toml"]):
        argv = torchtitan_argv([*form, *overrides])
        assert argv[:4] == ["--module", "mlr1_titan", "--config", "mlr1_950m.toml"]
        assert to_table(ConfigManager().parse_args(argv)) == to_table(parse("mlr1_950m", *overrides))
    with pytest.raises(SystemExit, match="--job.config NAME_OR_TOML is required"):
        torchtitan_argv(["--training.steps", "7"])


def test_the_launch_line_refuses_a_missing_or_repeated_config():
    with pytest.raises(SystemExit, match="--job.config needs a config name"):
        torchtitan_argv(["--job.config", "--help"])
    with pytest.raises(SystemExit, match="--job.config needs a config name"):
        torchtitan_argv(["--job.config="])
    with pytest.raises(SystemExit, match="given twice"):
        torchtitan_argv(["--job.config", "a.toml", "--job.config", "b.toml"])


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("mlr1_950m", 16 * 2048),  # pre-training: 16 x 2k per micro-batch
        ("mlr1_950m_midtrain_phase2", 4 * 4096),  # mid-training: 4 x 4k
        ("mlr1_950m_sft_general", 4 * 4096),  # general SFT: a micro-batch of at most 4 x 4k tokens
        ("mlr1_950m_sft_reasoning", 8 * 32768),  # reasoning SFT: at most 8 x 32k tokens (one packed row)
    ],
)
def test_loss_chunks_hold_at_most_4k_tokens_of_logits_at_any_sequence_length(name, tokens):
    """The shipped configs bound one chunk's logits in tokens (<= 4,096 x vocab: ~2 GiB in fp32 for
    128,256 tokens of vocabulary), whatever the stage's batch and sequence length."""
    import torch

    cfg = parse(name)
    assert cfg.loss.chunked and cfg.loss.chunk_tokens <= 4096
    loss_fn = cfg.loss.build()
    head = torch.nn.Linear(4, 8, bias=False)  # stands in for the 128,256-way lm_head: records chunk sizes
    seen: list[int] = []
    head.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].shape[1]))
    loss_fn.set_lm_head(head)
    rows = cfg.training.local_batch_size
    h = torch.randn(rows, tokens // rows, 4, requires_grad=True)
    labels = torch.randint(0, 8, (rows, tokens // rows))
    loss, _ = loss_fn(h, labels, torch.tensor(float(tokens)))
    loss.backward()
    assert max(seen) == cfg.loss.chunk_tokens and sum(seen) == tokens
    packed = torch.randn(1, tokens, 4, requires_grad=True)  # the same tokens as one packed row
    seen.clear()
    loss_fn(packed, labels.reshape(1, tokens), torch.tensor(float(tokens)))[0].backward()
    assert max(seen) == cfg.loss.chunk_tokens and sum(seen) == tokens


@pytest.mark.parametrize("name", ["mlr1_140m_sft_general", "mlr1_950m_sft_reasoning"])
def test_sft_stages_use_the_released_scripts_adamw_defaults_and_can_be_overridden(name):
    assert tuple(parse(name).optimizer.betas) == (0.9, 0.999)  # TRL / HF AdamW defaults (paper silent)
    assert tuple(parse("mlr1_950m").optimizer.betas) == (0.9, 0.95)  # pre-training: the paper's
    assert tuple(parse(name, "--optimizer.betas", "0.9", "0.95").optimizer.betas) == (0.9, 0.95)
