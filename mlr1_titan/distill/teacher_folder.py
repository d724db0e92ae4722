"""The teacher's HF folder: complete, Llama-3 shaped, same tokenizer as the student, fingerprinted.

Everything here runs before any model is built, so a wrong ``--distill.teacher`` fails in seconds:

* ``TeacherFolder.open(path)``: config.json, tokenizer.json and every weight file (a single
  ``model.safetensors`` or all shards an index lists) must exist, and the safetensors headers must
  hold every tensor the config implies; the error lists what is missing.
* ``TeacherShape``: the fields of a transformers ``LlamaForCausalLM`` config.json that the
  torchtitan Llama-3 model needs; anything it cannot represent (biases, other RoPE scalings) is refused.
* ``check_same_tokenizer``: the teacher's tokenizer.json and the student's tokenizer must give the
  same ids for a probe text covering special tokens, digits, code, LaTeX, non-Latin scripts and
  whitespace runs -- file names prove nothing; ids do.
* ``fingerprint``: sha256 of the safetensors headers, file sizes and 16 evenly spaced 64 KiB samples of
  each weight file, so a checkpoint can record which weights taught it without hashing 16 GB.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from mlr1_titan.llama3_vocab import VOCAB_SIZE

PROBE_TEXT = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    "Solve $x^2 - 5x + 6 = 0$ and give \\boxed{2, 3}. 12345.678 + 0.001 = ?\n"
    "def f(x):\n    return x ** 2  # tabs\tand  spaces   \n"
    "Café naïve — 東京の天気は晴れです。 Привет, мир! 🚀🤖<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nThe roots are 2 and 3.<|eot_id|>"
)
_SAMPLES, _SAMPLE_BYTES = 16, 64 * 1024


class TeacherError(ValueError):
    """A teacher folder that cannot teach this student (the message names the folder and the problem)."""


@dataclass(frozen=True)
class TeacherShape:
    """The Llama-3 architecture a teacher's config.json describes."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_hidden_dim: int
    vocab_size: int
    norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    tie_word_embeddings: bool
    max_position_embeddings: int = 131072

    @classmethod
    def from_hf_config(cls, config: dict, where: str) -> TeacherShape:
        arch = config.get("architectures") or ["LlamaForCausalLM"]
        if config.get("model_type", "llama") != "llama" or arch != ["LlamaForCausalLM"]:
            raise TeacherError(
                f"{where}: model_type {config.get('model_type')!r} / architectures {arch}: the teacher must be "
                "a Llama-3 LlamaForCausalLM (loaded through torchtitan's Llama-3 model)"
            )
        for key in ("attention_bias", "mlp_bias"):
            if config.get(key):
                raise TeacherError(f"{where}: {key} = true; torchtitan's Llama-3 model has no biases")
        if config.get("hidden_act", "silu") != "silu":
            raise TeacherError(
                f"{where}: hidden_act {config['hidden_act']!r}; torchtitan's Llama-3 FFN is SwiGLU (silu)"
            )
        # transformers < 5 writes rope_theta + rope_scaling (the hub's Llama-3.1 files); >= 5 writes
        # rope_parameters holding both.
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "llama3"):
            raise TeacherError(f"{where}: RoPE {rope} is not supported; expected rope_type default or llama3")
        scaling = rope if rope_type == "llama3" else None
        theta = rope.get("rope_theta", config.get("rope_theta", 500000.0))
        try:
            n_heads = int(config["num_attention_heads"])
            dim = int(config["hidden_size"])
            return cls(
                dim=dim,
                n_layers=int(config["num_hidden_layers"]),
                n_heads=n_heads,
                n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
                head_dim=int(config.get("head_dim") or dim // n_heads),
                ffn_hidden_dim=int(config["intermediate_size"]),
                vocab_size=int(config["vocab_size"]),
                norm_eps=float(config.get("rms_norm_eps", 1e-5)),
                rope_theta=float(theta),
                rope_scaling=scaling,
                tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
                max_position_embeddings=int(config.get("max_position_embeddings", 131072)),
            )
        except KeyError as err:
            raise TeacherError(f"{where}: missing key {err.args[0]!r}") from None

    def hf_tensor_names(self) -> list[str]:
        """Every tensor a transformers checkpoint of this shape holds."""
        names = ["model.embed_tokens.weight", "model.norm.weight"]
        if not self.tie_word_embeddings:
            names.append("lm_head.weight")
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            names += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
            names += [f"{p}self_attn.{n}_proj.weight" for n in "qkvo"]
            names += [f"{p}mlp.{n}_proj.weight" for n in ("gate", "up", "down")]
        return names

    def describe(self) -> str:
        return (
            f"{self.n_layers} layers, dim {self.dim}, {self.n_heads}/{self.n_kv_heads} heads x {self.head_dim}, "
            f"FFN {self.ffn_hidden_dim}, vocab {self.vocab_size}"
        )


def _safetensors_header(path: Path) -> bytes:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= size - 8:
            raise TeacherError(
                f"{path} is not a safetensors file ({size} bytes, header length {n}): a Git LFS pointer or an "
                "interrupted download? fetch the real file"
            )
        return f.read(n)


@dataclass(frozen=True)
class TeacherFolder:
    path: Path
    shape: TeacherShape
    weight_files: tuple[Path, ...]
    tokenizer_file: Path

    @classmethod
    def open(cls, path: str | Path) -> TeacherFolder:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise TeacherError(f"distill.teacher {root}: not a folder (expected an HF causal-LM folder)")
        missing = [name for name in ("config.json", "tokenizer.json") if not (root / name).is_file()]
        index = root / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map")
            if not isinstance(weight_map, dict):
                raise TeacherError(f"{index}: no 'weight_map' (tensor name -> shard file)")
            files = sorted(set(weight_map.values()))
        elif (root / "model.safetensors").is_file():
            files, weight_map = ["model.safetensors"], None
        else:
            files, weight_map = [], None
            missing.append("model.safetensors (or model.safetensors.index.json and its shards)")
        missing += [name for name in files if not (root / name).is_file()]
        if missing:
            raise TeacherError(f"teacher folder {root} is incomplete; missing: {', '.join(missing)}")
        shape = TeacherShape.from_hf_config(json.loads((root / "config.json").read_text()), str(root / "config.json"))
        stored: set[str] = set()
        for name in files:
            stored |= set(json.loads(_safetensors_header(root / name))) - {"__metadata__"}
        absent = [n for n in shape.hf_tensor_names() if n not in stored]
        if absent:
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise TeacherError(
                f"teacher folder {root}: the weight files lack {len(absent)} tensors of a {shape.describe()} "
                f"Llama: {', '.join(absent[:5])}{more} (a partial download?)"
            )
        return cls(root, shape, tuple(root / n for n in files), root / "tokenizer.json")

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for file in self.weight_files:
            size = file.stat().st_size
            digest.update(file.name.encode() + size.to_bytes(8, "little") + _safetensors_header(file))
            with open(file, "rb") as f:
                for i in range(_SAMPLES):
                    f.seek(max(0, (size - _SAMPLE_BYTES) * i // (_SAMPLES - 1)))
                    digest.update(f.read(_SAMPLE_BYTES))
        return digest.hexdigest()[:16]


def check_fits_the_run(folder: TeacherFolder, seq_len: int, tensor_parallel_degree: int) -> None:
    """The teacher must cover the stage's sequence length and split over its TP degree."""
    shape = folder.shape
    if seq_len > shape.max_position_embeddings:
        raise TeacherError(
            f"training.seq_len {seq_len} exceeds the teacher's max_position_embeddings "
            f"{shape.max_position_embeddings} ({folder.path / 'config.json'})"
        )
    for name, heads in (("num_attention_heads", shape.n_heads), ("num_key_value_heads", shape.n_kv_heads)):
        if heads % tensor_parallel_degree:
            raise TeacherError(
                f"tensor_parallel_degree {tensor_parallel_degree} does not divide the teacher's {name} {heads} "
                f"({folder.path / 'config.json'})"
            )


def check_same_tokenizer(folder: TeacherFolder, student_tokenizer, student_vocab_size: int = VOCAB_SIZE) -> None:
    """Raise ``TeacherError`` unless teacher and student share vocabulary size and token ids."""
    from tokenizers import Tokenizer

    student_file = getattr(student_tokenizer, "tokenizer_file", "the student tokenizer")
    if folder.shape.vocab_size != student_vocab_size:
        raise TeacherError(
            f"teacher {folder.path} has vocab_size {folder.shape.vocab_size} (config.json), the student "
            f"{student_vocab_size} ({student_file}): logit distillation needs one vocabulary"
        )
    teacher_ids = Tokenizer.from_file(str(folder.tokenizer_file)).encode(PROBE_TEXT, add_special_tokens=False).ids
    student_ids = student_tokenizer.encode(PROBE_TEXT, allowed_special="all")
    if teacher_ids != student_ids:
        at = next((i for i, (a, b) in enumerate(zip(teacher_ids, student_ids)) if a != b), None)
        at = min(len(teacher_ids), len(student_ids)) if at is None else at
        raise TeacherError(
            f"teacher tokenizer {folder.tokenizer_file} and student tokenizer {student_file} disagree on a probe "
            f"text: {len(teacher_ids)} vs {len(student_ids)} ids, first difference at token {at} "
            f"(teacher {teacher_ids[at : at + 4]}, student {student_ids[at : at + 4]})"
        )
