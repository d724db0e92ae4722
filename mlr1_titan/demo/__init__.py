"""`make demo` / `mlr1 demo`: the whole MobileLLM-R1 recipe at tiny scale, offline, on a CPU box.

``data`` generates everything the stages read (corpus sources, probes, chat data, held-out problems,
a small BPE vocabulary); ``chain`` runs the stages through the real launch paths (``mlr1 recipe``,
``mlr1 mix``, ``mlr1 distill``, ``mlr1 export-hf``, ``mlr1 eval``); ``progress`` prints one line
per stage; ``report`` turns the evaluations and the training logs into the accuracy table and the
loss-curve figure.
"""
