"""lm-eval hooks of the r1_* tasks. The logic lives in ``mlr1_titan.evaluation.hooks``.

lm-eval loads this file by path (``!function r1_hooks.<name>`` in the YAMLs), so the tasks work
from any working directory. If ``mlr1_titan`` is not importable (lm-eval run from another
environment), the folder holding the package this file ships in is put on ``sys.path``.
"""

import sys
from pathlib import Path

try:
    import mlr1_titan.evaluation.hooks as _hooks
except ModuleNotFoundError as err:
    if err.name != "mlr1_titan":
        raise
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # <root>/mlr1_titan/eval_tasks/
    import mlr1_titan.evaluation.hooks as _hooks

load_aime24 = _hooks.load_aime24
load_aime25 = _hooks.load_aime25
load_math500 = _hooks.load_math500
load_gsm8k = _hooks.load_gsm8k
load_humaneval_plus = _hooks.load_humaneval_plus
load_mbpp_plus = _hooks.load_mbpp_plus
load_livecodebench = _hooks.load_livecodebench
grade_math = _hooks.grade_math
grade_code = _hooks.grade_code
math_metrics = _hooks.math_metrics
code_metrics = _hooks.code_metrics
