"""Reasoning evaluation of MobileLLM-R1 checkpoints with lm-eval (paper §4, Table 7).

The lm-eval tasks live in ``eval_tasks/`` (an ``--include_path``); this package holds what they call:

- ``reasoning``       split a completion into reasoning and final answer (``</think>`` handling)
- ``math_answers``    final-answer extraction (last ``\\boxed{}``, then the paper harness's fallbacks)
- ``math_judge``      math-verify equivalence in a worker process with a hard per-answer timeout
- ``code_answers``    final fenced code block; what each code benchmark runs (inputs) and keeps (expected)
- ``code_grading``    record inputs, run candidates on inputs only, judge their outputs outside them
- ``verdicts``        the supervisor's comparison: passed/failed/timeout/memory/crashed/sandbox_error
- ``plus_harness``    trusted program that records and judges HumanEval+/MBPP+ assert-style tests
- ``value_codec``     plain values across the sandbox boundary (restricted tagged JSON)
- ``sandbox``         runs untrusted code: bubblewrap, cgroups, limits, Landlock (docs/evaluation.md)
- ``sandbox_cgroup``  per-candidate memory, process and CPU limits over all of a candidate's processes
- ``sandbox_seccomp`` the syscall filter bubblewrap loads (keyrings, namespaces, ptrace, ... refused)
- ``sandbox_boot``    the child side: lock-down, then run a job and write its results to the channel
- ``metrics``         pass@1 over all samples, maj@n, unbiased pass@k
- ``benchmarks``      data: pinned hub revisions, local jsonl mirrors, prompts, LiveCodeBench windows
- ``hooks``           the functions the task YAMLs name (loaders, grading filters, process_results)
- ``runner``/``cli``  ``mlr1 eval``: backend choice, sample counts, results.json + Markdown table
"""
