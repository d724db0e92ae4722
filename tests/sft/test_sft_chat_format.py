"""The chat format: renderer == Jinja template in transformers, assistant-only targets, row mapping."""

from __future__ import annotations

import pytest

from mlr1_titan.sft.chat_format import (
    DEFAULT_SYSTEM_PROMPTS,
    ChatFormatError,
    chat_template,
    render_ids,
    render_text,
)
from mlr1_titan.sft.chat_loader import shift_conversation
from mlr1_titan.sft.chat_sources import ChatMapping, row_to_messages, split_think
from mlr1_titan.tokenizer import Llama3Tokenizer, save_hf_tokenizer

IGNORE = -100

CONVERSATIONS = [
    [
        {"role": "user", "content": "What is 7 * 6?"},
        {"role": "assistant", "content": "It is \\boxed{42}.", "reasoning_content": "7 times 6 is 42."},
    ],
    [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPTS["math"]},
        {"role": "user", "content": "Solve x + 2 = 5."},
        {"role": "assistant", "content": "x = 3", "reasoning_content": "Subtract 2 from both sides.\nSo x = 3."},
        {"role": "user", "content": "Now x - 4 = 10?"},
        {"role": "assistant", "content": "x = 14"},
    ],
    [
        {"role": "user", "content": "Écris « bonjour » en 日本語 🙂"},
        {"role": "assistant", "content": "こんにちは\n\n  (konnichiwa)"},
        {"role": "user", "content": "```python\nprint('hi')\n```\nWhat does it print?"},
        {"role": "assistant", "content": "It prints `hi`.", "reasoning_content": "print writes its argument."},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "  leading spaces and trailing  "},
        {"role": "assistant", "content": "\nstarts with a newline"},
    ],
]


@pytest.fixture(scope="module")
def tokenizer():
    return Llama3Tokenizer.Config().build()


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer, tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("hf_tok")
    save_hf_tokenizer(tokenizer, folder, chat_template=chat_template())
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def hf_ids(hf_tokenizer, messages, **kwargs):
    out = hf_tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_renderer_matches_transformers_chat_template(tokenizer, hf_tokenizer, index):
    messages = CONVERSATIONS[index]
    assert hf_tokenizer.apply_chat_template(messages, tokenize=False) == render_text(messages)
    assert hf_ids(hf_tokenizer, messages) == render_ids(messages, tokenizer).ids
    prompt = [m for m in messages if m["role"] != "assistant"][:2]
    assert (
        hf_ids(hf_tokenizer, prompt, add_generation_prompt=True)
        == render_ids(prompt, tokenizer, add_generation_prompt=True).ids
    )


def test_assistant_only_mask_on_a_hand_made_sample(tokenizer):
    t = tokenizer
    sp = t.special_tokens
    messages = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "reasoning_content": "greet"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Ciao"},
    ]
    enc = t.encode
    bos, sh, eh, eot = (sp[k] for k in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"))
    gap = enc("\n\n")
    think_body = enc("<think>\ngreet\n</think>\n\nHello")
    expected = [
        (bos, False),
        (sh, False),
        *[(i, False) for i in enc("system")],
        (eh, False),
        *[(i, False) for i in enc("\n\nBe kind.")],
        (eot, False),
        (sh, False),
        *[(i, False) for i in enc("user")],
        (eh, False),
        *[(i, False) for i in enc("\n\nHi")],
        (eot, False),
        (sh, False),
        *[(i, False) for i in enc("assistant")],
        (eh, False),
        *[(i, False) for i in gap],
        *[(i, True) for i in think_body],
        (eot, True),
        (sh, False),
        *[(i, False) for i in enc("user")],
        (eh, False),
        *[(i, False) for i in enc("\n\nBye")],
        (eot, False),
        (sh, False),
        *[(i, False) for i in enc("assistant")],
        (eh, False),
        *[(i, False) for i in gap],
        *[(i, True) for i in enc("Ciao")],
        (eot, True),
    ]
    rendered = render_ids(messages, tokenizer)
    assert list(zip(rendered.ids, rendered.trained)) == expected
    # Shifted: input i predicts token i+1, labelled only where token i+1 is an assistant token.
    inputs, labels = shift_conversation(rendered.ids, rendered.trained)
    assert inputs == [i for i, _ in expected[:-1]]
    assert labels == [i if learn else IGNORE for i, learn in expected[1:]]
    trained_text = t.decode([lab for lab in labels if lab != IGNORE])
    assert trained_text == "<think>\ngreet\n</think>\n\nHello<|eot_id|>Ciao<|eot_id|>"


def test_split_think():
    assert split_think("<think>\nsteps\n</think>\n\nfinal") == ("steps", "final")
    assert split_think("no reasoning here") == (None, "no reasoning here")
    with pytest.raises(ChatFormatError, match="unclosed_think"):
        split_think("<think>never closed")


def test_row_mappings_and_default_system_prompt():
    qa = ChatMapping(
        format="qa",
        prompt_field="q",
        response_field="a",
        split_think=True,
        system_prompt=DEFAULT_SYSTEM_PROMPTS["math"],
    )
    messages = row_to_messages({"q": "1+1?", "a": "<think>\nadd\n</think>\n\n2"}, qa, "src")
    assert messages == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPTS["math"]},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2", "reasoning_content": "add"},
    ]
    chat = ChatMapping(system_prompt="sys")
    row = {
        "messages": [
            {"role": "system", "content": "mine"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
        ]
    }
    assert row_to_messages(row, chat, "src")[0] == {"role": "system", "content": "mine"}  # kept, not doubled


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"messages": [{"role": "user", "content": "only a question"}]}, "no_assistant_turn"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}, "empty_content"),
        ({"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}]}, "unknown_role"),
        ({"messages": "not a list"}, "malformed_message"),
        ({"text": "no messages field"}, "missing_field"),
    ],
)
def test_malformed_rows_raise_a_named_skip_reason(row, reason):
    with pytest.raises(ChatFormatError) as err:
        row_to_messages(row, ChatMapping(), "src")
    assert err.value.reason == reason
