"""Reasoning evaluation of MobileLLM-R1 checkpoints with lm-eval (paper §4, Table 7).

The lm-eval tasks live in ``eval_tasks/`` (an ``--include_path``); this package holds what they call:

- ``reasoning``       split a completion into reasoning and final answer (``</think>`` handling)
- ``math_answers``    final-answer extraction (last ``\\boxed{}``, then the paper harness's fallbacks)
- ``math_judge``      math-verify equivalence in a worker process with a hard per-answer timeout
- ``code_answers``    final fenced code block and the test program of each code benchmark
- ``sandbox``         runs untrusted candidate code (limits, namespaces, Landlock; see docs/evaluation.md)
- ``metrics``         pass@1 over all samples, maj@n, unbiased pass@k
- ``benchmarks``      data: pinned hub revisions, local jsonl mirrors, prompts, LiveCodeBench windows
- ``hooks``           the functions the task YAMLs name (loaders, grading filters, process_results)
- ``runner``/``cli``  ``mlr1 eval``: backend choice, sample counts, results.json + Markdown table
"""
