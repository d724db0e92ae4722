"""Trusted program for HumanEval+/MBPP+ assert-style tests, run in the sandbox (``program`` mode).

It never runs candidate code. ``job_data["task"]``:

- ``record``: define the canonical solution and run the benchmark's own test body with the entry
  point wrapped, so every call's arguments are recorded (encoded before the call) while the
  test's asserts run against the canonical outputs. Emits ``{"inputs": [...]}``, or the test's
  failure (the dataset's solution failing its own test).
- ``judge``: for each candidate, run the test body again with the entry point replaced by a replay
  of that candidate's recorded outputs (decoded: plain builtin values only). The test's own
  ``assertion``/``isclose``-style checks decide, so its tolerance semantics are kept. Emits one
  ``{"c": index, ...}`` line per candidate: ``completed``, ``failed_at``, ``stopped_at`` (the
  candidate has no output there) or ``error``.

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
    """The test body calling ``fn`` as the entry point (``check(candidate)`` style or by name)."""
    if data["style"] == "check":
        exec(compile(data["test"], "<test>", "exec"), namespace)
        namespace["check"](fn)
    else:
        namespace[data["entry"]] = fn
        exec(compile(data["test"], "<test>", "exec"), namespace)


def record(data: dict) -> None:
    namespace = _define(data["setup"] + "\n" + data["solution"])
    canonical = namespace[data["entry"]]
    inputs = []

    def recorder(*args):
        inputs.append(value_codec.encode(list(args)))
        return canonical(*args)

    try:
        _run_test(namespace, data, recorder)
    except BaseException as err:
        emit({"error": f"the canonical solution fails its own test after {len(inputs)} calls: {_summary(err)}"})
        return
    emit({"inputs": inputs})


def _on_alarm(signum, frame):
    raise _JudgeTimeout()


def judge(data: dict) -> None:
    inputs = data["inputs"]
    signal.signal(signal.SIGALRM, _on_alarm)
    for c, outputs in enumerate(data["candidates"]):
        calls = [0]

        def replay(*args, outputs=outputs, calls=calls):
            k = calls[0]
            calls[0] += 1
            if k >= len(inputs) or value_codec.encode(list(args)) != inputs[k]:
                raise _Mismatch()
            if k >= len(outputs):
                raise _Stop()
            return value_codec.decode(outputs[k])

        signal.setitimer(signal.ITIMER_REAL, data["timeout_s"])
        try:
            _run_test(_define(data["setup"]), data, replay)
            result = {"completed": calls[0]}
        except _Stop:
            result = {"stopped_at": calls[0] - 1}
        except _Mismatch:
            result = {"error": f"the test's call {calls[0] - 1} differs from the recorded inputs"}
        except _JudgeTimeout:
            result = {"error": "comparing the outputs timed out"}
        except AssertionError as err:
            result = {"failed_at": calls[0] - 1, "detail": _summary(err)}
        except Exception as err:  # the test's own comparison could not handle the output
            result = {"failed_at": calls[0] - 1, "detail": f"the test rejected the output: {_summary(err)}"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        emit({"c": c, **result})


{"record": record, "judge": judge}[job_data["task"]](job_data)
