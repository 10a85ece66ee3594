"""Top-k in the order transformers' CPU torch.topk returns, ties included.

torch.topk on a CPU sorts (value, index) pairs with libstdc++: `std::nth_element` on the k-th place then
`std::sort` of the k-1 before it, or, where k * 64 <= n, `std::partial_sort`. Neither is stable, so among
equal router probabilities the experts it keeps, and their order, are whatever those algorithms leave.
These macros are the same algorithms step for step (introselect with its median-of-three pivot, unguarded
partition, heap select, heap sort, insertion sort) on a row held in local buffers, so a tie picks the
experts torch picks. NaN ranks above every number, as torch's comparator has it.

The state of a row: `qv`/`qi` the (value, index) queue, `hv`/`hi` the held pair and a swap slot, `r` the
integer registers below.
"""
from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from llmc.families.experts import MAX_TOP_K, top_k_reproducible

FIRST, LAST, DEPTH, DONE, MID, SEL, PF, PL, PDONE, I, J, HOLE, TOP, CHILD, PARENT, P2, LEN = range(17)
REGISTERS = LEN + 1


def before(x, y):
    """torch's `largest` comparator: x goes before y."""
    return tirx.Or(tirx.And(T.isnan(x), tirx.Not(T.isnan(y))), x > y)


@T.macro
def _move(qv, qi, dst, src):
    qv[dst] = qv[src]
    qi[dst] = qi[src]


@T.macro
def _swap(qv, qi, hv, hi, a, b):
    hv[1] = qv[a]
    hi[1] = qi[a]
    _move(qv, qi, a, b)
    qv[b] = hv[1]
    qi[b] = hi[1]


@T.macro
def _hold(qv, qi, hv, hi, src):
    hv[0] = qv[src]
    hi[0] = qi[src]


@T.macro
def _adjust_heap(qv, qi, hv, hi, r, first, hole, length):
    """std::__adjust_heap: sift the hole at `hole` down to a leaf, then push the held pair up from there."""
    r[HOLE] = hole
    r[TOP] = hole
    r[CHILD] = hole
    while r[CHILD] < (length - 1) // 2:
        r[CHILD] = 2 * (r[CHILD] + 1)
        if before(qv[first + r[CHILD]], qv[first + r[CHILD] - 1]):
            r[CHILD] = r[CHILD] - 1
        _move(qv, qi, first + r[HOLE], first + r[CHILD])
        r[HOLE] = r[CHILD]
    if length % 2 == 0 and r[CHILD] == (length - 2) // 2:
        r[CHILD] = 2 * (r[CHILD] + 1)
        _move(qv, qi, first + r[HOLE], first + r[CHILD] - 1)
        r[HOLE] = r[CHILD] - 1
    r[PARENT] = T.max(r[HOLE] - 1, 0) // 2
    while r[HOLE] > r[TOP] and before(qv[first + r[PARENT]], hv[0]):
        _move(qv, qi, first + r[HOLE], first + r[PARENT])
        r[HOLE] = r[PARENT]
        r[PARENT] = T.max(r[HOLE] - 1, 0) // 2
    qv[first + r[HOLE]] = hv[0]
    qi[first + r[HOLE]] = hi[0]


@T.macro
def _heap_select(qv, qi, hv, hi, r, first, middle, last):
    """std::__heap_select: [first, middle) becomes a heap of the best middle - first of [first, last)."""
    r[LEN] = middle - first
    r[P2] = (r[LEN] - 2) // 2
    while r[LEN] >= 2 and r[P2] >= 0:  # std::__make_heap
        _hold(qv, qi, hv, hi, first + r[P2])
        _adjust_heap(qv, qi, hv, hi, r, first, r[P2], r[LEN])
        r[P2] = r[P2] - 1
    r[I] = middle
    while r[I] < last:
        if before(qv[r[I]], qv[first]):
            _hold(qv, qi, hv, hi, r[I])
            _move(qv, qi, r[I], first)
            _adjust_heap(qv, qi, hv, hi, r, first, 0, r[LEN])
        r[I] = r[I] + 1


@T.macro
def _sort_heap(qv, qi, hv, hi, r, length):
    """std::__sort_heap of the heap [0, length)."""
    r[P2] = length
    while r[P2] > 1:
        r[P2] = r[P2] - 1
        _hold(qv, qi, hv, hi, r[P2])
        _move(qv, qi, r[P2], 0)
        _adjust_heap(qv, qi, hv, hi, r, 0, 0, r[P2])


@T.macro
def _insertion_sort(qv, qi, hv, hi, r, first, last):
    """std::__insertion_sort of [first, last)."""
    r[I] = first + 1
    while r[I] < last:
        _hold(qv, qi, hv, hi, r[I])
        r[J] = r[I]
        if before(hv[0], qv[first]):
            while r[J] > first:
                _move(qv, qi, r[J], r[J] - 1)
                r[J] = r[J] - 1
        else:
            while before(hv[0], qv[r[J] - 1]):  # the unguarded linear insert: qv[first] stops it
                _move(qv, qi, r[J], r[J] - 1)
                r[J] = r[J] - 1
        qv[r[J]] = hv[0]
        qi[r[J]] = hi[0]
        r[I] = r[I] + 1


@T.macro
def _median_to_first(qv, qi, hv, hi, r, result, a, b, c):
    """std::__move_median_to_first."""
    if before(qv[a], qv[b]):
        if before(qv[b], qv[c]):
            r[SEL] = b
        elif before(qv[a], qv[c]):
            r[SEL] = c
        else:
            r[SEL] = a
    elif before(qv[a], qv[c]):
        r[SEL] = a
    elif before(qv[b], qv[c]):
        r[SEL] = c
    else:
        r[SEL] = b
    _swap(qv, qi, hv, hi, result, r[SEL])


@T.macro
def _partition(qv, qi, hv, hi, r, first, last, pivot):
    """std::__unguarded_partition around qv[pivot]; the cut lands in r[PF]."""
    r[PF] = first
    r[PL] = last
    r[PDONE] = 0
    while r[PDONE] == 0:
        while before(qv[r[PF]], qv[pivot]):
            r[PF] = r[PF] + 1
        r[PL] = r[PL] - 1
        while before(qv[pivot], qv[r[PL]]):
            r[PL] = r[PL] - 1
        if r[PF] < r[PL]:
            _swap(qv, qi, hv, hi, r[PF], r[PL])
            r[PF] = r[PF] + 1
        else:
            r[PDONE] = 1


@T.macro
def _nth_element(qv, qi, hv, hi, r, n, nth, depth_limit):
    """std::__introselect over [0, n): the nth place gets its sorted value, better ones before it."""
    r[FIRST] = 0
    r[LAST] = n
    r[DEPTH] = depth_limit
    r[DONE] = 0
    while r[LAST] - r[FIRST] > 3 and r[DONE] == 0:
        if r[DEPTH] == 0:
            _heap_select(qv, qi, hv, hi, r, r[FIRST], nth + 1, r[LAST])
            _swap(qv, qi, hv, hi, r[FIRST], nth)
            r[DONE] = 1
        else:
            r[DEPTH] = r[DEPTH] - 1
            r[MID] = r[FIRST] + (r[LAST] - r[FIRST]) // 2
            _median_to_first(qv, qi, hv, hi, r, r[FIRST], r[FIRST] + 1, r[MID], r[LAST] - 1)
            _partition(qv, qi, hv, hi, r, r[FIRST] + 1, r[LAST], r[FIRST])
            if r[PF] <= nth:
                r[FIRST] = r[PF]
            else:
                r[LAST] = r[PF]
    if r[DONE] == 0:
        _insertion_sort(qv, qi, hv, hi, r, r[FIRST], r[LAST])


def check(n: int, k: int) -> None:
    """The kernel's own guard; configs are refused earlier, as user errors (families.experts.top_k)."""
    if not 1 <= k <= n:
        raise ValueError(f"top-k of {k} among {n} experts: k must be between 1 and the number of experts")
    if not top_k_reproducible(n, k):
        raise ValueError(f"top-k of {k} among {n} experts: torch sorts that many picks with an introsort "
                         f"that llmc's router does not reproduce; models route to at most {MAX_TOP_K} experts "
                         "per token")


def macro(n: int, k: int):
    """The top-k macro for a row of n values: (qv, qi, hv, hi, r) -> the k best, in torch's order, in
    qv[:k] / qi[:k]. qv/qi must hold the row and its indices 0..n-1."""
    check(n, k)
    if k * 64 <= n:
        @T.macro
        def top_k(qv, qi, hv, hi, r):
            _heap_select(qv, qi, hv, hi, r, 0, k, n)
            _sort_heap(qv, qi, hv, hi, r, k)
    else:
        depth = 2 * (n.bit_length() - 1)

        @T.macro
        def top_k(qv, qi, hv, hi, r):
            _nth_element(qv, qi, hv, hi, r, n, k - 1, depth)
            _insertion_sort(qv, qi, hv, hi, r, 0, k - 1)
    return top_k
