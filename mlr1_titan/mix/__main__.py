"""`python -m mlr1_titan.mix score|filter ...`, the entry point for `torchrun --nproc_per_node=N -m mlr1_titan.mix`."""

import sys

from mlr1_titan.mix.commands import build_parser, run

if __name__ == "__main__":
    args = build_parser("python -m mlr1_titan.mix").parse_args()
    sys.exit(run(args.func, args))
