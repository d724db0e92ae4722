"""Apply torchtitan's parallelisms to MobileLLM-R1, in torchtitan's order: TP -> AC -> compile -> FSDP.

Only one addition to the stock dense recipe: on gloo (CPU-only machines) FSDP2 must reduce
gradients with plain SUM, because torchtitan turns FSDP's gradient division off and FSDP then
picks ``PREMUL_SUM``, which gloo does not implement.
"""

from __future__ import annotations

import torch
from torch.distributed.fsdp import FSDPModule
from torchtitan.config import TORCH_DTYPE_MAP, CompileConfig, ParallelismConfig, TrainingConfig
from torchtitan.distributed import ParallelDims
from torchtitan.distributed.compile import apply_compile
from torchtitan.distributed.fsdp import apply_fsdp_to_decoder
from torchtitan.distributed.full_dtensor import resolve_fsdp_mesh, validate_config

from .model import MLR1Model


def parallelize_mlr1(
    model: MLR1Model,
    *,
    parallel_dims: ParallelDims,
    training: TrainingConfig,
    parallelism: ParallelismConfig,
    compile_config: CompileConfig,
    ac_config,
    dump_folder: str,
    skip_dp: bool = False,
):
    if parallelism.spmd_backend in ("full_dtensor", "spmd_types"):
        validate_config(parallel_dims, model)
        model.parallelize(parallel_dims)
    elif parallel_dims.tp_enabled:
        model.parallelize(parallel_dims)

    # torchtitan's policy configs build a policy; the plugin's [activation_checkpoint] config builds
    # the one its mode names, or None for mode = "none".
    policy = ac_config.build(dump_folder=dump_folder) if ac_config is not None else None
    if policy is not None:
        policy.apply(model)

    if compile_config.enable and "model" in compile_config.components:
        apply_compile(model, compile_config=compile_config, parallel_dims=parallel_dims)

    if skip_dp:
        return model

    if parallelism.spmd_backend in ("full_dtensor", "spmd_types"):
        dp_mesh, dp_mesh_dims = resolve_fsdp_mesh(parallel_dims)
    else:
        names = ["dp_replicate", "fsdp"] if parallel_dims.dp_replicate_enabled else ["fsdp"]
        dp_mesh, dp_mesh_dims = parallel_dims.get_mesh(names), None

    apply_fsdp_to_decoder(
        model,
        dp_mesh,
        param_dtype=TORCH_DTYPE_MAP[training.mixed_precision_param],
        reduce_dtype=TORCH_DTYPE_MAP[training.mixed_precision_reduce],
        pp_enabled=parallel_dims.pp_enabled,
        cpu_offload=training.enable_cpu_offload,
        reshard_after_forward_policy=parallelism.fsdp_reshard_after_forward,
        ep_degree=parallel_dims.ep,
        edp_mesh=None,
        dp_mesh_dims=dp_mesh_dims,
        edp_mesh_dims=None,
        enable_symm_mem=parallelism.enable_fsdp_symm_mem,
    )

    if torch.distributed.is_initialized() and torch.distributed.get_backend() == "gloo":
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_force_sum_reduction_for_comms(True)
    return model
