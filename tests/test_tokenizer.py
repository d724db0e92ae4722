"""Llama3Tokenizer: ids, special tokens, long inputs, HF export and HF-file loading (offline)."""

import os
import random

# Before transformers is imported: it reads these once, at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
from tokenizers import Regex
from tokenizers.pre_tokenizers import Split
from torchtitan.components.tokenizer import HuggingFaceTokenizer
from transformers import AutoTokenizer

import mlr1_titan.tokenizer as tokenizer_module
from mlr1_titan.llama3_vocab import llama3_special_tokens
from mlr1_titan.tokenizer import (
    Llama3Tokenizer,
    default_tokenizer_file,
    save_hf_tokenizer,
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

CORPUS = [
    "",
    " ",
    "a",
    "Hello, world!",
    "  leading spaces and trailing   ",
    "\t\ttabs\tand\tspaces  \t",
    "line one\nline two\r\nline three\r\rend\n\n\n",
    "\n",
    "\n\n   \n \t\n",
    "I'm sure they'll say DON'T, we've done it, you'd know, it's HE'S.",
    "The year 2024 had 365 days; π ≈ 3.14159265358979 and 1,234,567.89 USD.",
    "12345678901234567890",
    "日本語のテキストと漢字、ひらがな、カタカナ。",
    "中文文本：你好，世界！今天天气很好。",
    "한국어 문장입니다. 안녕하세요!",
    "مرحبا بالعالم، هذا نص عربي من اليمين إلى اليسار.",
    "שלום עולם! זה טקסט בעברית.",
    "English mixed with עברית and العربية in one line.",
    "हिन्दी में पाठ, संयुक्ताक्षर क्ष त्र ज्ञ।",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Ελληνικά: Καλημέρα κόσμε. Русский: Привет, мир!",
    "e\u0301 vs \u00e9; n\u0303; a\u0308\u0304; Z\u0351\u0335\u0322a\u0358l\u0337g\u0489o",
    "🤗🚀🔥 emoji 👨‍👩‍👧‍👦 family, 👍🏽 skin tone, 🇫🇷🇯🇵 flags, ❤️ heart",
    "🏳️‍🌈 and 🧑🏿‍💻 and 1️⃣",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // C++",
    "const f = async (x) => { await fetch(`/api/${x}`); };",
    '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
    '<html><body><p class="x">Hi &amp; bye</p></body></html>',
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "https://example.com/path?query=1&lang=en#fragment",
    "user@example.org, +1 (555) 123-4567",
    r"\begin{align} \int_0^\infty e^{-x^2}\,dx &= \frac{\sqrt{\pi}}{2} \end{align}",
    r"$\sum_{k=1}^{n} k^2 = \frac{n(n+1)(2n+1)}{6}$ and \(\alpha_i \cdot \beta^{(t)}\)",
    "∀ε>0 ∃δ>0: |x−a|<δ ⇒ |f(x)−f(a)|<ε; ∇·E = ρ/ε₀; ∮ B·dl = μ₀I",
    "x² + y³ = z⁴; ½ + ¼ = ¾; Ⅻ; ①②③",
    "Full-width: ＡＢＣ１２３！ and ideographic space:\u3000here",
    "no\u00a0break\u00a0space and zero\u200bwidth\u200bspace and \ufeffBOM",
    "control chars \x00\x01\x1b[0m \x1c\x1d\x1e\x1f end",
    "private use \ue000\uf8ff and rare 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
    "!!!???...,,,;;;:::---___===+++***",
    "....................................................",
    "--------------------------------------------------------------------",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "# Title\n\n* item one\n* item two\n\n> quote\n\n```python\nprint('x')\n```",
    "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Ceci n'est pas une pipe. L'été dernier, j'ai vu ça.",
    "Größe, Straße, Übermaß — ß ẞ",
    "tiếng Việt có dấu: Tôi yêu Việt Nam",
    "   \n   indented after newline",
    "word\n\nword\r\n\r\nword",
    "trailing newline then spaces\n   ",
    "1+1=2\n2*3=6\n10/4=2.5",
    "2024-01-31T23:59:59.999Z",
    "0x1F600 0b1010 0o777 1e-10 -3.5E+7",
    "literal special text: <|eot_id|> and <|begin_of_text|> and <|reserved_special_token_5|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|not_a_special_token|> <| eot_id |> <|eot_id",
    "mixed 中文 English 日本語 123 🤗 עברית",
]


@pytest.fixture(scope="session")
def tokenizer() -> Llama3Tokenizer:
    return Llama3Tokenizer(Llama3Tokenizer.Config())


@pytest.fixture(scope="session")
def hf_dir(tokenizer, tmp_path_factory):
    return save_hf_tokenizer(tokenizer, tmp_path_factory.mktemp("hf_tokenizer"), chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="session")
def transformers_tokenizer(hf_dir):
    return AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)


@pytest.fixture(scope="session")
def json_tokenizer(hf_dir) -> Llama3Tokenizer:
    return Llama3Tokenizer(Llama3Tokenizer.Config(path=str(hf_dir)))


def test_corpus_is_varied_enough():
    assert len(CORPUS) >= 50


def test_default_file_comes_from_llama_models(tokenizer):
    assert tokenizer.tokenizer_file == default_tokenizer_file()
    assert tokenizer.tokenizer_file.parts[-3:] == ("llama_models", "llama3", "tokenizer.model")


def test_vocab_size_and_named_special_ids(tokenizer):
    assert tokenizer.get_vocab_size() == tokenizer.vocab_size == 128_256
    expected = {
        "<|begin_of_text|>": 128000,
        "<|end_of_text|>": 128001,
        "<|reserved_special_token_0|>": 128002,
        "<|reserved_special_token_1|>": 128003,
        "<|finetune_right_pad_id|>": 128004,
        "<|reserved_special_token_2|>": 128005,
        "<|start_header_id|>": 128006,
        "<|end_header_id|>": 128007,
        "<|eom_id|>": 128008,
        "<|eot_id|>": 128009,
        "<|python_tag|>": 128010,
        "<|reserved_special_token_3|>": 128011,
        "<|reserved_special_token_247|>": 128255,
    }
    for name, token_id in expected.items():
        assert tokenizer.special_tokens[name] == token_id
        assert tokenizer.token_to_id(name) == token_id
        assert tokenizer.id_to_token(token_id) == name
    assert len(tokenizer.special_tokens) == 256
    assert sorted(tokenizer.special_tokens.values()) == list(range(128000, 128256))
    assert tokenizer.special_tokens == llama3_special_tokens()
    named_ids = (tokenizer.bos_id, tokenizer.eos_id, tokenizer.eot_id, tokenizer.pad_id)
    assert named_ids == (128000, 128001, 128009, 128004)


def test_regular_token_lookup(tokenizer):
    assert tokenizer.token_to_id("Hello") == 9906
    assert tokenizer.id_to_token(9906) == "Hello"
    assert tokenizer.id_to_token(220) == "Ġ"  # a lone space, spelled the HF byte-level way
    assert tokenizer.token_to_id("Ġ") == 220
    assert tokenizer.token_to_id("no such token at all") is None
    assert tokenizer.id_to_token(128_256) is None
    assert tokenizer.id_to_token(-1) is None


@pytest.mark.parametrize("text", CORPUS)
def test_round_trip(tokenizer, text):
    token_ids = tokenizer.encode(text)
    assert tokenizer.decode(token_ids) == text
    assert all(0 <= token_id < 128_000 for token_id in token_ids)  # no special ids from plain text


def test_bos_and_eos(tokenizer):
    assert tokenizer.encode("") == []
    assert tokenizer.encode("", add_bos=True, add_eos=True) == [128000, 128001]
    body = tokenizer.encode("Hello world")
    assert tokenizer.encode("Hello world", add_bos=True, add_eos=True) == [128000, *body, 128001]
    assert tokenizer.decode([128000, *body, 128001]) == "<|begin_of_text|>Hello world<|end_of_text|>"
    assert tokenizer.decode([128000, *body, 128001], skip_special_tokens=True) == "Hello world"


def test_special_token_text_is_plain_unless_allowed(tokenizer):
    text = "say <|eot_id|> then <|begin_of_text|>"
    plain = tokenizer.encode(text)
    assert not set(plain) & set(tokenizer.special_tokens.values())
    assert tokenizer.decode(plain) == text

    only_eot = tokenizer.encode(text, allowed_special={"<|eot_id|>"})
    assert only_eot.count(128009) == 1 and 128000 not in only_eot
    assert tokenizer.decode(only_eot) == text

    everything = tokenizer.encode(text, allowed_special="all")
    assert everything[-1] == 128000 and everything.count(128009) == 1
    assert everything == [*tokenizer.encode("say "), 128009, *tokenizer.encode(" then "), 128000]

    with pytest.raises(ValueError, match="<|bogus|>"):
        tokenizer.encode(text, allowed_special={"<|bogus|>"})


def test_config_can_allow_special_text_by_default():
    tokenizer = Llama3Tokenizer.Config(allow_special_tokens_in_text=True).build()
    assert tokenizer.encode("a<|eot_id|>") == [64, 128009]
    assert 128009 not in tokenizer.encode("a<|eot_id|>", allowed_special=set())


def test_ids_match_transformers(tokenizer, transformers_tokenizer):
    # transformers matches special-token text, so compare with it allowed on our side.
    for text in CORPUS:
        ours = tokenizer.encode(text, allowed_special="all")
        assert transformers_tokenizer(text, add_special_tokens=False)["input_ids"] == ours, text
        assert transformers_tokenizer(text)["input_ids"] == [128000, *ours], text
        assert transformers_tokenizer.decode(ours) == tokenizer.decode(ours), text


def test_transformers_folder_metadata(tokenizer, transformers_tokenizer):
    assert transformers_tokenizer.is_fast
    assert len(transformers_tokenizer) == 128_256
    assert transformers_tokenizer.bos_token == "<|begin_of_text|>"
    assert transformers_tokenizer.eos_token == "<|end_of_text|>"
    assert transformers_tokenizer.pad_token == "<|finetune_right_pad_id|>"
    assert transformers_tokenizer.pad_token_id == 128004
    assert transformers_tokenizer.model_max_length == 32_768
    assert transformers_tokenizer.chat_template == CHAT_TEMPLATE
    sample_ids = [0, 220, 9906, 127999, 128000, 128009, 128255]
    expected_tokens = [tokenizer.id_to_token(token_id) for token_id in sample_ids]
    assert transformers_tokenizer.convert_ids_to_tokens(sample_ids) == expected_tokens


def test_torchtitan_hf_tokenizer_reads_exported_folder(tokenizer, hf_dir):
    titan_hf = HuggingFaceTokenizer(tokenizer_path=str(hf_dir))
    assert (titan_hf.bos_id, titan_hf.eos_id, titan_hf.get_vocab_size()) == (128000, 128001, 128256)
    for text in CORPUS:
        if "<|" not in text:
            assert titan_hf.encode(text, add_bos=True, add_eos=True) == tokenizer.encode(
                text, add_bos=True, add_eos=True
            ), text


def test_hf_json_loading_matches_tiktoken(tokenizer, json_tokenizer, hf_dir):
    assert json_tokenizer.tokenizer_file == hf_dir / "tokenizer.json"
    assert json_tokenizer.get_vocab_size() == 128_256
    assert json_tokenizer.special_tokens == tokenizer.special_tokens
    named_ids = (json_tokenizer.bos_id, json_tokenizer.eos_id, json_tokenizer.eot_id, json_tokenizer.pad_id)
    assert named_ids == (128000, 128001, 128009, 128004)
    for text in CORPUS:
        for allowed in (None, "all"):
            options = dict(add_bos=True, add_eos=True, allowed_special=allowed)
            assert json_tokenizer.encode(text, **options) == tokenizer.encode(text, **options), text
        assert json_tokenizer.decode(tokenizer.encode(text)) == text
    for token_id in (0, 220, 9906, 127999, 128000, 128255):
        assert json_tokenizer.id_to_token(token_id) == tokenizer.id_to_token(token_id)
        assert json_tokenizer.token_to_id(tokenizer.id_to_token(token_id)) == token_id
    for backend in (tokenizer, json_tokenizer):
        with pytest.raises(ValueError, match="128256"):
            backend.decode([9906, 128256])


def test_chat_template_travels_with_the_hf_folder(json_tokenizer, transformers_tokenizer):
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    rendered = json_tokenizer.apply_chat_template(messages)
    assert rendered == transformers_tokenizer.apply_chat_template(messages, tokenize=False)
    assert (
        json_tokenizer.encode(rendered, allowed_special="all")
        == transformers_tokenizer(rendered, add_special_tokens=False)["input_ids"]
    )


def test_long_text_ids_equal_unsplit_encoding(tokenizer, transformers_tokenizer, monkeypatch):
    random.seed(0)
    pieces = [text for text in CORPUS if "<|" not in text]
    long_text = "\n".join(random.choice(pieces) for _ in range(3000))
    assert len(long_text) > 4 * tokenizer_module.MAX_CHARS_PER_BPE_CALL
    chunked = tokenizer.encode(long_text)
    assert transformers_tokenizer(long_text, add_special_tokens=False)["input_ids"] == chunked
    monkeypatch.setattr(tokenizer_module, "MAX_CHARS_PER_BPE_CALL", 10**9)
    assert tokenizer.encode(long_text) == chunked


FUZZ_ALPHABET = (
    "abcXYZéß中文日本語한국🤗👍🏽0123456789"
    ".,;:!?'\"()[]{}<>|-_=+*/\\@#$%^&~`"
    " \t\n\r\u00a0\u3000\u2028\u0085\u0301\u0308\x1c"
)


def test_chunk_cuts_are_pretoken_boundaries():
    # Reference: HF's Split pre-tokenizer on the same regex (Oniguruma, an
    # engine independent of the `regex` module the cut pattern runs on).
    pretokenize = Split(Regex(tokenizer_module.PRETOKENIZE_REGEX), behavior="isolated")
    rng = random.Random(1234)
    for _ in range(300):
        text = "".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(50, 400)))
        pretoken_ends = {end for _, (_, end) in pretokenize.pre_tokenize_str(text)}
        cuts = {match.start() for match in tokenizer_module._PRETOKEN_BOUNDARY.finditer(text)}
        assert cuts, repr(text)
        assert cuts <= pretoken_ends, repr(text)


def test_small_chunks_keep_ids(tokenizer, monkeypatch):
    # Words of non-space characters, each followed by a separator that makes a
    # cut point, leave at most ~10 characters between cut points; so with
    # 16-character chunks nearly every chunk edge falls mid-text and none is
    # ever cut blindly. The ids must not notice.
    rng = random.Random(99)
    word_alphabet = [char for char in FUZZ_ALPHABET if not char.isspace()]
    separators = [" ", "  ", "\t", "\u00a0", "\u3000", "\u2028", ", ", ". ", "\n", "\n\n", "\r\n", " \n "]

    def random_words() -> str:
        words = ["".join(rng.choice(word_alphabet) for _ in range(rng.randint(1, 6))) for _ in range(60)]
        return "".join(word + rng.choice(separators) for word in words)

    texts = [random_words() for _ in range(200)]
    reference = [tokenizer.encode(text) for text in texts]
    monkeypatch.setattr(tokenizer_module, "MAX_CHARS_PER_BPE_CALL", 16)
    for text, expected in zip(texts, reference):
        assert tokenizer.encode(text) == expected, repr(text)


def test_pathological_runs_do_not_crash(tokenizer, json_tokenizer):
    # A million spaces in one tiktoken call overflows its regex stack.
    text = " " * 1_000_000 + "x" * 300_000 + "\n" * 200_000 + "é" * 30_000
    token_ids = tokenizer.encode(text)
    assert tokenizer.decode(token_ids) == text
    assert json_tokenizer.encode(text) == token_ids


def test_missing_paths_are_named():
    missing = "/nonexistent/dir/tokenizer.model"
    with pytest.raises(FileNotFoundError, match=missing):
        Llama3Tokenizer.Config(path=missing).build()


def test_directory_without_tokenizer_files_is_named_when_configured(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        Llama3Tokenizer.Config(path=str(tmp_path)).build()


def test_malformed_file_is_named(tmp_path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x0a\x08sentencepiece-ish binary\x00\xff\n")
    with pytest.raises(ValueError, match=str(bad)):
        Llama3Tokenizer.Config(path=str(bad)).build()


def test_trainer_style_build_falls_back_to_default(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # an hf_assets_path with no tokenizer in it
    built = Llama3Tokenizer.Config().build(tokenizer_path=str(tmp_path))
    assert isinstance(built, Llama3Tokenizer)
    assert built.tokenizer_file == default_tokenizer_file()
    assert built.encode("Hello", add_bos=True) == [128000, 9906]
    assert Llama3Tokenizer.Config().build(tokenizer_path=str(tmp_path / "absent")).tokenizer_file == (
        default_tokenizer_file()
    )


def test_trainer_style_build_uses_tokenizer_found_in_assets(tmp_path):
    (tmp_path / "tokenizer.model").symlink_to(default_tokenizer_file())
    built = Llama3Tokenizer.Config().build(tokenizer_path=str(tmp_path))
    assert built.tokenizer_file == tmp_path / "tokenizer.model"


def test_hf_folder_with_sentencepiece_model_prefers_tokenizer_json(tmp_path, hf_dir):
    (tmp_path / "tokenizer.json").symlink_to(hf_dir / "tokenizer.json")
    (tmp_path / "tokenizer.model").write_bytes(b"\x0a\x08not tiktoken\x00\xff")
    built = Llama3Tokenizer.Config().build(tokenizer_path=str(tmp_path))
    assert built.tokenizer_file == tmp_path / "tokenizer.json"
    assert built.encode("Hello", add_bos=True) == [128000, 9906]


def test_save_from_path(tmp_path):
    out_dir = save_hf_tokenizer(default_tokenizer_file(), tmp_path / "export")
    assert {path.name for path in out_dir.iterdir()} == {"tokenizer.json", "tokenizer_config.json"}
    reloaded = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    assert reloaded("Hello")["input_ids"] == [128000, 9906]
    assert reloaded.chat_template is None


def test_ids_match_transformers_own_tiktoken_converter(tokenizer):
    """Independent of our converter: transformers' TikTokenConverter, from the same tiktoken file."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from mlr1_titan.tokenizer import PRETOKENIZE_REGEX

    reference = TikTokenConverter(
        vocab_file=str(default_tokenizer_file()),
        pattern=PRETOKENIZE_REGEX,
        additional_special_tokens=list(llama3_special_tokens()),
    ).converted()
    for text in CORPUS:
        assert reference.encode(text, add_special_tokens=False).ids == tokenizer.encode(text), repr(text)
