"""`mlr1 distill tiny-teacher`: the teacher takes the students' tokenizer and the requested shape."""

from __future__ import annotations

import json

from mlr1_titan.cli import main as mlr1
from mlr1_titan.demo.bpe import learn_ranks, write_tiktoken_file
from mlr1_titan.demo.documents import source_documents


def test_tiny_teacher_has_the_given_tokenizers_vocabulary_and_shape(tmp_path):
    texts = source_documents("math", 200, seed=0)
    tokenizer = write_tiktoken_file(learn_ranks(texts, 300), tmp_path / "tok" / "tokenizer.model")
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    args = ["--text", str(text), "--tokenizer", str(tokenizer), "--steps", "2", "--hidden-size", "32", "--layers", "1"]
    assert (
        mlr1(["distill", "tiny-teacher", str(tmp_path / "teacher"), *args, "--batch-size", "2", "--seq-len", "16"]) == 0
    )
    config = json.loads((tmp_path / "teacher" / "config.json").read_text())
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (300 + 256, 32, 1)
    assert config["intermediate_size"] == 96
    recipe = json.loads((tmp_path / "teacher" / "mlr1_tiny_teacher.json").read_text())["recipe"]
    assert (recipe["batch_size"], recipe["seq_len"], recipe["steps"]) == (2, 16, 2)
