"""The MobileLLM-R1 chat format: one renderer for training, the same text as ``chat_template.jinja``.

    <|begin_of_text|>
    <|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>          (optional)
    <|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\n\n<think>\n{reasoning}\n</think>\n\n{answer}<|eot_id|>
    ... more turns ...

Llama-3 header style (the released SFT scripts end turns with ``<|eot_id|>``, paper repo); the
reasoning goes inside ``<think> ... </think>`` before the answer when an assistant message has
``reasoning_content``. The exact released template is not public (paper_facts §1.5), so this is our
documented choice, and the Jinja twin is what the HF export ships so that lm-eval / vLLM render
evaluation prompts byte-identically to training.

Tokenization mirrors a HF tokenizer: special tokens are emitted as ids and every text span between
them is encoded as one unit, so the ids equal ``apply_chat_template(..., tokenize=True)``. Unlike
parsing the rendered string, text inside a message is never turned into special tokens.

Trained tokens (``trained[i]``): for every assistant turn, its content (including the ``<think>``
block) and its closing ``<|eot_id|>``; never the BOS, headers, the blank line after a header, or
system / user text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlr1_titan.llama3_vocab import BOS_TOKEN, END_HEADER_TOKEN, EOT_TOKEN, START_HEADER_TOKEN
from mlr1_titan.resources import chat_template_file

HEADER_GAP = "\n\n"
ROLES = ("system", "user", "assistant")

# Default system prompts per domain (paper repo README inference examples, paraphrased).
DEFAULT_SYSTEM_PROMPTS = {
    "math": "Please reason step by step, and put your final answer within \\boxed{}.",
    "code": (
        "You are a helpful and harmless assistant. Think step by step before answering. "
        "Write the final solution in Python or C++ as a single fenced code block."
    ),
}


def chat_template() -> str:
    return chat_template_file().read_text()


class ChatFormatError(ValueError):
    """A conversation cannot be rendered; ``reason`` is a short key used for skip counts."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def validate_messages(messages: Sequence[dict], require_assistant: bool = True) -> None:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ChatFormatError("empty_conversation", "no messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ChatFormatError("malformed_message", f"message {i} is {type(message).__name__}, not a dict")
        role = message.get("role")
        if role not in ROLES:
            raise ChatFormatError("unknown_role", f"message {i} has role {role!r}; expected one of {ROLES}")
        content = message.get("content")
        if not isinstance(content, str):
            raise ChatFormatError("malformed_message", f"message {i} content is {type(content).__name__}")
        reasoning = message.get("reasoning_content")
        if reasoning is not None and not isinstance(reasoning, str):
            raise ChatFormatError("malformed_message", f"message {i} reasoning_content is not a string")
        if not content.strip() and not (reasoning or "").strip():
            raise ChatFormatError("empty_content", f"message {i} ({role}) is empty")
    if require_assistant and not any(m["role"] == "assistant" for m in messages):
        raise ChatFormatError("no_assistant_turn", "no assistant message to learn from")


def message_body(message: dict) -> str:
    reasoning = message.get("reasoning_content") if message["role"] == "assistant" else None
    if reasoning is not None:
        return f"<think>\n{reasoning}\n</think>\n\n{message['content']}"
    return message["content"]


def render_text(messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """The rendered conversation as text (what the Jinja template produces)."""
    validate_messages(messages, require_assistant=not add_generation_prompt)
    parts = [BOS_TOKEN]
    for m in messages:
        parts += [START_HEADER_TOKEN, m["role"], END_HEADER_TOKEN, HEADER_GAP + message_body(m), EOT_TOKEN]
    if add_generation_prompt:
        parts += [START_HEADER_TOKEN, "assistant", END_HEADER_TOKEN, HEADER_GAP]
    return "".join(parts)


@dataclass(frozen=True)
class RenderedConversation:
    ids: list[int]
    trained: list[bool]

    @property
    def num_trained(self) -> int:
        return sum(self.trained)


def render_ids(messages: Sequence[dict], tokenizer, add_generation_prompt: bool = False) -> RenderedConversation:
    """Token ids and the per-token "is a training target" mask of a conversation."""
    validate_messages(messages, require_assistant=not add_generation_prompt)
    special = tokenizer.special_tokens
    bos, sh, eh, eot = special[BOS_TOKEN], special[START_HEADER_TOKEN], special[END_HEADER_TOKEN], special[EOT_TOKEN]
    gap_ids = tokenizer.encode(HEADER_GAP)
    ids: list[int] = [bos]
    trained: list[bool] = [False]

    def header(role: str) -> None:
        ids.extend([sh, *tokenizer.encode(role), eh])
        trained.extend([False] * (len(ids) - len(trained)))

    for m in messages:
        header(m["role"])
        body = tokenizer.encode(HEADER_GAP + message_body(m))
        learn = m["role"] == "assistant"
        # The blank line after the header belongs to the header (it ends the generation prompt);
        # it is its own token unless the body itself starts with whitespace, which then merges.
        gap = len(gap_ids) if body[: len(gap_ids)] == gap_ids else 1
        ids.extend(body)
        trained.extend([False] * gap + [learn] * (len(body) - gap))
        ids.append(eot)
        trained.append(learn)
    if add_generation_prompt:
        header("assistant")
        ids.extend(gap_ids)
        trained.extend([False] * len(gap_ids))
    return RenderedConversation(ids, trained)
