"""The character vocabulary of the text data: ids for characters, and padded id tensors.

Every text data module maps characters to integer ids with one ``Vocab``: PAD 0, BOS 1,
EOS 2, UNK 3, then the characters in sorted order. Items are fixed-length LongTensors
right-padded with PAD (``encode_padded``), so the default collate stacks a batch.

Shape letters: N strings.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch


class Vocab:
    """Characters <-> ids: the four specials first, then the characters in sorted order."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, chars: Iterable[str]) -> None:
        chars = set(chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError("a Vocab is built from single characters")
        self.itos: list[str] = list(self.SPECIALS) + sorted(chars)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; a character outside the vocabulary -> UNK."""
        return [self.stoi.get(c, self.UNK) for c in text]

    def encode_tensor(self, text: str) -> torch.Tensor:
        """``encode`` as a LongTensor[len(text)], vectorised for corpora of millions of characters."""
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        distinct, inverse = np.unique(codes, return_inverse=True)
        table = np.array([self.stoi.get(chr(c), self.UNK) for c in distinct], dtype=np.int64)
        return torch.from_numpy(table[inverse.reshape(-1)])

    def decode(self, ids: Iterable[int] | torch.Tensor, strip: bool = True) -> str:
        """Ids -> text. ``strip``: stop at the first EOS and drop PAD and BOS."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        chars = []
        for i in ids:
            if strip and i == self.EOS:
                break
            if strip and i in (self.PAD, self.BOS):
                continue
            chars.append(self.itos[i])
        return "".join(chars)


def encode_padded(vocab: Vocab, strings: Sequence[str], length: int, bos_eos: bool = False) -> torch.Tensor:
    """Strings -> LongTensor[N, length] of ids, right-padded with PAD; ``bos_eos`` wraps each in BOS ... EOS.

    Vectorised (one ``encode_tensor`` of the joined strings): tens of thousands of examples
    take milliseconds, not the second that a tensor per row would.
    """
    n, offset = len(strings), int(bos_eos)
    lengths = torch.tensor([len(s) for s in strings], dtype=torch.long)  # (N,)
    if n and int(lengths.max()) + 2 * offset > length:
        raise ValueError(f"a string of {int(lengths.max())} characters does not fit in {length} positions")
    out = torch.full((n, length), Vocab.PAD, dtype=torch.long)
    positions = torch.arange(length)  # (length,)
    # Row-major boolean indexing fills the masked positions in the order of the joined string.
    inside = (positions >= offset) & (positions < lengths[:, None] + offset)  # (N, length)
    out[inside] = vocab.encode_tensor("".join(strings))
    if bos_eos:
        out[:, 0] = Vocab.BOS
        out[torch.arange(n), lengths + 1] = Vocab.EOS
    return out


__all__ = ["Vocab", "encode_padded"]
