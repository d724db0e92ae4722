"""Trusted program for HumanEval+/MBPP+ assert-style tests, run in the sandbox (``program`` mode).

It never runs candidate code. ``job_data["task"]``:

- ``record``: define the canonical solution and run the benchmark's own test body with the entry
  point wrapped, so every call's arguments are recorded (encoded before the call) while the
  test's asserts run against the canonical outputs. Emits ``{"inputs": [...], "outputs": [...]}``
  (the reference's outputs, encoded), or why the problem cannot be graded (the reference fails its
  own test, the test never calls the entry point, an input the encoding cannot carry).
- ``judge``: for each candidate, run the test body again (after the same definitions, so helpers of
  the prompt and the reference exist) with the entry point replaced by a replay
  of that candidate's recorded outputs (decoded: plain builtin values only). The test's own
  ``assertion``/``isclose``-style checks decide, so its tolerance semantics are kept. A control
  pass with the reference's own recorded outputs comes first (``control_error`` if it fails:
  nothing is judged); then one ``{"c": index, ...}`` line per candidate: ``completed``,
  ``failed_at``, ``stopped_at`` (the candidate has no output there) or ``error``.

Standard library and ``value_codec`` only; started by ``code_grading.py``.
"""

import signal
import traceback

import value_codec

emit = globals()["emit"]  # the channel writer, put in this program's globals by sandbox_boot.py
job_data = globals()["job_data"]


class _Stop(BaseException):
    """The candidate has no output for this call (it failed or stopped there)."""


class _Mismatch(BaseException):
    """The test called the entry point with arguments other than the recorded ones."""


class _JudgeTimeout(BaseException):
    pass


def _summary(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(err), err)).strip()[-300:]


def _define(setup: str) -> dict:
    namespace = {"__name__": "__main__"}
    exec(compile(setup, "<setup>", "exec"), namespace)
    return namespace


def _run_test(namespace: dict, data: dict, fn) -> None:
    """The test body with ``fn`` as the entry point, whether it calls ``check(candidate)`` or the
    entry point by name."""
    namespace[data["entry"]] = fn
    exec(compile(data["test"], "<test>", "exec"), namespace)
    if data["style"] == "check":
        namespace["check"](fn)


def record(data: dict) -> None:
    namespace = _define(data["setup"] + "\n" + data["solution"])
    canonical = namespace[data["entry"]]
    inputs, outputs = [], []
    depth = [0]

    def recorder(*args):
        if depth[0]:  # a recursive call of the reference reaches its own name: not a test input
            return canonical(*args)
        inputs.append(value_codec.encode(list(args)))
        depth[0] += 1
        try:
            result = canonical(*args)
        finally:
            depth[0] -= 1
        outputs.append(value_codec.encode(result))
        return result

    try:
        _run_test(namespace, data, recorder)
    except BaseException as err:
        emit({"error": f"the canonical solution fails its own test after {len(inputs)} calls: {_summary(err)}"})
        return
    if not inputs:
        emit({"error": "the test never calls the entry point, so there is nothing to grade"})
    elif any(value_codec.contains_opaque(tree) for tree in inputs):
        emit({"error": "a test input holds a value the sandbox encoding cannot carry"})
    else:
        emit({"inputs": inputs, "outputs": outputs})


def _on_alarm(signum, frame):
    raise _JudgeTimeout()


def _judge_one(test, data: dict, outputs: list) -> dict:
    """Run the test body against one candidate's recorded outputs; how it ended."""
    inputs = data["inputs"]
    calls = [0]

    def replay(*args):
        k = calls[0]
        calls[0] += 1
        if k >= len(inputs) or value_codec.encode(list(args)) != inputs[k]:
            raise _Mismatch()
        if k >= len(outputs):
            raise _Stop()
        return value_codec.decode(outputs[k])

    signal.setitimer(signal.ITIMER_REAL, data["timeout_s"])
    try:
        namespace = _define(data["setup"] + "\n" + data["solution"])
        namespace[data["entry"]] = replay
        exec(test, namespace)
        if data["style"] == "check":
            namespace["check"](replay)
        return {"completed": calls[0]}
    except _Stop:
        return {"stopped_at": calls[0] - 1}
    except _Mismatch:
        return {"error": f"the test's call {calls[0] - 1} differs from the recorded inputs"}
    except _JudgeTimeout:
        return {"error": "comparing the outputs timed out"}
    except BaseException as err:
        if calls[0] == 0:  # the test failed before comparing anything: not the candidate's doing
            return {"error": f"the test failed before its first call: {_summary(err)}"}
        prefix = "" if isinstance(err, AssertionError) else "the test rejected the output: "
        return {"failed_at": calls[0] - 1, "detail": prefix + _summary(err)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def judge(data: dict) -> None:
    """The reference's own outputs first (decoded as a candidate's are): if they do not pass, the
    problem cannot be judged this way and no candidate is; then every candidate in turn."""
    signal.signal(signal.SIGALRM, _on_alarm)
    test = compile(data["test"], "<test>", "exec")
    control = _judge_one(test, data, data["control"])
    if control.get("completed") != len(data["inputs"]):
        emit({"control_error": f"the reference's own outputs do not pass the replayed test: {control}"})
        return
    for c, outputs in enumerate(data["candidates"]):
        emit({"c": c, **_judge_one(test, data, outputs)})


{"record": record, "judge": judge}[job_data["task"]](job_data)
