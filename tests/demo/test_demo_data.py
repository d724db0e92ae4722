"""The demo's generated inputs: held-out problems really held out, correct gold answers, a BPE
vocabulary that the Llama-3 tokenizer interface reads, and mixes the loaders accept."""

from __future__ import annotations

import json
import re

import pytest

from mlr1_titan.demo import world
from mlr1_titan.demo.data import DataSizes, write_demo_data, write_phase2_mix
from mlr1_titan.demo.documents import SmallFunction

SMALL = DataSizes(docs_per_source=300, midtrain_docs=200, general_rows=200, reasoning_rows=400, bpe_ranks=512)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp("demo") / "data", SMALL)


def test_the_data_are_the_same_bytes_on_every_run(demo_data, tmp_path):
    again = write_demo_data(tmp_path / "data", SMALL)
    files = sorted(p.relative_to(demo_data.root) for p in demo_data.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*") if p.is_file())
    for name in files:
        if name.suffix == ".toml":  # mixes name their files by absolute path
            continue
        assert (demo_data.root / name).read_bytes() == (again.root / name).read_bytes(), name


def _training_text(data) -> str:
    parts = []
    for folder in ("corpus", "midtrain", "chat"):
        for path in sorted((data.root / folder).glob("*.jsonl")):
            parts.append(path.read_text())
    return "\n".join(parts)


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_held_out_problems_share_no_question_operands_or_function_with_training(demo_data):
    training = _training_text(demo_data)
    math = _rows(demo_data.eval_dir / "gsm8k.jsonl")
    assert len(math) == SMALL.math_problems
    for row in math:
        assert row["question"] not in training
        a, b = map(int, re.findall(r"\d+", row["question"])[:2])
        assert world.is_heldout_pair(a, b, "-" if "left" in row["question"] else "+")
    trained = {(int(a), op, int(b)) for a, op, b in re.findall(r"So (\d+) ([+-]) (\d+) =", training)}
    assert trained and not any(world.is_heldout_pair(a, b, op) for a, op, b in trained)
    sums = [row for row in math if "left" not in row["question"]]
    assert sums
    for row in sums:  # nor the commutative twin of a held-out sum
        a, b = map(int, re.findall(r"\d+", row["question"])[:2])
        assert (b, "+", a) not in trained and (a, "+", b) not in trained
    code = _rows(demo_data.eval_dir / "humaneval_plus.jsonl")
    assert len(code) == SMALL.code_problems
    for row in code:
        assert f"def {row['entry_point']}(" not in training


def test_gold_answers_and_worked_steps_are_right_for_every_operand_pair():
    for a in range(10, 100):
        for b in range(2, 50):
            for op in "+-":
                if op == "-" and b > a:
                    continue
                steps = world.digit_steps(a, b, op)
                units, tens = (int(x) for x in re.findall(r"= (-?\d+)", steps)[:2])
                result = world.apply(a, b, op)
                assert steps.endswith(f"So {a} {op} {b} = {result}.")
                assert 10 * tens + units % 10 == result and result >= 0


def test_each_held_out_code_test_passes_the_reference_and_fails_a_neighbour(demo_data):
    for row in _rows(demo_data.eval_dir / "humaneval_plus.jsonl"):
        namespace: dict = {}
        exec(row["prompt"] + row["canonical_solution"] + row["test"], namespace)  # our own generated text
        namespace["check"](namespace[row["entry_point"]])
        kind, k = row["entry_point"].split("_")
        wrong = SmallFunction(kind, int(k) + 1)
        with pytest.raises(AssertionError):
            namespace["check"](wrong)


def test_the_vocabulary_is_read_by_the_llama3_tokenizer_interface(demo_data, tmp_path):
    from transformers import AutoTokenizer

    from mlr1_titan.tokenizer import Llama3Tokenizer, save_hf_tokenizer

    tok = Llama3Tokenizer(Llama3Tokenizer.Config(path=str(demo_data.tokenizer)))
    assert tok.get_vocab_size() == SMALL.bpe_ranks + 256
    assert tok.bos_id == SMALL.bpe_ranks and tok.eot_id == SMALL.bpe_ranks + 9  # the Llama-3 layout after the ranks
    text = _rows(demo_data.eval_dir / "gsm8k.jsonl")[0]["question"] + " naïve ünïcode"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    number = tok.encode("12345")
    assert [tok.decode([i]) for i in number] == list("12345")  # one token per digit
    save_hf_tokenizer(tok, tmp_path / "hf", chat_template="")
    hf = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf(text, add_special_tokens=False)["input_ids"] == ids


def test_the_mixes_load_and_phase_two_moves_token_share_to_math(demo_data, tmp_path):
    from mlr1_titan.data.mix_config import load_mix
    from mlr1_titan.sft.chat_sources import load_chat_mix

    uniform = load_mix(demo_data.mix("uniform"))
    assert sorted(s.name for s in uniform.sources) == ["code", "math", "noise", "prose"]
    chat = load_chat_mix(str(demo_data.mix("sft_reasoning")))
    assert chat.mappings["reasoning"].split_think
    # a scored mix as `mix score` writes it: some sources dropped (weight 0)
    scored = tmp_path / "scored.toml"
    scored.write_text(
        demo_data.mix("uniform")
        .read_text()
        .replace("weight = 1.0", "weight = 0.25", 2)
        .replace("weight = 1.0", "weight = 0.0")
    )
    phase1, phase2 = load_mix(scored), load_mix(write_phase2_mix(demo_data, scored))

    def shares(mix):
        total = sum(s.weight for s in mix.sources)
        return {s.name: s.weight / total for s in mix.sources}

    assert shares(phase1) == {"math": 0.5, "code": 0.5, "prose": 0.0, "noise": 0.0}
    assert shares(phase2) == pytest.approx({"math": 2 / 3, "code": 1 / 3, "prose": 0.0, "noise": 0.0})
