"""MLC's quantized bit layouts, defined once: the numpy packer, the TVM dequantizing expressions and
the int8 kernels all read them from here.

Group quantization (q3f16_*, q4f16_*, q4f32_1): per group of `group_size` values along K (the input
axis), q = round(w / scale) + max_int (the zero point) in [0, 2 * max_int], packed least significant
first, `per_word` = 32 // bits values per uint32; K is padded with q = 0 to whole groups. `_1` stores
linear weights NK (row n holds its K values), `_0` stores them KN; embeddings are NK in both.
AutoAWQ (q4f16_awq) packs 8 nibbles per word along N in AWQ_ORDER, with explicit zeros.
"""
from __future__ import annotations

from dataclasses import dataclass


# The most sensitive tensors of a small model (a tied embedding is also its output layer): schemes with
# a `head` give them more bits, as llama.cpp's mixes give token_embd and output.
HEAD_KINDS = ("embedding", "final_fc")


@dataclass(frozen=True)
class Scheme:
    name: str
    kind: str                 # "none", "group" or "awq": the module in llmc.quant that handles it
    model_dtype: str          # "float16" or "float32"
    bits: int = 0
    group_size: int = 0
    layout: str = "NK"        # linear weight layout of group schemes
    head: Scheme | None = None  # another scheme for the embedding and the output layer (None: this one)

    def for_kind(self, kind: str) -> Scheme:
        """The scheme a parameter of this kind ("linear", "embedding", "final_fc", ...) is stored in."""
        return self.head if self.head is not None and kind in HEAD_KINDS else self

    @property
    def per_word(self) -> int:
        return 32 // self.bits

    @property
    def max_int(self) -> int:
        """The zero point of a symmetric group scheme: stored q is the signed value plus this."""
        return 2 ** (self.bits - 1) - 1

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def groups(self, k: int) -> int:
        return -(-k // self.group_size)

    def words(self, k: int) -> int:
        return self.groups(k) * self.group_size // self.per_word

    def shift(self, k):
        """The bit offset of element k inside its word (an int, or a TIR expression)."""
        return (k % self.per_word) * self.bits


AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AutoAWQ: nibble i holds element AWQ_ORDER[i] of 8


def awq_slot(e):
    """The nibble that holds element e (0..7) of an AutoAWQ word: AWQ_ORDER.index(e), as arithmetic
    that works on ints and on TIR expressions alike."""
    return (e % 2) * 4 + e // 2


assert [awq_slot(e) for e in range(8)] == [AWQ_ORDER.index(e) for e in range(8)]

# The layout the int8-activation kernels (--opt O3) are written for: that of q4f16_1 and q4f32_1.
INT8_KERNEL_LAYOUT = Scheme("4-bit, group 32, NK", "group", "", bits=4, group_size=32, layout="NK")


def has_int8_kernel_layout(s: Scheme) -> bool:
    ref = INT8_KERNEL_LAYOUT
    return (s.kind, s.bits, s.group_size, s.layout) == (ref.kind, ref.bits, ref.group_size, ref.layout)
