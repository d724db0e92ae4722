"""The derived plan of a chat SFT run, kept in its checkpoints (inside the loader's state).

The step count, warmup and packed row shape are derived from the data at start-up
(``mlr1_titan.sft.step_plan``). A resume derives them again; if the data or a setting changed in
between, the step count -- and with it the LR schedule, of which torchtitan's checkpoint keeps only
the position -- would silently change mid-run. Resuming with another *derived* step count is
refused, naming the fix (a step count given with ``--training.steps`` is the user's choice, and only
logged); another batch shape (e.g. another ``training.global_batch_size``) only changes how the
remaining conversations are batched, and is logged. Checkpoints from before the plan was recorded
resume unchecked.
"""

from __future__ import annotations

from typing import Any

from torchtitan.tools.logging import logger


def check_resumed_plan(saved: dict[str, Any] | None, now: dict[str, Any] | None) -> None:
    if saved is None or now is None:
        return
    if now.get("steps_derived") and saved.get("steps") != now["steps"]:
        raise ValueError(
            f"the checkpoint's run was planned for {saved.get('steps')} steps, this start derives {now['steps']} "
            "(the data or a dataloader.chat setting changed since): resume with "
            f"--training.steps {saved.get('steps')} to keep its LR schedule, or start a new run"
        )
    changed = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
    if changed:
        logger.warning(
            "resuming with another SFT plan than the checkpoint's: "
            + ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
            + " (conversations continue where they stopped)"
        )
