"""tokenizer.json from a SentencePiece tokenizer.model, built as transformers 5.24 builds it.

The oracle is `AutoTokenizer.from_pretrained` on a folder whose only tokenizer file is the
tokenizer.model (transformers' `SpmConverter.build_tokenizer_from_spm_proto`): it follows the
model's own normalizer spec, so it encodes like SentencePiece itself. The .model file is a
small protobuf (sentencepiece_model.proto), read here without protobuf or sentencepiece.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from llmc.errors import NotAvailable, UserError

# sentencepiece_model.proto field numbers
MODEL_PIECES, MODEL_TRAINER_SPEC, MODEL_NORMALIZER_SPEC = 1, 2, 3
PIECE_TEXT, PIECE_SCORE, PIECE_TYPE = 1, 2, 3
TRAINER_MODEL_TYPE, TRAINER_WHITESPACE_AS_SUFFIX, TRAINER_BYTE_FALLBACK, TRAINER_UNK_ID = 3, 24, 35, 40
NORMALIZER_CHARSMAP, NORMALIZER_DUMMY_PREFIX, NORMALIZER_REMOVE_EXTRA_SPACES, NORMALIZER_ESCAPE_SPACES = 2, 3, 4, 5
# SentencePiece.Type and TrainerSpec.ModelType values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4
UNIGRAM, BPE = 1, 2
MODEL_TYPE_NAMES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
# protobuf wire types
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
META_SPACE = "\u2581"


@dataclass(frozen=True)
class Piece:
    text: str
    score: float
    type: int


@dataclass(frozen=True)
class SentencePieceModel:
    pieces: list[Piece]
    model_type: int
    byte_fallback: bool
    whitespace_as_suffix: bool
    unk_id: int
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool
    precompiled_charsmap: bytes


def tokenizer_json_from_sentencepiece(model_path: Path, *, legacy: bool = True) -> str:
    """tokenizer.json text for a SentencePiece model; `legacy` is tokenizer_config.json's flag (default True)."""
    model = read_model(model_path)
    if model.model_type not in (UNIGRAM, BPE):
        kind = MODEL_TYPE_NAMES.get(model.model_type, str(model.model_type))
        raise NotAvailable(f"{model_path} is a SentencePiece {kind!r} model: only 'bpe' and 'unigram' models "
                           "can be turned into tokenizer.json; give the model's tokenizer.json instead")
    if model.whitespace_as_suffix:
        raise NotAvailable(f"{model_path} puts the whitespace marker after words (treat_whitespace_as_suffix), "
                           "which tokenizer.json cannot express; give the model's tokenizer.json instead")
    return build_tokenizer(model, legacy).to_str(pretty=False)


def read_model(path: Path) -> SentencePieceModel:
    data = path.read_bytes()
    try:
        return _parse_model(data)
    except (IndexError, ValueError, struct.error) as exc:
        raise UserError(f"{path} is not a valid SentencePiece model: {exc}") from None


def _parse_model(data: bytes) -> SentencePieceModel:
    fields = _message(data)
    trainer = _message(b"".join(fields.get(MODEL_TRAINER_SPEC, [])))  # repeated occurrences merge
    normalizer = _message(b"".join(fields.get(MODEL_NORMALIZER_SPEC, [])))
    pieces = [_parse_piece(raw) for raw in fields.get(MODEL_PIECES, [])]
    if not pieces:
        raise ValueError("it has no pieces")
    # Absent fields take the proto2 defaults declared in sentencepiece_model.proto.
    return SentencePieceModel(
        pieces=pieces,
        model_type=_last(trainer, TRAINER_MODEL_TYPE, UNIGRAM),
        byte_fallback=bool(_last(trainer, TRAINER_BYTE_FALLBACK, 0)),
        whitespace_as_suffix=bool(_last(trainer, TRAINER_WHITESPACE_AS_SUFFIX, 0)),
        unk_id=_int32(_last(trainer, TRAINER_UNK_ID, 0)),
        add_dummy_prefix=bool(_last(normalizer, NORMALIZER_DUMMY_PREFIX, 1)),
        remove_extra_whitespaces=bool(_last(normalizer, NORMALIZER_REMOVE_EXTRA_SPACES, 1)),
        escape_whitespaces=bool(_last(normalizer, NORMALIZER_ESCAPE_SPACES, 1)),
        precompiled_charsmap=_last(normalizer, NORMALIZER_CHARSMAP, b""),
    )


def _parse_piece(raw: bytes) -> Piece:
    fields = _message(raw)
    text = _last(fields, PIECE_TEXT, None)
    if text is None:
        raise ValueError("a piece has no text")
    score = struct.unpack("<f", _last(fields, PIECE_SCORE, b"\0\0\0\0"))[0]
    return Piece(text.decode("utf-8"), score, _last(fields, PIECE_TYPE, NORMAL))


def _message(data: bytes) -> dict[int, list]:
    """Field number -> values in file order: ints for varints, bytes for everything else."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = _varint(data, pos)
        elif wire_type == LENGTH_DELIMITED:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire_type in (FIXED32, FIXED64):
            size = 4 if wire_type == FIXED32 else 8
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if pos > len(data):
            raise ValueError("it is truncated")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ValueError("a varint is too long")


def _int32(value: int) -> int:
    """Negative int32 fields (-1 for 'no such token') are written as 64-bit two's complement varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _last(fields: dict[int, list], number: int, default):
    values = fields.get(number)
    return values[-1] if values else default


def build_tokenizer(model: SentencePieceModel, legacy: bool):
    from tokenizers import AddedToken, Tokenizer

    user_defined = [p.text for p in model.pieces if p.type == USER_DEFINED]
    tokenizer = Tokenizer(_bpe(model, user_defined) if model.model_type == BPE else _unigram(model))
    tokenizer.normalizer = _normalizer(model, legacy)
    pre_tokenizer = _pre_tokenizer(model, legacy, user_defined)
    if pre_tokenizer is not None:
        tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = _decoder(model)
    # User-defined pieces stay model pieces (isolated by the pre-tokenizer), as transformers keeps them.
    special = [p.text for p in model.pieces if p.type in (UNKNOWN, CONTROL)]
    tokenizer.add_special_tokens([AddedToken(text, special=True, normalized=False) for text in special])
    return tokenizer


def _bpe(model: SentencePieceModel, user_defined: list[str]):
    from tokenizers import models

    vocab = {p.text: i for i, p in enumerate(model.pieces)}
    unk = model.pieces[model.unk_id].text if 0 <= model.unk_id < len(model.pieces) else None
    # SentencePiece emits a whole user-defined piece without merging: ignore_merges keeps it whole.
    return models.BPE(vocab=vocab, merges=_merges(model.pieces), unk_token=unk, fuse_unk=True,
                      byte_fallback=model.byte_fallback, dropout=None, ignore_merges=bool(user_defined))


def _merges(pieces: list[Piece]) -> list[tuple[str, str]]:
    """Every split of a normal piece into two normal pieces, best piece score first (SentencePiece's order)."""
    normal = {p.text: (p.score, i) for i, p in enumerate(pieces) if p.type == NORMAL}
    ranked = []
    for text, (score, index) in normal.items():
        for cut in range(1, len(text)):
            left, right = text[:cut], text[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    return [(left, right) for _, _, left, right in sorted(ranked)]


def _unigram(model: SentencePieceModel):
    from tokenizers import models

    return models.Unigram([(p.text, p.score) for p in model.pieces], unk_id=model.unk_id,
                          byte_fallback=model.byte_fallback)


def _normalizer(model: SentencePieceModel, legacy: bool):
    """SentencePiece's normalization steps, in its order."""
    from tokenizers import Regex, normalizers

    steps = []
    if model.precompiled_charsmap:
        steps.append(normalizers.Precompiled(model.precompiled_charsmap))
    if model.remove_extra_whitespaces:
        # SentencePiece collapses only spaces; newlines and tabs stay.
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if model.escape_whitespaces:
        steps.append(normalizers.Replace(" ", META_SPACE))
    if model.add_dummy_prefix and legacy:
        # Metaspace adds no prefix to text that already starts with "▁"; SentencePiece still does.
        steps.append(normalizers.Replace(Regex(rf"\A{META_SPACE}"), META_SPACE * 2))
    return normalizers.Sequence(steps)


def _pre_tokenizer(model: SentencePieceModel, legacy: bool, user_defined: list[str]):
    from tokenizers import Regex, pre_tokenizers

    steps = []
    if model.add_dummy_prefix:
        # legacy: every chunk between special tokens gets the dummy prefix; otherwise only the first.
        steps.append(pre_tokenizers.Metaspace(replacement=META_SPACE, prepend_scheme="always" if legacy else "first",
                                              split=False))
    if user_defined:
        longest_first = sorted(user_defined, key=len, reverse=True)
        steps.append(pre_tokenizers.Split(Regex("|".join(re.escape(t) for t in longest_first)), behavior="isolated"))
    return pre_tokenizers.Sequence(steps) if steps else None


def _decoder(model: SentencePieceModel):
    from tokenizers import decoders

    steps = [decoders.Replace(META_SPACE, " ")]
    if model.byte_fallback:
        steps.append(decoders.ByteFallback())
    if model.add_dummy_prefix:
        # Strip applies to every token: fuse them first so only the text's first space goes.
        steps += [decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    elif model.byte_fallback:
        steps.append(decoders.Fuse())
    return decoders.Sequence(steps)
