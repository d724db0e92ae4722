"""Influence-based data mixing, the paper's Sec. 5-6: score sources by the influence of their samples
on capability probes over domain-model checkpoints (`score`, Eqs. 2-6), and keep the positively
influential mid-training samples at the current model (`filter`, Eqs. 7-8). See docs/data_mixing.md.

    mlr1 mix score --sources pretrain_phase1 --probe math=probes/math.jsonl --checkpoints math=ckpts/math/step-* ...
    torchrun --nproc_per_node=8 -m mlr1_titan.mix score ...
"""
