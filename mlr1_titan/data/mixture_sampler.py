"""Token-exact source selection: a deterministic "virtual finish time" (deficit) sampler.

Each time a document is needed, the sampler picks the source whose share of *tokens* would stay
furthest behind its target after taking one more (average-length) document:
argmin_i (consumed_i + mean_doc_len_i) / weight_i (a source with no document yet uses the mean
over all sources). After any number of documents every source's consumed tokens are within about
one document of weight_i * total, so realized token fractions converge to the targets at rate
doc_len / total: no randomness, nothing to seed, and the state is two integers per source.
(Counting the next document up front keeps tiny-weight sources from all being served first while
every counter is still zero.)
"""

from __future__ import annotations

PRIOR_DOC_TOKENS = 1024  # length guess for a source's first document before any document is seen


class DeficitSampler:
    def __init__(self, names: list[str], weights: list[float]):
        if len(names) != len(weights) or not names:
            raise ValueError("DeficitSampler needs one weight per source and at least one source")
        total = float(sum(weights))
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
        # Zero-weight sources are never picked; they are not even kept.
        kept = [(n, w / total) for n, w in zip(names, weights) if w > 0]
        self.names = [n for n, _ in kept]
        self.weights = [w for _, w in kept]
        self._inv = [1.0 / w for w in self.weights]
        self.consumed = [0] * len(self.names)
        self.docs = [0] * len(self.names)
        self._unseen = len(self.names)  # sources without a document yet (their key uses the prior)
        self._keys = [0.0] * len(self.names)
        self._refresh_all()

    def _key(self, i: int, prior: float) -> float:
        d = self.docs[i]
        mean = self.consumed[i] / d if d else prior
        return (self.consumed[i] + mean) * self._inv[i]

    def _refresh_all(self) -> None:
        all_docs = sum(self.docs)
        prior = sum(self.consumed) / all_docs if all_docs else PRIOR_DOC_TOKENS
        self._keys = [self._key(i, prior) for i in range(len(self.names))]
        self._unseen = self.docs.count(0)

    def pick(self) -> int:
        """Index (into `names`) of the next source; ties go to the earlier source."""
        keys = self._keys
        return min(range(len(keys)), key=keys.__getitem__)

    def add(self, index: int, tokens: int) -> None:
        self.consumed[index] += tokens
        self.docs[index] += 1
        if self._unseen:  # the shared prior moved: every unseen source's key changes
            self._refresh_all()
        else:  # only this source's key changed
            self._keys[index] = self._key(index, 0.0)

    def state(self) -> dict[str, list[int]]:
        return {n: [c, d] for n, c, d in zip(self.names, self.consumed, self.docs)}

    def load_state(self, state: dict[str, list[int]]) -> list[str]:
        """Restore counters by source name; returns names in `state` this sampler does not know."""
        self.consumed = [int(state[n][0]) if n in state else 0 for n in self.names]
        self.docs = [int(state[n][1]) if n in state else 0 for n in self.names]
        self._refresh_all()
        return [n for n in state if n not in self.names]
