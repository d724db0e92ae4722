"""The paper's stage sequence per model size, the hand-off between stages, and the checks a launch makes."""

from mlr1_titan.recipe.stages import (
    DONE_FILE,
    RecipeError,
    Stage,
    finished_checkpoint,
    load_stages,
    mark_finished,
    sizes,
)

__all__ = ["DONE_FILE", "RecipeError", "Stage", "finished_checkpoint", "load_stages", "mark_finished", "sizes"]
