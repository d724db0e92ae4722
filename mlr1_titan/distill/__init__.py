"""Logit distillation (the paper's mid-training loss, §3.2): a frozen Llama-3 teacher, a chunked KL.

* ``settings``: the ``[distill]`` section (teacher folder, temperature, CE weight);
* ``teacher_folder``: checks on the teacher's HF folder before anything is built;
* ``teacher``: the teacher as torchtitan's Llama-3 model, sharded and loaded like the student;
* ``kd_loss``: KL(teacher || student) per chunk of tokens, inside the chunked loss;
* ``metrics``: the ``distill/*`` metrics of a step;
* ``tiny_teacher``: a small Llama-3-shaped HF teacher trained on local text, for CPU runs and tests.
"""
