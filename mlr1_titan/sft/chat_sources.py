"""Chat data mixes (``data_mix/sft_*.toml``): where conversations come from and how rows become messages.

A chat mix is a data mix (same file format, same source kinds ``hub`` / ``local``, same weights as
token fractions, see docs/data.md) whose sources also say how a row turns into messages:

    unit = "samples"        # (top level) weights are fractions of conversations; default "tokens"
    format = "messages"     # a list of {role, content} dicts in `messages_field` (Tulu-3 style)
    format = "qa"           # one question / one answer: `prompt_field`, `response_field`
    reasoning_field = "..." # optional: the reasoning as its own field
    split_think = true      # or: the response holds "<think>...</think>answer"; split it
    domain = "math"         # adds that domain's default system prompt when a row has none
    system_prompt = "..."   # or give the default system prompt literally
    fill_questions = true   # placeholder questions ("-") are filled by `mlr1 data fill-questions`
                            # from the benchmark each row names (OpenCodeReasoning-2, docs/sft.md)

Rows that cannot become a trainable conversation raise ``ChatFormatError`` with a short reason
(``missing_field``, ``unclosed_think``, ``no_assistant_turn``, ``unknown_role``, ``empty_content``...)
that the loader counts per source and logs; they never stop a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlr1_titan.data.mix_config import MixError, MixSpec, parse_mix, read_mix_toml

from .chat_format import DEFAULT_SYSTEM_PROMPTS, ChatFormatError, validate_messages

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
PLACEHOLDER_PROMPTS = ("", "-")

# Chat-only keys of a [[sources]] entry (the rest are the data-mix keys), with their types.
CHAT_KEYS: dict[str, type] = {
    "format": str,
    "messages_field": str,
    "prompt_field": str,
    "response_field": str,
    "reasoning_field": str,
    "split_think": bool,
    "domain": str,
    "system_prompt": str,
    "fill_questions": bool,
}
FORMATS = ("messages", "qa")


@dataclass(frozen=True)
class ChatMapping:
    format: str = "messages"
    messages_field: str = "messages"
    prompt_field: str = "prompt"
    response_field: str = "response"
    reasoning_field: str | None = None
    split_think: bool = False
    system_prompt: str | None = None
    fill_questions: bool = False
    """Placeholder questions of this source are filled by `mlr1 data fill-questions` from the
    benchmark each row names; the loader itself still skips them (train on the command's output)."""

    def read_fields(self) -> tuple[str, ...]:
        """The top-level row fields this mapping reads (what a parquet reader must load)."""
        if self.format == "messages":
            fields = [self.messages_field]
        else:
            fields = [self.prompt_field, self.response_field, *([self.reasoning_field] if self.reasoning_field else [])]
        return tuple(dict.fromkeys(f.split(".")[0] for f in fields))


UNITS = ("tokens", "samples")


@dataclass(frozen=True)
class ChatMix:
    mix: MixSpec
    mappings: dict[str, ChatMapping]  # by source name
    unit: str = "tokens"
    """What the weights are fractions of: "tokens" (as in pre-training) or "samples" (conversations;
    weights = sample counts reproduce a plain union of the sets, every source ending its epoch together)."""

    @property
    def name(self) -> str:
        return self.mix.name


def _field(row: Any, name: str, source: str) -> Any:
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ChatFormatError("missing_field", f"source '{source}': row has no field '{name}' (fields: {keys})")
        value = value[part]
    return value


def split_think(text: str) -> tuple[str | None, str]:
    """'<think>\\nR\\n</think>\\n\\nA' -> ('R', 'A'); text without a think block -> (None, text)."""
    start = text.find(THINK_OPEN)
    if start < 0:
        return None, text
    end = text.find(THINK_CLOSE, start)
    if end < 0:
        raise ChatFormatError("unclosed_think", "response opens <think> but never closes it")
    reasoning = text[start + len(THINK_OPEN) : end].strip("\n")
    answer = (text[:start] + text[end + len(THINK_CLOSE) :]).lstrip("\n")
    return reasoning, answer


def row_to_messages(row: Any, mapping: ChatMapping, source: str) -> list[dict]:
    """One dataset row -> validated messages (raises ChatFormatError with a skip reason)."""
    if mapping.format == "messages":
        raw = _field(row, mapping.messages_field, source)
        if not isinstance(raw, list):
            raise ChatFormatError("malformed_message", f"source '{source}': '{mapping.messages_field}' is not a list")
        messages = []
        for m in raw:
            if not isinstance(m, dict):
                raise ChatFormatError("malformed_message", f"source '{source}': a message is {type(m).__name__}")
            message = {"role": m.get("role"), "content": m.get("content")}
            if m.get("reasoning_content") is not None:
                message["reasoning_content"] = m["reasoning_content"]
            elif mapping.split_think and message["role"] == "assistant" and isinstance(message["content"], str):
                reasoning, message["content"] = split_think(message["content"])
                if reasoning is not None:
                    message["reasoning_content"] = reasoning
            messages.append(message)
    else:
        prompt = _field(row, mapping.prompt_field, source)
        response = _field(row, mapping.response_field, source)
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise ChatFormatError("malformed_message", f"source '{source}': prompt/response are not strings")
        if prompt.strip() in PLACEHOLDER_PROMPTS:
            # OpenCodeReasoning(-2) publishes "-" for questions that must be fetched from their
            # original benchmark; training on the placeholder would teach answers to nothing.
            raise ChatFormatError(
                "placeholder_prompt",
                f"source '{source}': '{mapping.prompt_field}' is a placeholder ({prompt.strip()!r}); "
                "fill the questions in from the original datasets first (mlr1 data fill-questions)",
            )
        assistant: dict[str, Any] = {"role": "assistant", "content": response}
        if mapping.reasoning_field:
            reasoning = _field(row, mapping.reasoning_field, source)
            if reasoning is not None:
                assistant["reasoning_content"] = str(reasoning)
        elif mapping.split_think:
            reasoning, assistant["content"] = split_think(response)
            if reasoning is not None:
                assistant["reasoning_content"] = reasoning
        messages = [{"role": "user", "content": prompt}, assistant]
    if mapping.system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": mapping.system_prompt})
    validate_messages(messages)
    return messages


def _mapping(entry: dict, where: str) -> ChatMapping:
    values = {}
    for key, kind in CHAT_KEYS.items():
        if key in entry:
            if not isinstance(entry[key], kind):
                raise MixError(f"{where}: '{key}' must be {kind.__name__}, got {entry[key]!r}")
            values[key] = entry[key]
    fmt = values.pop("format", "messages")
    if fmt not in FORMATS:
        raise MixError(f"{where}: unknown chat format {fmt!r}; expected one of {FORMATS}")
    domain = values.pop("domain", None)
    if domain is not None:
        if domain not in DEFAULT_SYSTEM_PROMPTS:
            raise MixError(f"{where}: unknown domain {domain!r}; known: {sorted(DEFAULT_SYSTEM_PROMPTS)}")
        values.setdefault("system_prompt", DEFAULT_SYSTEM_PROMPTS[domain])
    if fmt == "qa" and not {"prompt_field", "response_field"} <= set(values):
        raise MixError(f"{where}: format 'qa' needs 'prompt_field' and 'response_field'")
    if values.get("fill_questions") and fmt != "qa":
        raise MixError(f"{where}: 'fill_questions' fills a question field, so it needs format 'qa', got {fmt!r}")
    return ChatMapping(format=fmt, **values)


def parse_chat_mix(raw: dict[str, Any], *, file: str) -> ChatMix:
    raw = dict(raw)
    unit = raw.pop("unit", "tokens")
    if unit not in UNITS:
        raise MixError(f"{file}: 'unit' must be one of {UNITS}, got {unit!r}")
    defaults = dict(raw.get("defaults", {}))
    chat_defaults = {k: defaults.pop(k) for k in list(defaults) if k in CHAT_KEYS}
    raw["defaults"] = defaults
    entries, mappings = [], {}
    for i, entry in enumerate(raw.get("sources") or []):
        if not isinstance(entry, dict):
            raise MixError(f"{file}: source #{i + 1} is not a table")
        chat = {**chat_defaults, **{k: v for k, v in entry.items() if k in CHAT_KEYS}}
        where = f"{file}: source '{entry.get('name', f'#{i + 1}')}'"
        mapping = mappings[entry.get("name")] = _mapping(chat, where)
        entry = {k: v for k, v in entry.items() if k not in CHAT_KEYS}
        if "text_fields" not in entry and "text_fields" not in defaults:
            # The readers load (parquet) and check (hub schema) the source's `text_fields`; for a chat
            # source those are the fields its mapping reads.
            entry["text_fields"] = list(mapping.read_fields())
        entries.append(entry)
    raw["sources"] = entries
    mix = parse_mix(raw, file=file)
    for source in mix.sources:
        if source.kind not in ("hub", "local"):
            raise MixError(f"{source.where}: chat sources are 'hub' or 'local' (rows with fields), not {source.kind!r}")
    return ChatMix(mix=mix, mappings={s.name: mappings[s.name] for s in mix.sources}, unit=unit)


def load_chat_mix(name_or_path: str) -> ChatMix:
    path, raw = read_mix_toml(name_or_path)
    return parse_chat_mix(raw, file=str(path))


__all__ = [
    "ChatMapping",
    "ChatMix",
    "load_chat_mix",
    "parse_chat_mix",
    "row_to_messages",
    "split_think",
]
