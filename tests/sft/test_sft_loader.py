"""Chat SFT loader: packing with per-conversation positions, padding, over-length policy, skips,
token-weighted mixing, exact resume, and loss normalised over the global batch's trained tokens."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from sft_testkit import write_chat_mix, write_chat_sets, write_jsonl

from mlr1_titan.sft.chat_loader import ChatDataLoader, ChatDataset
from mlr1_titan.sft.chat_sources import load_chat_mix
from mlr1_titan.sft.step_plan import derive_steps, measure_mix
from mlr1_titan.tokenizer import Llama3Tokenizer

IGNORE = -100


@pytest.fixture(scope="module")
def tokenizer():
    return Llama3Tokenizer.Config().build()


@pytest.fixture(scope="module")
def mix_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    files = write_chat_sets(root, n=120)
    return write_chat_mix(root / "mix.toml", files["math_train"], files["words_train"])


def dataset(mix_file, tokenizer, **kwargs):
    kwargs.setdefault("seq_len", 128)
    return ChatDataset(load_chat_mix(str(mix_file)), tokenizer, **kwargs)


def documents(positions):
    """Split a row into [start, end) spans where positions restart at 0."""
    starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
    return list(zip(starts[:-1], starts[1:]))


def test_packed_rows_hold_whole_conversations_with_their_own_positions(mix_file, tokenizer):
    ds = dataset(mix_file, tokenizer)
    bos = tokenizer.bos_id
    for _ in range(10):
        inputs, labels, positions = ds.next_row()
        assert len(inputs) == len(labels) == len(positions) == 128
        spans = documents(positions)
        conversations = [s for s in spans if inputs[s[0]] == bos]
        assert len(conversations) >= 2  # short conversations: packing puts several in a row
        for start, end in spans:
            assert positions[start:end] == list(range(end - start))
            if inputs[start] != bos:  # trailing padding: never a target
                assert all(lab == IGNORE for lab in labels[start:end])
            # No label points into the next conversation: the last label of each is its <|eot_id|>
            # or -100, never the next BOS.
            assert labels[end - 1] in (IGNORE, tokenizer.eot_id)
        assert bos not in labels


def test_packing_off_pads_each_micro_batch_to_its_longest_conversation(mix_file, tokenizer):
    """One conversation per row; the micro-batch is padded to its longest row rounded up to
    pad_multiple -- never to seq_len -- and padding is never a target."""
    cfg = ChatDataLoader.Config(mix=str(mix_file), packing=False, pad_multiple=4)
    loader = cfg.build(dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=512, local_batch_size=2)
    reference = dataset(mix_file, tokenizer, packing=False, seq_len=512)
    widths = set()
    for _, (x, labels) in zip(range(10), loader):
        rows = [reference.next_row() for _ in range(2)]
        longest = max(len(r[0]) for r in rows)
        width = x["input"].shape[1]
        widths.add(width)
        assert width == -(-longest // 4) * 4 < 512
        for b, (inputs, row_labels, _) in enumerate(rows):
            n = len(inputs)
            assert inputs[0] == tokenizer.bos_id and inputs.count(tokenizer.bos_id) == 1
            assert x["input"][b, :n].tolist() == inputs and labels[b, :n].tolist() == row_labels
            assert x["positions"][b, :n].tolist() == list(range(n))
            assert set(x["input"][b, n:].tolist()) <= {reference.pad_id}
            assert set(labels[b, n:].tolist()) <= {IGNORE}
            assert x["positions"][b, n:].tolist() == [0] * (width - n)  # padding: one-token documents
    assert len(widths) > 1  # the shape follows the data


def test_packed_rows_are_full_and_keep_every_conversation_once(tmp_path, tokenizer):
    """Best-fit packing: a row's free tail is always shorter than every waiting conversation, rows are
    > 95% full, and one pass serves exactly the stream's conversations, whole, each once."""
    files = write_chat_sets(tmp_path, n=200, seed=3)
    mix = write_chat_mix(tmp_path / "m.toml", files["math_train"], files["words_train"])
    packed = dataset(mix, tokenizer, seq_len=128, row_tokens=384, lookahead=16, infinite=False)
    stream = dataset(mix, tokenizer, seq_len=128, infinite=False, packing=False)
    expected = [(tuple(x["input"].tolist()), tuple(lab.tolist())) for x, lab in stream]
    got, rows, real = [], 0, 0
    for x, labels in packed:
        inputs, labels, positions = x["input"].tolist(), labels.tolist(), x["positions"].tolist()
        assert len(inputs) == len(labels) == len(positions) == 384
        rows += 1
        used = 0
        for start, end in documents(positions):
            if inputs[start] == tokenizer.bos_id:
                got.append((tuple(inputs[start:end]), tuple(labels[start:end])))
                used += end - start
        real += used
        if packed.packer.waiting:
            assert 384 - used < min(len(w.inputs) for w in packed.packer.waiting)
    assert Counter(got) == Counter(expected) and len(got) == sum(packed.conversations) > 200
    assert real / (rows * 384) > 0.95
    assert packed.metrics()["sft_data/real_token_fraction"] == pytest.approx(real / (rows * 384))


def test_loss_scope_assistant_or_all_on_the_same_conversation(tmp_path, tokenizer):
    from mlr1_titan.sft.chat_format import render_ids

    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Spell cedar backwards."},
        {"role": "assistant", "content": "radec"},
        {"role": "user", "content": "And iris?"},
        {"role": "assistant", "content": "siri"},
    ]
    rows = write_jsonl(tmp_path / "c.jsonl", [{"messages": conversation}])
    mix = tmp_path / "c.toml"
    mix.write_text(
        'name = "c"\n[[sources]]\nname = "c"\nkind = "local"\n'
        f'path = "{rows.as_posix()}"\nformat = "messages"\nweight = 1\n'
    )
    ids = render_ids(conversation, tokenizer)
    assistant = dataset(mix, tokenizer, seq_len=256, loss_on="assistant").next_sample()
    everything = dataset(mix, tokenizer, seq_len=256, loss_on="all").next_sample()
    assert assistant.inputs == everything.inputs == ids.ids[:-1]
    # all: every next token is a target, the system / user text and headers included
    assert everything.labels == ids.ids[1:]
    # assistant: exactly the assistant bodies and their <|eot_id|>
    assert assistant.labels == [t if learn else IGNORE for t, learn in zip(ids.ids[1:], ids.trained[1:])]
    trained_text = tokenizer.decode([t for t in assistant.labels if t != IGNORE])
    assert trained_text == "radec<|eot_id|>siri<|eot_id|>"
    assert "Spell cedar" in tokenizer.decode(everything.labels)
    with pytest.raises(ValueError, match="loss_on"):
        dataset(mix, tokenizer, loss_on="prompt")


def test_overlength_truncate_keeps_prompt_drop_skips(tmp_path, tokenizer):
    long_answer = "word " * 200
    rows = [{"problem": "Short question?", "generated_solution": long_answer}]
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    tiny = write_jsonl(
        tmp_path / "tiny.jsonl",
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    mix = write_chat_mix(tmp_path / "long_mix.toml", data, tiny, math_weight=1.0, words_weight=1e-9)

    ds = dataset(mix, tokenizer, seq_len=64, overlength="truncate", packing=False)
    sample = ds.next_sample()
    assert sample.source == 0 and len(sample.inputs) == 64
    assert sample.inputs[0] == tokenizer.bos_id
    assert tokenizer.decode(sample.inputs).count("Short question?") == 1  # the prompt is kept
    assert ds.skips["math/truncated"] == 1

    # Dropping: over-length rows are skipped and counted; a source left with nothing usable is an
    # error naming it, never a silent drop.
    ok = {"problem": "Short?", "generated_solution": "yes"}
    data2 = write_jsonl(tmp_path / "mixed.jsonl", rows + [ok])
    mix2 = write_chat_mix(tmp_path / "mixed_mix.toml", data2, tiny, math_weight=1.0, words_weight=1e-9)
    ds = dataset(mix2, tokenizer, seq_len=64, overlength="drop", packing=False)
    served = [ds.next_sample() for _ in range(4)]
    assert all(tokenizer.decode(s.inputs).count("Short?") == 1 for s in served if s.source == 0)
    assert ds.skips["math/too_long"] >= 1 and ds.skips["math/truncated"] == 0
    ds = dataset(mix, tokenizer, seq_len=64, overlength="drop", packing=False)
    with pytest.raises(Exception, match="source 'math'.*no usable conversation"):
        ds.next_sample()


def test_malformed_rows_are_skipped_counted_and_logged(tmp_path, tokenizer, caplog):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    rows = [
        good,
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
        {"text": "wrong schema"},
    ]
    words = write_jsonl(tmp_path / "w.jsonl", rows)
    math = write_jsonl(
        tmp_path / "m.jsonl",
        [{"problem": "p", "generated_solution": "<think>open"}, {"problem": "p", "generated_solution": "fine"}],
    )
    mix = write_chat_mix(tmp_path / "bad_mix.toml", math, words)
    ds = dataset(mix, tokenizer, seq_len=64)
    with caplog.at_level("WARNING"):
        served = [ds.next_sample() for _ in range(16)]
    assert {s.source for s in served} == {0, 1}  # both sources keep serving their good rows
    for key in (
        "words/no_assistant_turn",
        "words/unknown_role",
        "words/empty_content",
        "words/missing_field",
        "math/unclosed_think",
    ):
        assert ds.skips[key] >= 1, key
    assert "skipped" in caplog.text and "words/unknown_role" in caplog.text


def test_sources_mix_by_token_weight(mix_file, tmp_path, tokenizer):
    root = tmp_path / "w"
    files = write_chat_sets(root, n=150, seed=3)
    mix = write_chat_mix(root / "mix31.toml", files["math_train"], files["words_train"], 3.0, 1.0)
    ds = dataset(mix, tokenizer)
    tokens = Counter()
    for _ in range(600):
        s = ds.next_sample()
        tokens[s.source] += len(s.inputs)
    fraction = tokens[0] / (tokens[0] + tokens[1])
    assert fraction == pytest.approx(0.75, abs=0.01)


def test_sample_unit_mixes_by_conversation_count(tmp_path, tokenizer):
    files = write_chat_sets(tmp_path, n=150, seed=4)
    mix = write_chat_mix(tmp_path / "by_samples.toml", files["math_train"], files["words_train"], 3.0, 1.0)
    mix.write_text('unit = "samples"\n' + mix.read_text())
    ds = dataset(mix, tokenizer)
    counts = Counter(ds.next_sample().source for _ in range(400))
    assert counts[0] / 400 == pytest.approx(0.75, abs=0.01)


def test_placeholder_questions_are_skipped_and_counted(tmp_path, tokenizer):
    rows = [{"problem": "-", "generated_solution": "code"}, {"problem": "Real?", "generated_solution": "yes"}]
    math = write_jsonl(tmp_path / "ocr.jsonl", rows)
    words = write_jsonl(
        tmp_path / "w.jsonl", [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    )
    ds = dataset(write_chat_mix(tmp_path / "ph.toml", math, words, 1.0, 1e-9), tokenizer, seq_len=64)
    served = [ds.next_sample() for _ in range(4)]
    assert all("Real?" in tokenizer.decode(s.inputs) for s in served if s.source == 0)
    assert ds.skips["math/placeholder_prompt"] >= 1


def test_resume_replays_identical_rows(tmp_path, tokenizer):
    files = write_chat_sets(tmp_path, n=20, seed=5)
    mix_file = write_chat_mix(tmp_path / "small.toml", files["math_train"], files["words_train"])
    straight = dataset(mix_file, tokenizer)
    rows = [straight.next_row() for _ in range(40)]  # crosses several epochs of the 20-row sources

    first = dataset(mix_file, tokenizer)
    for _ in range(23):
        first.next_row()
    state = json.loads(json.dumps(first.state_dict()))  # must survive serialisation
    resumed = dataset(mix_file, tokenizer)
    resumed.load_state_dict(state)
    assert [resumed.next_row() for _ in range(17)] == rows[23:]
    # The checkpoint was taken in the middle of a source's second (or later) epoch.
    assert any(r.epoch >= 1 and 0 < r.cursor < 20 for r in first.readers)


def test_dataloader_state_roundtrip_through_torchtitan(mix_file, tokenizer):
    def loader():
        cfg = ChatDataLoader.Config(mix=str(mix_file))
        return cfg.build(dp_world_size=2, dp_rank=1, tokenizer=tokenizer, seq_len=96, local_batch_size=3)

    a = loader()
    it = iter(a)
    for _ in range(4):
        next(it)
    state = a.state_dict()
    expected = [next(it) for _ in range(3)]
    b = loader()
    b.load_state_dict(state)
    got = [batch for _, batch in zip(range(3), iter(b))]
    for (xa, la), (xb, lb) in zip(expected, got):
        assert torch.equal(xa["input"], xb["input"]) and torch.equal(la, lb)
        assert torch.equal(xa["positions"], xb["positions"])


def test_data_parallel_ranks_read_disjoint_rows(mix_file, tokenizer):
    seen = []
    for rank in range(2):
        ds = dataset(mix_file, tokenizer, dp_rank=rank, dp_world_size=2)
        seen.append({ds.readers[0].next_row()[1] for _ in range(60)})  # rows are named file:line
    assert len(seen[0]) == len(seen[1]) == 60
    assert not seen[0] & seen[1]  # together: the whole 120-row epoch, each row once


def test_loss_is_normalised_over_all_trained_tokens_of_the_global_batch():
    """Two micro-batches with 3 and 300 trained tokens: the trainer's loss is the token mean."""
    from torchtitan.components.loss import CrossEntropyLoss

    torch.manual_seed(0)
    loss_fn = CrossEntropyLoss.Config().build()
    vocab = 50
    micro = []
    for trained in (3, 300):
        logits = torch.randn(1, 400, vocab)
        labels = torch.full((1, 400), IGNORE)
        labels[0, :trained] = torch.randint(0, vocab, (trained,))
        micro.append((logits, labels))
    global_valid = sum(int((lab != IGNORE).sum()) for _, lab in micro)
    trainer_loss = sum(loss_fn(lg, lab, torch.tensor(global_valid))[0] for lg, lab in micro)

    all_logits = torch.cat([lg[lab != IGNORE] for lg, lab in micro])
    all_labels = torch.cat([lab[lab != IGNORE] for _, lab in micro])
    token_mean = torch.nn.functional.cross_entropy(all_logits, all_labels)
    per_sample_means = torch.stack(
        [torch.nn.functional.cross_entropy(lg[lab != IGNORE], lab[lab != IGNORE]) for lg, lab in micro]
    ).mean()
    assert trainer_loss.item() == pytest.approx(token_mean.item(), rel=1e-5)
    assert abs(trainer_loss.item() - per_sample_means.item()) > 1e-3


def test_epochs_derive_the_step_count(mix_file, tokenizer):
    measured = measure_mix(ChatDataLoader.Config(mix=str(mix_file), epochs=2), tokenizer, seq_len=128)
    assert measured.rows == {"math": 120, "words": 120} and measured.usable == 1.0
    assert len(measured.lengths) == 240 and max(measured.lengths) <= 128  # a mix this small: measured whole
    steps, conversations = derive_steps(measured, epochs=2, conversations_per_step=8)
    assert (steps, conversations) == (2 * 240 // 8, 480)  # 240 rows, all usable
    assert derive_steps(measured, epochs=2, conversations_per_step=7.5)[0] == 64  # ceil(480 / 7.5)


def test_preview_sft_marks_exactly_the_trained_spans(mix_file, capsys):
    from mlr1_titan.cli import main

    assert main(["data", "preview-sft", str(mix_file), "--n", "3", "--markers", "--seq-len", "256"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== sample") == 3
    for block in out.split("=== sample")[1:]:
        trained = block.split("⟦")[1:]
        assert trained, block
        for span in trained:
            text = span.split("⟧")[0]
            assert text.endswith("<|eot_id|>")  # each assistant turn ends its trained span
            assert "<|start_header_id|>" not in text and "user" not in text
        untrained = "".join(part.split("⟧")[-1] for part in block.split("⟦"))
        assert "<|begin_of_text|>" in untrained
    # --loss-on all: everything after the first token is one trained span
    assert main(["data", "preview-sft", str(mix_file), "--n", "2", "--markers", "--loss-on", "all"]) == 0
    for block in capsys.readouterr().out.split("=== sample")[1:]:
        body = block.split("===\n", 1)[1].strip()
        assert body.startswith("<|begin_of_text|>⟦<|start_header_id|>") and body.endswith("<|eot_id|>⟧")
        assert body.count("⟦") == 1


def test_data_show_understands_chat_mixes(capsys):
    from mlr1_titan.cli import main

    assert main(["data", "show", "sft_reasoning"]) == 0
    out = capsys.readouterr().out
    assert "weights are fractions of samples" in out and "open_math_reasoning" in out and "format=qa" in out


def test_finite_dataset_is_one_pass_for_the_validator(mix_file, tokenizer):
    """torchtitan's validator (steps = -1) asks for infinite = False: one pass, then the iterator ends."""
    finite = dataset(mix_file, tokenizer, infinite=False, packing=False)
    rows = list(finite)
    assert rows and finite.exhausted
    conversations = sum(finite.conversations)
    # one conversation per row (no packing); the pass ends when a source would start its 2nd epoch
    assert len(rows) == conversations and max(r.epoch for r in finite.readers) == 0
    assert conversations <= 2 * 120
    endless = iter(dataset(mix_file, tokenizer, packing=False))
    assert len([next(endless) for _ in range(3 * 120)]) == 3 * 120  # infinite: re-reads epochs


def test_row_quota_keeps_the_mean_conversations_per_row_and_resumes(mix_file, tokenizer):
    def per_row(ds, n):
        out = []
        for _ in range(n):
            inputs, _, positions = ds.next_row()
            out.append(sum(1 for s, _ in documents(positions) if inputs[s] == tokenizer.bos_id))
        return out

    ds = dataset(mix_file, tokenizer, seq_len=128, row_tokens=512, row_quota=2.25)
    counts = per_row(ds, 40)  # short conversations: many would fit, 2.25 per row are taken on average
    assert set(counts) == {2, 3} and sum(counts) == 90
    resumed = dataset(mix_file, tokenizer, seq_len=128, row_tokens=512, row_quota=2.25)
    first = dataset(mix_file, tokenizer, seq_len=128, row_tokens=512, row_quota=2.25)
    per_row(first, 13)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert per_row(resumed, 27) == counts[13:]
