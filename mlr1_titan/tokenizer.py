"""Llama-3 tokenizer (128,000 tiktoken BPE ranks + 256 special tokens) for torchtitan.

MobileLLM-R1 reuses the Llama-3 vocabulary. ``Llama3Tokenizer`` reads it either
from Meta's tiktoken file (``tokenizer.model``) or from a Hugging Face
``tokenizer.json``, and exposes the same ids and interface for both, so a
training run and an exported HF checkpoint agree token for token.
``save_hf_tokenizer`` writes the HF side of that pair.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Literal

import regex
import tiktoken
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.tools.logging import logger

from mlr1_titan.llama3_vocab import BOS_TOKEN, EOS_TOKEN, EOT_TOKEN, PAD_TOKEN, llama3_special_tokens

# Llama-3's pre-tokenizer: contractions, letter runs with one optional leading
# non-letter, digits in groups of at most three, punctuation runs, newline
# runs, and other whitespace (which leaves its last space to the next word).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# One BPE call never sees more than this many characters. tiktoken's regex
# engine overflows its stack on long whitespace runs (1M spaces panics) and BPE
# cost grows with the length of a single pre-token, so long text is cut first.
# 25k bounds both the total and any run, as Meta's reference does; unlike that
# reference we cut only where the pre-tokenizer would split anyway (see
# _PRETOKEN_BOUNDARY), so ids stay identical to encoding the text in one go.
MAX_CHARS_PER_BPE_CALL = 25_000

# Positions that are pre-token boundaries of PRETOKENIZE_REGEX whatever the
# surrounding text, so encoding each side separately cannot change the ids.
# Inside any piece the regex can match,
#   a letter is only followed by a letter      -> cut at letter | non-letter
#   a digit only by a digit                    -> cut at digit | non-digit
#   a non-space only by a non-space or newline -> cut at non-space | other space
#   a newline only by whitespace               -> cut at newline | non-space
# and the regex's one lookahead, \s+(?!\S), cannot end a piece at such a cut.
# Written for the `regex` module because its \s and \p{..} classes are the
# Unicode ones tiktoken uses; the stdlib `re` counts U+001C..U+001F as spaces.
# (?r) searches backwards: we want the last boundary that fits in a chunk.
_PRETOKEN_BOUNDARY = regex.compile(
    r"(?r)(?<=\p{L})(?=\P{L})"
    r"|(?<=\p{N})(?=\P{N})"
    r"|(?<=\S)(?=[^\S\r\n])"
    r"|(?<=[\r\n])(?=\S)"
)

TIKTOKEN_FILE_NAME = "tokenizer.model"
HF_TOKENIZER_FILE_NAME = "tokenizer.json"


_NEVER_MATCHES = r"(?!)"


def default_tokenizer_file() -> Path:
    """Meta's Llama-3 tiktoken file shipped inside the `llama_models` package."""
    resource = files("llama_models").joinpath("llama3", TIKTOKEN_FILE_NAME)
    # For an ordinary (unzipped) install as_file yields the file itself and
    # leaving the context deletes nothing.
    with as_file(resource) as path:
        return Path(path)


def _byte_level_alphabet() -> list[str]:
    """The GPT-2 byte-to-character table HF byte-level BPE uses to spell raw bytes.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls,
    space, soft hyphen, ...) are moved to U+0100 onwards, so every token is a
    visible string without whitespace.
    """
    keeps_own_char = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    alphabet = []
    next_substitute = 0x100
    for byte in range(256):
        if byte in keeps_own_char:
            alphabet.append(chr(byte))
        else:
            alphabet.append(chr(next_substitute))
            next_substitute += 1
    return alphabet


_BYTE_TO_CHAR = _byte_level_alphabet()
_CHAR_TO_BYTE = {char: byte for byte, char in enumerate(_BYTE_TO_CHAR)}


def _bytes_to_byte_level(token: bytes) -> str:
    return "".join(_BYTE_TO_CHAR[byte] for byte in token)


def _byte_level_to_bytes(token: str) -> bytes | None:
    if any(char not in _CHAR_TO_BYTE for char in token):
        return None
    return bytes(_CHAR_TO_BYTE[char] for char in token)


def _split_at_pretoken_boundaries(text: str, max_chars: int) -> Iterator[str]:
    """Cut `text` into chunks of at most `max_chars` characters at pre-token boundaries.

    A window with no boundary _PRETOKEN_BOUNDARY recognises (25k spaces,
    letters or punctuation in a row) is cut blindly at its end; text like that
    has no tokenization worth preserving.
    """
    start = 0
    while len(text) - start > max_chars:
        # One character past the limit so the lookahead can see what follows
        # a boundary sitting exactly at the limit.
        window = text[start : start + max_chars + 1]
        boundary = _PRETOKEN_BOUNDARY.search(window, 1, max_chars + 1)
        cut = boundary.start() if boundary else max_chars
        yield text[start : start + cut]
        start += cut
    yield text[start:]


def _read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Parse a tiktoken BPE file: one `<base64 token bytes> <rank>` per line."""
    # Parsed here rather than with tiktoken.load, which also copies every file
    # it reads into a cache directory under /tmp.
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:  # keeps the subclass, e.g. FileNotFoundError
        raise type(err)(f"cannot read tokenizer file {path}: {err.strerror or err}") from err
    ranks: dict[bytes, int] = {}
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            encoded_token, rank = line.split()
            ranks[base64.b64decode(encoded_token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as err:
            raise ValueError(f"{path} is not a tiktoken BPE file: line {line_number} is {line[:80]!r}") from err
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"{path}: BPE ranks must be 0..{len(ranks) - 1}, each used once")
    return ranks


def _looks_like_tiktoken_file(path: Path) -> bool:
    """True if the first line parses as a tiktoken entry (tells it from a SentencePiece model)."""
    try:
        with path.open("rb") as handle:
            encoded_token, rank = handle.readline().split()
        base64.b64decode(encoded_token, validate=True)
        int(rank)
    except (OSError, ValueError, binascii.Error):
        return False
    return True


def _tokenizer_file_at(path: Path) -> Path | None:
    """The tokenizer file `path` names or holds, or None if it holds none."""
    if path.is_file():
        return path
    tiktoken_file = path / TIKTOKEN_FILE_NAME
    hf_file = path / HF_TOKENIZER_FILE_NAME
    # An HF repo may carry a SentencePiece `tokenizer.model` next to its
    # tokenizer.json; only a real tiktoken file wins over the json.
    if tiktoken_file.is_file() and (_looks_like_tiktoken_file(tiktoken_file) or not hf_file.is_file()):
        return tiktoken_file
    if hf_file.is_file():
        return hf_file
    return None


def resolve_tokenizer_file(configured_path: str | None, tokenizer_path: str | None) -> Path:
    """Pick the tokenizer file: `configured_path`, else `tokenizer_path` if it holds one, else Llama-3's."""
    if configured_path:
        found = _tokenizer_file_at(Path(configured_path))
        if found is None:
            if Path(configured_path).is_dir():
                raise FileNotFoundError(f"no tokenizer.model or tokenizer.json in {configured_path}")
            raise FileNotFoundError(f"tokenizer file not found: {configured_path}")
        return found
    if tokenizer_path:
        found = _tokenizer_file_at(Path(tokenizer_path))
        if found is not None:
            return found
        logger.info(f"No tokenizer file at {tokenizer_path}; using Llama-3's from llama_models")
    return default_tokenizer_file()


def _chat_template_next_to(tokenizer_file: Path) -> str | None:
    """A chat template stored beside the tokenizer file the HF way, if any."""
    jinja_file = tokenizer_file.parent / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    config_file = tokenizer_file.parent / "tokenizer_config.json"
    if not config_file.is_file():
        return None
    template = json.loads(config_file.read_text(encoding="utf-8")).get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        template = next((entry["template"] for entry in template if entry.get("name") == "default"), None)
    return template


class _TiktokenBackend:
    """BPE over Meta's tiktoken file; special ids follow the 128,000 ranks."""

    def __init__(self, path: Path):
        self.ranks = _read_tiktoken_ranks(path)
        self.special_tokens = llama3_special_tokens(first_id=len(self.ranks))
        self.encoding = tiktoken.Encoding(
            name=path.name,
            pat_str=PRETOKENIZE_REGEX,
            mergeable_ranks=self.ranks,
            special_tokens=self.special_tokens,
        )
        self.vocab_size = len(self.ranks) + len(self.special_tokens)

    def encode_ordinary(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.encoding.decode(list(token_ids))

    def id_to_token(self, token_id: int) -> str | None:
        if not 0 <= token_id < self.vocab_size:
            return None
        token_bytes = self.encoding.decode_single_token_bytes(token_id)
        if token_id >= len(self.ranks):
            return token_bytes.decode("utf-8")
        return _bytes_to_byte_level(token_bytes)

    def token_to_id(self, token: str) -> int | None:
        if token in self.special_tokens:
            return self.special_tokens[token]
        token_bytes = _byte_level_to_bytes(token)
        return None if token_bytes is None else self.ranks.get(token_bytes)

    def to_hf_tokenizer(self) -> Tokenizer:
        """The same tokenizer as an HF byte-level BPE `tokenizers.Tokenizer`.

        tiktoken repeatedly joins the adjacent pair whose concatenation has the
        lowest rank; HF BPE applies merges in list order. So the merge list
        holds, for every token in rank order, each way of splitting it into two
        tokens (the derivation transformers' TikTokenConverter uses too), and
        `ignore_merges` copies tiktoken's shortcut of emitting a whole pre-token
        that is itself in the vocabulary. Tests check the ids agree.
        """
        merge_keys: list[tuple[int, int, int]] = []
        for token, rank in self.ranks.items():
            for split in range(1, len(token)):
                left_rank = self.ranks.get(token[:split])
                right_rank = self.ranks.get(token[split:])
                if left_rank is not None and right_rank is not None:
                    merge_keys.append((rank, left_rank, right_rank))
        merge_keys.sort()
        spelled = [""] * len(self.ranks)
        for token, rank in self.ranks.items():
            spelled[rank] = _bytes_to_byte_level(token)
        bpe = models.BPE(
            vocab={text: rank for rank, text in enumerate(spelled)},
            merges=[(spelled[left], spelled[right]) for _, left, right in merge_keys],
            fuse_unk=False,
            ignore_merges=True,
        )
        hf_tokenizer = Tokenizer(bpe)
        hf_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        hf_tokenizer.decoder = decoders.ByteLevel()
        # Added in id order, so they land on the same ids as in tiktoken.
        hf_tokenizer.add_special_tokens(
            [AddedToken(name, special=True, normalized=False) for name in self.special_tokens]
        )
        for name, token_id in self.special_tokens.items():
            if hf_tokenizer.token_to_id(name) != token_id:
                raise RuntimeError(f"{name} got id {hf_tokenizer.token_to_id(name)} instead of {token_id}")
        return hf_tokenizer


class _HFJsonBackend:
    """An HF `tokenizer.json` (e.g. a Llama-3 checkpoint's), loaded with `tokenizers`."""

    def __init__(self, path: Path):
        try:
            self.hf_tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises plain Exception on bad files
            raise ValueError(f"cannot load HF tokenizer file {path}: {err}") from err
        # Special-token text in the input is handled by Llama3Tokenizer.encode;
        # the backend must treat it as ordinary text, like tiktoken's encode_ordinary.
        self.hf_tokenizer.encode_special_tokens = True
        self.special_tokens = {
            added.content: token_id
            for token_id, added in sorted(self.hf_tokenizer.get_added_tokens_decoder().items())
            if added.special
        }
        required = (BOS_TOKEN, EOS_TOKEN, EOT_TOKEN, PAD_TOKEN)
        missing = [name for name in required if name not in self.special_tokens]
        if missing:
            raise ValueError(f"{path} is not a Llama-3 tokenizer: special tokens {missing} are missing")
        self.vocab_size = self.hf_tokenizer.get_vocab_size(with_added_tokens=True)

    def encode_ordinary(self, text: str) -> list[int]:
        return self.hf_tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.hf_tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def id_to_token(self, token_id: int) -> str | None:
        return self.hf_tokenizer.id_to_token(token_id) if token_id >= 0 else None

    def token_to_id(self, token: str) -> int | None:
        return self.hf_tokenizer.token_to_id(token)

    def to_hf_tokenizer(self) -> Tokenizer:
        copy = Tokenizer.from_str(self.hf_tokenizer.to_str())
        copy.encode_special_tokens = False
        return copy


class Llama3Tokenizer(BaseTokenizer):
    """Llama-3 tokenizer with torchtitan's tokenizer interface.

    Built by torchtitan's Trainer as ``config.tokenizer.build(tokenizer_path=hf_assets_path)``.
    Special-token text in the input (e.g. a literal "<|eot_id|>") is encoded
    as ordinary text unless ``encode(..., allowed_special=...)`` or
    ``Config.allow_special_tokens_in_text`` says otherwise.
    """

    @dataclass(kw_only=True, slots=True)
    class Config(BaseTokenizer.Config):
        path: str | None = None
        """tiktoken file or dir with tokenizer.model / tokenizer.json; None: hf_assets_path, else Llama-3's."""

        chat_template: str | None = None
        """Jinja chat template; None: the one stored beside the tokenizer file the HF way, if any."""

        allow_special_tokens_in_text: bool = False
        """encode() default: special-token text becomes its id (True to encode rendered chat templates)."""

    def __init__(self, config: Config | None = None, *, tokenizer_path: str | None = None):
        super().__init__()
        config = config if config is not None else self.Config()
        self.tokenizer_file = resolve_tokenizer_file(config.path, tokenizer_path)
        if self.tokenizer_file.suffix == ".json":
            self._backend: _TiktokenBackend | _HFJsonBackend = _HFJsonBackend(self.tokenizer_file)
        else:
            self._backend = _TiktokenBackend(self.tokenizer_file)
        logger.info(f"Llama-3 tokenizer from {self.tokenizer_file} ({self._backend.vocab_size} ids)")

        self.special_tokens: dict[str, int] = dict(self._backend.special_tokens)
        self.bos_id = self.special_tokens[BOS_TOKEN]
        self.eos_id = self.special_tokens[EOS_TOKEN]
        self.eot_id = self.special_tokens[EOT_TOKEN]
        self.pad_id = self.special_tokens[PAD_TOKEN]
        self._default_allowed_special: Literal["all"] | Set[str] = (
            "all" if config.allow_special_tokens_in_text else frozenset()
        )
        self._special_token_splitters: dict[frozenset[str], re.Pattern[str]] = {}

        self.chat_template: str | None = None
        template = config.chat_template or _chat_template_next_to(self.tokenizer_file)
        if template:
            self.set_chat_template(template)

    @functools.cached_property
    def _specials_start_with_bar(self) -> bool:
        return all(name.startswith("<|") for name in self.special_tokens)

    def set_chat_template(self, template: str) -> None:
        """Compile and store a Jinja chat template (its source is kept for HF export)."""
        super().set_chat_template(template)
        self.chat_template = template

    def encode(
        self,
        text: str,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        allowed_special: Literal["all"] | Set[str] | None = None,
    ) -> list[int]:
        """Token ids of `text`, optionally wrapped in BOS / EOS.

        `allowed_special` names the special tokens whose text becomes their id
        ("all" for every one); other special-token text is encoded as plain
        text. None uses the config default (`allow_special_tokens_in_text`).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        token_ids = [self.bos_id] if add_bos else []
        splitter = self._special_token_splitter(allowed_special)
        if splitter.pattern == _NEVER_MATCHES or (self._specials_start_with_bar and "<|" not in text):
            # Fast path (the pre-training case): no special token can occur in this text.
            token_ids.extend(self._encode_ordinary(text))
        else:
            # With a capturing group, re.split puts each matched special token at an odd index.
            for index, piece in enumerate(splitter.split(text)):
                if index % 2:
                    token_ids.append(self.special_tokens[piece])
                elif piece:
                    token_ids.extend(self._encode_ordinary(piece))
        if add_eos:
            token_ids.append(self.eos_id)
        return token_ids

    def _special_token_splitter(self, allowed_special: Literal["all"] | Set[str] | None) -> re.Pattern[str]:
        if allowed_special is None:
            allowed_special = self._default_allowed_special
        allowed = frozenset(self.special_tokens if allowed_special == "all" else allowed_special)
        splitter = self._special_token_splitters.get(allowed)
        if splitter is None:
            unknown = allowed - self.special_tokens.keys()
            if unknown:
                raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
            # Longest first so no token is cut short by another that prefixes it;
            # an empty set compiles to a pattern that never matches.
            alternatives = "|".join(re.escape(name) for name in sorted(allowed, key=len, reverse=True))
            splitter = re.compile(f"({alternatives})" if allowed else _NEVER_MATCHES)
            self._special_token_splitters[allowed] = splitter
        return splitter

    def _encode_ordinary(self, text: str) -> list[int]:
        if len(text) <= MAX_CHARS_PER_BPE_CALL:
            return self._backend.encode_ordinary(text)
        token_ids: list[int] = []
        for chunk in _split_at_pretoken_boundaries(text, MAX_CHARS_PER_BPE_CALL):
            token_ids.extend(self._backend.encode_ordinary(chunk))
        return token_ids

    def decode(self, token_ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Text of `token_ids`; bytes that do not form valid UTF-8 become U+FFFD."""
        # Checked here because the backends disagree: tiktoken raises, HF skips silently.
        out_of_range = [token_id for token_id in token_ids if not 0 <= token_id < self._backend.vocab_size]
        if out_of_range:
            raise ValueError(f"token ids outside the vocabulary: {out_of_range[:10]}")
        if skip_special_tokens:
            special_ids = set(self.special_tokens.values())
            token_ids = [token_id for token_id in token_ids if token_id not in special_ids]
        return self._backend.decode(token_ids)

    def get_vocab_size(self) -> int:
        """Number of ids, special tokens included (128,256 for Llama-3)."""
        return self._backend.vocab_size

    @property
    def vocab_size(self) -> int:
        return self._backend.vocab_size

    def token_to_id(self, token: str) -> int | None:
        """Id of a special token's name or of an HF byte-level token string ("Ġhello"); None if unknown."""
        return self._backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """Special token name or HF byte-level token string of `token_id`; None if out of range."""
        return self._backend.id_to_token(token_id)

    def to_hf_tokenizer(self) -> Tokenizer:
        """A fresh `tokenizers.Tokenizer` producing the same ids (BOS not added)."""
        return self._backend.to_hf_tokenizer()


def save_hf_tokenizer(
    tokenizer_or_path: Llama3Tokenizer | str | Path,
    out_dir: str | Path,
    chat_template: str | None = None,
    *,
    model_max_length: int = 32_768,
) -> Path:
    """Write a `transformers` fast-tokenizer folder equivalent to the given Llama-3 tokenizer.

    `AutoTokenizer.from_pretrained(out_dir)` then loads without remote code and,
    like Llama-3, prepends `<|begin_of_text|>` unless `add_special_tokens=False`.
    `chat_template` defaults to the tokenizer's own; `model_max_length` defaults
    to MobileLLM-R1's post-trained context (32k). Returns `out_dir`.
    """
    tokenizer = (
        tokenizer_or_path
        if isinstance(tokenizer_or_path, Llama3Tokenizer)
        else Llama3Tokenizer(Llama3Tokenizer.Config(path=str(tokenizer_or_path)))
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    hf_tokenizer = tokenizer.to_hf_tokenizer()
    hf_tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS_TOKEN}:0 $A:0",
                pair=f"{BOS_TOKEN}:0 $A:0 {BOS_TOKEN}:1 $B:1",
                special_tokens=[(BOS_TOKEN, tokenizer.bos_id)],
            ),
        ]
    )
    hf_tokenizer.save(str(out_dir / HF_TOKENIZER_FILE_NAME))

    tokenizer_config = {
        # The generic fast class: no model-specific code, no trust_remote_code.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        # transformers ignores these two when tokenizer.json is present (its
        # post-processor above decides); torchtitan's HuggingFaceTokenizer reads
        # them as its encode() defaults.
        "add_bos_token": True,
        "add_eos_token": False,
        # Llama-3's original config set this True, which makes decode() eat the
        # space in " ." and breaks round trips.
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "added_tokens_decoder": {
            str(token_id): {
                "content": name,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for name, token_id in tokenizer.special_tokens.items()
        },
    }
    template = chat_template if chat_template is not None else tokenizer.chat_template
    if template:
        tokenizer_config["chat_template"] = template
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return out_dir
