"""A normal (non-editable) install works: the wheel carries every resource the code reads, and an
installed copy used from outside the checkout resolves configs, renders the chat template and loads
the r1_* lm-eval tasks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from mlr1_titan.resources import data_mix_dir, eval_tasks_dir, model_configs_dir

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the files git knows (tracked, or new and not ignored): nothing left over in
    # the checkout (build/, *.egg-info) can reach the wheel, and the build leaves nothing there.
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("mlr1_titan-*.whl")
    return path


def test_wheel_ships_configs_mixes_eval_tasks_template_demo_corpus_and_domains(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    def shipped(directory: Path, pattern: str) -> set[str]:
        return {f"mlr1_titan/{p.relative_to(directory.parent).as_posix()}" for p in directory.glob(pattern)}

    expected = (
        shipped(model_configs_dir(), "**/*.toml")
        | shipped(data_mix_dir(), "*.toml")
        | {f for f in shipped(eval_tasks_dir(), "**/*") if "__pycache__" not in f and not f.endswith("/fixtures")}
        | {"mlr1_titan/sft/chat_template.jinja", "mlr1_titan/data_mix/demo_corpus.jsonl", "mlr1_titan/mix/domains.toml"}
        | {"mlr1_titan/recipe/stages.toml"}
    )
    assert len(expected) > 40
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]


def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies come from this venv's site-packages; as a plain path entry its .pth files
    # (among them the editable install of the checkout) are not processed.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLR1_CONFIG_DIR", "MLR1_DATA_MIX_DIR")}
    env["MLR1_EVAL_DATA_DIR"] = str(eval_tasks_dir() / "fixtures")
    script = textwrap.dedent(
        f"""
        import pathlib, subprocess
        import jinja2
        import mlr1_titan
        from torchtitan.config import ConfigManager

        installed = pathlib.Path(mlr1_titan.__file__).resolve().parent
        assert str(installed).startswith({str(venv)!r}), installed
        cfg = ConfigManager().parse_args(["--module", "mlr1_titan", "--config", "mlr1_950m"])
        assert cfg.model_spec.flavor == "950M" and cfg.dataloader.mixture.mix == "pretrain_phase1"
        cfg = ConfigManager().parse_args(["--module", "mlr1_titan", "--config", "mlr1_950m.toml"])
        assert cfg.model_spec.flavor == "950M"
        print("config", cfg.model_spec.flavor, cfg.model.shape().num_params())

        paths = subprocess.run([{str(venv / "bin" / "mlr1")!r}, "paths", "chat_template"],
                               check=True, capture_output=True, text=True).stdout.strip()
        template = pathlib.Path(paths)
        assert template.is_relative_to(installed), template
        text = jinja2.Template(template.read_text()).render(
            messages=[{{"role": "user", "content": "2+2?"}}], bos_token="<|begin_of_text|>",
            add_generation_prompt=True)
        assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\\n\\n"), text
        print("template", repr(text[:60]))

        plan = subprocess.run([{str(venv / "bin" / "mlr1")!r}, "recipe", "--size", "140m", "--gpus", "8", "--dry-run"],
                              check=True, capture_output=True, text=True).stdout
        assert "[6/6] sft_reasoning" in plan and "--config mlr1_140m_midtrain_phase1" in plan, plan

        from mlr1_titan.mix.domains import load_domains
        assert set(load_domains()) == {{"code", "math", "knowledge"}}

        from lm_eval.tasks import TaskManager, get_task_dict
        from mlr1_titan.resources import eval_tasks_dir
        manager = TaskManager(include_path=str(eval_tasks_dir()))
        r1 = sorted(t for t in manager.all_tasks if t.startswith("r1_"))
        assert {{"r1_aime24", "r1_math500", "r1_gsm8k", "r1_humaneval_plus", "r1_reasoning"}} <= set(r1), r1
        task = get_task_dict(["r1_gsm8k"], manager)["r1_gsm8k"]
        docs = list(task.test_docs())
        assert docs and "prompt" in docs[0]
        print("tasks", r1, len(docs), "gsm8k docs")
        """
    )
    proc = subprocess.run([python, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    print(proc.stdout)
