"""Pre-tokenized shards: the on-disk format written by `mlr1 tokenize` and its reader.

A source directory holds
  * `<stem>.bin`  - the documents' tokens back to back, each `BOS ... EOS`, little-endian uint32;
  * `<stem>.idx`  - uint64 document offsets into the .bin (num_documents + 1 values, first 0);
  * `manifest.json` - token/document counts and checksums per shard, the tokenizer fingerprint and
    the source definition's hash. It is written last, so its presence means "complete".
Both files are memory-mapped; a reader touches only the pages of the documents it serves.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sys
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlr1_titan.data.mix_config import SourceSpec
from mlr1_titan.data.sources import DataSourceError, seeded_rng

FORMAT = "mlr1-token-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKEN_DTYPE = np.dtype("<u4")
_BIG_ENDIAN = sys.byteorder == "big"
_U32 = "I" if array("I").itemsize == 4 else "L"  # array typecode of a 4-byte unsigned int
OFFSET_DTYPE = np.dtype("<u8")

try:  # xxh3 hashes at memory speed; it ships with `datasets`.
    import xxhash

    CHECKSUM = "xxh3_64"

    def new_hasher():
        return xxhash.xxh3_64()
except ImportError:  # pragma: no cover - fallback when xxhash is absent
    CHECKSUM = "blake2b"

    def new_hasher():
        return hashlib.blake2b(digest_size=8)


# ------------------------------------------------------------------------------------------------
# Tokenizer identity

_PROBE = (
    "The quick brown fox jumps over 1,234.56 lazy dogs; naïve café, Straße, 東京, 🙂.\n"
    "\tdef f(x):\n\t\treturn x ** 2  # done\n<|end_of_text|>"
)


def tokenizer_fingerprint(tokenizer) -> dict[str, Any]:
    """What identifies a tokenizer for shard compatibility: ids it produces, not its class.

    Two tokenizers that agree on the vocabulary size, BOS/EOS ids and the ids of a probe text full
    of hard cases (accents, CJK, emoji, digits, code, special-token text) are treated as the same.
    """
    probe = list(tokenizer.encode(_PROBE, add_bos=False, add_eos=False))
    info = {
        "vocab_size": int(tokenizer.get_vocab_size()),
        "bos_id": getattr(tokenizer, "bos_id", None),
        "eos_id": getattr(tokenizer, "eos_id", None),
    }
    digest = hashlib.sha256(json.dumps([info, probe]).encode()).hexdigest()[:16]
    return {"name": type(tokenizer).__name__, "fingerprint": digest, **info}


# ------------------------------------------------------------------------------------------------
# Writing


class ShardWriter:
    """Appends tokenized documents to `<directory>/<prefix>-NNN.bin/.idx`, rolling over at
    `shard_tokens` (a document is never split). Files are written under `.tmp` names and renamed
    when complete; `close()` returns the shard records for the manifest."""

    def __init__(self, directory: str, prefix: str, shard_tokens: int):
        self.directory, self.prefix, self.shard_tokens = directory, prefix, shard_tokens
        self.records: list[dict[str, Any]] = []
        self._open_next()

    def _open_next(self) -> None:
        self.stem = f"{self.prefix}-{len(self.records):03d}"
        self._tmp_bin = os.path.join(self.directory, self.stem + ".bin.tmp")
        self._bin = open(self._tmp_bin, "wb", buffering=1 << 22)
        self._hash = new_hasher()
        self._offsets = array("Q", [0])
        self._tokens = 0

    def add(self, tokens: list[int]) -> None:
        # array(...) from a list is ~2x faster than array.extend; both file and hash take the buffer.
        data = array(_U32, tokens)
        if _BIG_ENDIAN:
            data.byteswap()
        self._bin.write(data)
        self._hash.update(data)
        self._tokens += len(data)
        self._offsets.append(self._tokens)
        if self._tokens >= self.shard_tokens:
            self._finish_shard()
            self._open_next()

    def _finish_shard(self) -> None:
        self._bin.close()
        index = np.asarray(self._offsets, dtype=OFFSET_DTYPE).tobytes()
        idx_path = os.path.join(self.directory, self.stem + ".idx")
        with open(idx_path + ".tmp", "wb") as f:
            f.write(index)
        ih = new_hasher()
        ih.update(index)
        os.replace(self._tmp_bin, os.path.join(self.directory, self.stem + ".bin"))
        os.replace(idx_path + ".tmp", idx_path)
        self.records.append(
            {
                "tokens_file": self.stem + ".bin",
                "index_file": self.stem + ".idx",
                "num_tokens": self._tokens,
                "num_documents": len(self._offsets) - 1,
                "tokens_checksum": self._hash.hexdigest(),
                "index_checksum": ih.hexdigest(),
            }
        )

    def close(self) -> list[dict[str, Any]]:
        if len(self._offsets) > 1:
            self._finish_shard()
        else:  # nothing was written since the last roll-over
            self._bin.close()
            os.remove(self._tmp_bin)
        return self.records


def write_manifest(
    directory: str,
    *,
    source: dict[str, Any],
    tokenizer_info: dict[str, Any],
    shards: list[dict[str, Any]],
    created_by: str,
    skipped_empty: int = 0,
) -> dict[str, Any]:
    """Write `manifest.json` (last, atomically: its presence means the directory is complete).

    `source` is {"name", "identity", "hash"}: what the shards were made from, checked by readers.
    """
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dtype": "uint32",
        "offsets_dtype": "uint64",
        "checksum": CHECKSUM,
        "source": source,
        "tokenizer": tokenizer_info,
        "documents": sum(s["num_documents"] for s in shards),
        "tokens": sum(s["num_tokens"] for s in shards),
        "skipped_empty": skipped_empty,
        "shards": shards,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "created_by": created_by,
    }
    path = os.path.join(directory, MANIFEST)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(path + ".tmp", path)
    return manifest


# ------------------------------------------------------------------------------------------------
# Reading


def read_manifest(directory: str, source_name: str) -> dict[str, Any]:
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        progress = os.path.join(directory, "units")
        hint = (
            "tokenization is incomplete: re-run `mlr1 tokenize` with the same --out to finish it"
            if os.path.isdir(progress)
            else "run `mlr1 tokenize --mix <mix> --out <dir>` to create it"
        )
        raise DataSourceError(f"source '{source_name}': no shard manifest at {path} ({hint})")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as err:
        raise DataSourceError(f"source '{source_name}': {path} is not valid JSON ({err})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise DataSourceError(
            f"source '{source_name}': {path} is not a {FORMAT} v{FORMAT_VERSION} manifest "
            f"(format={manifest.get('format')!r}, version={manifest.get('version')!r})"
        )
    return manifest


def check_tokenizer(manifest: dict, where: str, expected: dict[str, Any]) -> None:
    made_by = manifest["tokenizer"]
    if made_by["fingerprint"] != expected["fingerprint"]:
        raise DataSourceError(
            f"{where}: shards were made by tokenizer {made_by['name']} (fingerprint "
            f"{made_by['fingerprint']}, vocab {made_by['vocab_size']}), but this run uses "
            f"{expected['name']} (fingerprint {expected['fingerprint']}, vocab {expected['vocab_size']}). "
            "Re-tokenize the source with this tokenizer."
        )


@dataclass(frozen=True)
class ShardPlan:
    """A checked shard directory (picklable; no file is opened yet)."""

    spec: SourceSpec
    directory: str
    shards: tuple[dict[str, Any], ...]
    total_documents: int
    total_tokens: int


def plan_shard_source(
    spec: SourceSpec, directory: str, tokenizer_info: dict[str, Any], *, expect_source_hash: bool
) -> ShardPlan:
    manifest = read_manifest(directory, spec.name)
    where = f"source '{spec.name}' ({os.path.join(directory, MANIFEST)})"
    check_tokenizer(manifest, where, tokenizer_info)
    if expect_source_hash and manifest["source"]["hash"] != spec.source_hash():
        raise DataSourceError(
            f"{where}: shards were built from a different source definition "
            f"({manifest['source']['identity']}) than the mix's {spec.identity()}. "
            "Re-run `mlr1 tokenize` into a fresh directory or fix the mix."
        )
    shards = tuple(manifest["shards"])
    docs = sum(s["num_documents"] for s in shards)
    if docs == 0:
        raise DataSourceError(f"{where}: the source is empty (0 documents)")
    return ShardPlan(spec, directory, shards, docs, sum(s["num_tokens"] for s in shards))


def _map(path: str, expected_bytes: int, where: str) -> mmap.mmap | bytes:
    try:
        size = os.path.getsize(path)
    except OSError:
        raise DataSourceError(f"{where}: shard file {path} is missing") from None
    if size != expected_bytes:
        raise DataSourceError(
            f"{where}: shard file {path} is truncated or corrupted: {size} bytes, the manifest "
            f"says {expected_bytes}. Re-run `mlr1 tokenize` (it redoes damaged shards after `mlr1 data verify`)."
        )
    if size == 0:
        return b""
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


class _OpenShard:
    def __init__(self, directory: str, rec: dict[str, Any], where: str, verify: bool):
        tok_path = os.path.join(directory, rec["tokens_file"])
        idx_path = os.path.join(directory, rec["index_file"])
        tok_map = _map(tok_path, rec["num_tokens"] * TOKEN_DTYPE.itemsize, where)
        idx_map = _map(idx_path, (rec["num_documents"] + 1) * OFFSET_DTYPE.itemsize, where)
        if verify:
            for buf, key, path in ((tok_map, "tokens_checksum", tok_path), (idx_map, "index_checksum", idx_path)):
                h = new_hasher()
                h.update(buf)
                if h.hexdigest() != rec[key]:
                    raise DataSourceError(
                        f"{where}: shard file {path} is corrupted: {CHECKSUM} {h.hexdigest()} != "
                        f"manifest {rec[key]}. Delete it and its units/ record, then re-run `mlr1 tokenize`."
                    )
        self.tokens = np.frombuffer(tok_map, dtype=TOKEN_DTYPE)
        self.offsets = np.frombuffer(idx_map, dtype=OFFSET_DTYPE)
        if self.offsets[0] != 0 or self.offsets[-1] != rec["num_tokens"]:
            raise DataSourceError(f"{where}: index {idx_path} does not match {tok_path} (corrupted shard)")


class ShardReader:
    """Serves one reader's share of a shard source: epoch order = shards permuted, then documents
    permuted inside each shard, both seeded by (seed, source, epoch[, shard]). Reader `rank` of
    `world` takes global positions rank, rank+world, ... State = (epoch, cursor)."""

    def __init__(self, plan: ShardPlan, *, seed: int, rank: int, world: int, verify: bool = True):
        self.plan = plan
        self.name = plan.spec.name
        self.seed, self.rank, self.world, self.verify = seed, rank, world, verify
        if plan.total_documents < world:
            raise DataSourceError(
                f"source '{self.name}' ({plan.directory}) has {plan.total_documents} documents, "
                f"fewer than the {world} data readers; every reader needs at least one"
            )
        self._where = f"source '{self.name}' ({plan.directory})"
        self._counts = np.array([s["num_documents"] for s in plan.shards], dtype=np.int64)
        self._open: dict[int, _OpenShard] = {}
        self._verified: set[int] = set()
        self._perm_key: tuple[int, int] | None = None
        self._perm: np.ndarray | None = None
        self._set_position(0, rank)

    # -- position ---------------------------------------------------------------------------
    def _set_position(self, epoch: int, cursor: int) -> None:
        self.epoch, self.cursor = epoch, cursor
        self._order = seeded_rng(self.seed, self.name, epoch).permutation(len(self._counts))
        self._ends = np.cumsum(self._counts[self._order]).tolist()
        self._seg = (0, 0, -1)  # (start, end, shard id) of the shard the cursor is in

    def position(self) -> tuple[int, int]:
        return self.epoch, self.cursor

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state(self, state: dict[str, int]) -> None:
        self._set_position(int(state["epoch"]), int(state["cursor"]))

    # -- reading ----------------------------------------------------------------------------
    def _shard(self, sid: int) -> _OpenShard:
        shard = self._open.get(sid)
        if shard is None:
            # Each shard's checksum is verified by one reader only (the one whose rank matches),
            # so a job hashes every byte once instead of once per rank.
            verify = self.verify and sid % self.world == self.rank % self.world and sid not in self._verified
            shard = _OpenShard(self.plan.directory, self.plan.shards[sid], self._where, verify)
            self._verified.add(sid)
            if len(self._open) >= 2:  # keep the current and the previous shard mapped
                self._open.pop(next(iter(self._open)))
            self._open[sid] = shard
        return shard

    def next_doc(self) -> np.ndarray:
        if self.cursor >= self._ends[-1]:
            self._set_position(self.epoch + 1, self.rank)
        start, end, sid = self._seg
        if not start <= self.cursor < end:
            k = bisect_right(self._ends, self.cursor)
            start = self._ends[k - 1] if k else 0
            end = self._ends[k]
            sid = int(self._order[k])
            self._seg = (start, end, sid)
        if self._perm_key != (self.epoch, sid):
            n = int(self._counts[sid])
            self._perm = seeded_rng(self.seed, self.name, self.epoch, sid).permutation(n)
            self._perm_key = (self.epoch, sid)
        shard = self._shard(sid)
        doc = self._perm[self.cursor - start]
        self.cursor += self.world
        return shard.tokens[shard.offsets[doc] : shard.offsets[doc + 1]]


def verify_shard_dir(directory: str, name: str = "") -> list[str]:
    """Full check of a shard directory (sizes + checksums); returns a list of problems."""
    problems: list[str] = []
    try:
        manifest = read_manifest(directory, name or os.path.basename(directory))
    except DataSourceError as err:
        return [str(err)]
    where = f"source '{name or manifest['source']['name']}' ({directory})"
    for rec in manifest["shards"]:
        try:
            _OpenShard(directory, rec, where, verify=True)
        except DataSourceError as err:
            problems.append(str(err))
    return problems
