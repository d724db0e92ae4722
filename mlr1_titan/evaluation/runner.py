"""``mlr1 eval``: run the r1_* lm-eval tasks on an HF checkpoint and write results.json + results.md.

Equivalent lm-eval command (what this automates)::

    lm_eval --model vllm --model_args pretrained=CKPT,max_model_len=32768 \\
        --include_path "$(mlr1 paths eval_tasks)" --tasks r1_reasoning --apply_chat_template \\
        --confirm_run_unsafe_code --gen_kwargs max_gen_toks=30000 --log_samples --output_path OUT

plus what the lm-eval CLI cannot do: per-task sample counts (``--samples aime=64,lcb=16``), a
backend fallback (vllm if installed, else hf), checks of the chat template and the sandbox, and a
Markdown table.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlr1_titan.resources import eval_tasks_dir

from .benchmarks import options_from_metadata
from .report import markdown_table
from .sandbox import require

log = logging.getLogger(__name__)

# The include path: the shipped eval_tasks/ (override with MLR1_EVAL_TASKS_DIR or --include-path).
EVAL_TASKS_DIR = Path(os.environ.get("MLR1_EVAL_TASKS_DIR", eval_tasks_dir()))
CODE_TASKS = ("r1_humaneval_plus", "r1_mbpp_plus", "r1_livecodebench")
# Room for the prompt on top of the generation budget (max_model_len / max_length).
PROMPT_MARGIN_TOKENS = 2048

# Short names accepted by --samples; a full task name works too.
SAMPLE_ALIASES: dict[str, tuple[str, ...]] = {
    "aime": ("r1_aime24", "r1_aime25"),
    "aime24": ("r1_aime24",),
    "aime25": ("r1_aime25",),
    "math": ("r1_math500",),
    "math500": ("r1_math500",),
    "gsm8k": ("r1_gsm8k",),
    "humaneval": ("r1_humaneval_plus",),
    "mbpp": ("r1_mbpp_plus",),
    "lcb": ("r1_livecodebench",),
    "livecodebench": ("r1_livecodebench",),
}


def parse_samples(spec: str | None) -> dict[str, int]:
    """``"aime=64,lcb=16"`` -> ``{"r1_aime24": 64, "r1_aime25": 64, "r1_livecodebench": 16}``.
    ``all=N`` sets every task; later entries win."""
    out: dict[str, int] = {}
    if not spec:
        return out
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--samples entry {item!r}: expected NAME=COUNT, e.g. aime=64")
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"--samples entry {item!r}: {value!r} is not an integer") from None
        if count < 1:
            raise ValueError(f"--samples entry {item!r}: the sample count must be >= 1")
        name = name.strip()
        if name == "all":
            targets: tuple[str, ...] = ("*",)
        elif name in SAMPLE_ALIASES:
            targets = SAMPLE_ALIASES[name]
        elif name.startswith("r1_"):
            targets = (name,)
        else:
            known = ", ".join(["all", *SAMPLE_ALIASES])
            raise ValueError(f"--samples entry {item!r}: unknown name {name!r} (use a task name or one of {known})")
        for target in targets:
            out[target] = count
    return out


def parse_key_values(spec: str | None, what: str) -> dict[str, str]:
    """``"dtype=bfloat16,gpu_memory_utilization=0.8"`` -> dict."""
    out = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} entry {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def choose_backend(requested: str) -> str:
    """``auto``: vllm when installed, else hf. Missing packages raise with the install hint."""
    if requested not in ("auto", "vllm", "hf"):
        raise ValueError(f"--backend {requested!r}: expected auto, vllm or hf")
    has_vllm = importlib.util.find_spec("vllm") is not None
    backend = ("vllm" if has_vllm else "hf") if requested == "auto" else requested
    if backend == "vllm" and not has_vllm:
        raise RuntimeError("--backend vllm: vllm is not installed (pip install 'lm-eval[vllm]'), or use --backend hf")
    if backend == "hf" and importlib.util.find_spec("accelerate") is None:
        raise RuntimeError("the hf backend of lm-eval needs accelerate: pip install 'lm-eval[hf]' (or accelerate)")
    return backend


@dataclass
class EvalRequest:
    model: str
    """HF checkpoint dir or hub id (Llama4ForCausalLM for MobileLLM-R1), with its chat template."""
    tasks: list[str] = field(default_factory=lambda: ["r1_reasoning"])
    samples: dict[str, int] = field(default_factory=dict)
    """Task name -> samples per problem (``*`` = every task); unset tasks keep their YAML default."""
    backend: str = "auto"
    max_gen_toks: int = 30000
    model_args: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    """Task options (data_dir, lcb_start_date, think_prefilled, timeouts; see benchmarks.EvalOptions)."""
    output_dir: Path | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: str | int | None = None
    device: str | None = None
    log_samples: bool = True
    include_path: Path = EVAL_TASKS_DIR


def _say(msg: str) -> None:
    print(f"[mlr1 eval] {msg}", file=sys.stderr, flush=True)


def _check_tokenizer(model: str, backend: str) -> None:
    """The protocol needs the model's chat template; hf decoding drops special tokens, so
    ``</think>`` must be plain text there."""
    if not Path(model).is_dir():
        return  # hub id: the backend loads (and checks) it
    from transformers import AutoTokenizer  # deferred: heavy, only for local checkpoints

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
    if not getattr(tok, "chat_template", None):
        raise ValueError(
            f"{model}: the tokenizer has no chat template; the protocol renders each question with the "
            "model's own template (export it with the checkpoint, e.g. chat_template.jinja)"
        )
    if backend == "hf" and "</think>" in set(getattr(tok, "all_special_tokens", [])):
        raise ValueError(
            f"{model}: '</think>' is a special token, which the hf backend strips when decoding, so "
            "truncated reasoning could not be told apart; use --backend vllm"
        )


def _model_args(request: EvalRequest, backend: str) -> dict[str, Any]:
    args: dict[str, Any] = {"pretrained": request.model}
    budget = request.max_gen_toks + PROMPT_MARGIN_TOKENS
    if backend == "vllm":
        args.update(max_model_len=budget, seed=request.seed, dtype="auto")
    else:
        args.update(max_length=budget, dtype="auto")  # device and batch size go to simple_evaluate
    args.update(request.model_args)
    return args


def _task_manager(request: EvalRequest, metadata: dict[str, Any]):
    """Index the r1 tasks and check the requested names (cheap: nothing is loaded yet)."""
    from lm_eval.tasks import TaskManager  # deferred: lm-eval loads in seconds

    include = Path(request.include_path)
    if not (include / "r1_reasoning.yaml").is_file():
        raise FileNotFoundError(f"{include} is not the r1 task folder (no r1_reasoning.yaml); pass --include-path")
    manager = TaskManager(include_path=str(include), include_defaults=False, metadata=metadata)
    known = set(manager.all_tasks)
    available = ", ".join(sorted(n for n in known if n.startswith("r1_")))
    unknown = [t for t in request.tasks if t not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; available in {include}: {available}")
    typos = [t for t in request.samples if t != "*" and t not in known]
    if typos:
        raise ValueError(f"--samples names unknown task(s) {typos}; available: {available}")
    return manager


def _load_tasks(request: EvalRequest, manager):
    """Build the tasks (this loads their data) and apply the per-task sample counts."""
    loaded = manager.load(list(request.tasks))
    for name in request.samples:
        if name != "*" and name not in loaded["tasks"]:
            _say(f"--samples {name}={request.samples[name]} ignored: {name} is not among the selected tasks")
    for name, task in loaded["tasks"].items():
        count = request.samples.get(name, request.samples.get("*"))
        if count is not None:
            task.set_config(key="repeats", value=count)
    # Groups are passed as groups (their aggregate is reported); tags expand to their tasks.
    top: list = [loaded["groups"][t] for t in request.tasks if t in loaded["groups"]]
    in_groups = {task.task_name for group in top for task in group.get_all_tasks()}
    top += [task for name, task in loaded["tasks"].items() if name not in in_groups]
    return loaded, top


def run_evaluation(request: EvalRequest, lm=None) -> dict[str, Any]:
    """Evaluate and write ``results.json``, ``results.md`` and ``samples_<task>.jsonl`` into
    ``request.output_dir``. ``lm``: an lm-eval ``LM`` instance to use instead of a backend
    (tests use a scripted one). Returns lm-eval's results dict (without samples)."""
    import lm_eval  # deferred: lm-eval loads in seconds
    import lm_eval.models  # noqa: F401  registers the built-in backends even if a custom LM was registered first
    from lm_eval.utils import handle_non_serializable

    if request.max_gen_toks < 1:
        raise ValueError(f"--max-gen-toks must be >= 1, got {request.max_gen_toks}")
    started = time.time()
    metadata = dict(request.metadata)
    if lm is None:
        metadata.setdefault("pretrained", request.model)  # lets the tasks inspect the chat template
    manager = _task_manager(request, metadata)
    backend = "custom" if lm is not None else choose_backend(request.backend)
    if lm is None:
        _check_tokenizer(request.model, backend)
    loaded, top = _load_tasks(request, manager)
    task_names = sorted(loaded["tasks"])
    repeats = {name: loaded["tasks"][name].config.repeats for name in task_names}
    _say(f"model={request.model} backend={backend} tasks={','.join(task_names)}")
    _say("samples per problem: " + ", ".join(f"{k}={v}" for k, v in repeats.items()))
    gen = dict(loaded["tasks"][task_names[0]].config.generation_kwargs, max_gen_toks=request.max_gen_toks)
    _say(f"generation (chat template applied, zero-shot): {json.dumps(gen)}")
    sandbox = None
    if any(name in CODE_TASKS for name in task_names):
        isolation = options_from_metadata(metadata).sandbox_isolation
        sandbox = require(isolation).describe(isolation)  # the tasks' loaders checked it too
        _say(f"code runs in the mlr1 sandbox: {json.dumps(sandbox)}")
    model_args = None if lm is not None else _model_args(request, backend)
    out = lm_eval.simple_evaluate(
        model=lm if lm is not None else backend,
        model_args=model_args,
        tasks=top,
        task_manager=manager,
        apply_chat_template=True,
        confirm_run_unsafe_code=True,
        gen_kwargs={"max_gen_toks": request.max_gen_toks},
        limit=request.limit,
        log_samples=request.log_samples,
        batch_size=request.batch_size if request.batch_size is not None else ("auto" if backend == "vllm" else 1),
        device=request.device,
        random_seed=request.seed,
        numpy_random_seed=request.seed,
        torch_random_seed=request.seed,
        metadata=metadata,
    )
    samples = out.pop("samples", None) if out else None
    out = dict(out or {})
    out["mlr1"] = {
        "model": request.model,
        "backend": backend,
        "model_args": model_args,
        "samples_per_problem": repeats,
        "max_gen_toks": request.max_gen_toks,
        "seed": request.seed,
        "limit": request.limit,
        "task_options": {k: v for k, v in metadata.items() if k != "pretrained"},
        "sandbox": sandbox,
        "wall_s": round(time.time() - started, 1),
    }
    if request.output_dir is not None:
        write_outputs(request.output_dir, out, samples, handle_non_serializable)
    return out


def write_outputs(output_dir: Path, results: dict, samples: dict | None, default) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "results.json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=default, ensure_ascii=False)
    (output_dir / "results.md").write_text(markdown_table(results), encoding="utf-8")
    for task, rows in (samples or {}).items():
        with open(output_dir / f"samples_{task}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, default=default, ensure_ascii=False) + "\n")
    _say(f"wrote {output_dir / 'results.json'} and {output_dir / 'results.md'}")


def default_output_dir(model: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("outputs") / "eval" / f"{Path(model.rstrip(os.sep)).name or 'model'}-{stamp}"
