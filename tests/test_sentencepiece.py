"""tokenizer.json from a SentencePiece tokenizer.model: the ids transformers' own conversion gives.

The models are trained here with sentencepiece; the oracle is transformers' AutoTokenizer loaded from
a folder whose only tokenizer file is that tokenizer.model (plus tokenizer_config.json for `legacy`).
"""
import io
import json

import pytest

from llmc.commands.gen_config import generate_config
from llmc.errors import NotAvailable, UserError
from llmc.chat.sentencepiece import tokenizer_json_from_sentencepiece
from llmc.store import Store

CORPUS = ["The capital of France is Paris. Hello world! What is the answer?",
          "the quick brown fox jumps over the lazy dog 0123456789",
          "naïve café, résumé; tabs\tand  double  spaces"] * 30
# Llama's own settings: BPE with byte fallback, split digits, no whitespace collapsing, no NFKC.
LLAMA_LIKE = dict(model_type="bpe", vocab_size=400, byte_fallback=True, split_digits=True, add_dummy_prefix=True,
                  remove_extra_whitespaces=False, normalization_rule_name="identity",
                  allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
# SentencePiece's defaults instead: NFKC charsmap, whitespace collapsing, user-defined and extra control pieces.
BPE_DEFAULTS = dict(model_type="bpe", vocab_size=400, byte_fallback=True, user_defined_symbols=["<tool>", "the"],
                    control_symbols=["<ctl>"], pad_id=3)
UNIGRAM_BYTES = dict(model_type="unigram", vocab_size=400, byte_fallback=True, user_defined_symbols=["<tool>"],
                     control_symbols=["<ctl>"])
UNIGRAM_PLAIN = dict(model_type="unigram", vocab_size=150)
VARIANTS = {"llama-like": LLAMA_LIKE, "bpe-defaults": BPE_DEFAULTS, "unigram-bytes": UNIGRAM_BYTES,
            "unigram-plain": UNIGRAM_PLAIN}
PLAIN_TEXTS = ["Hello world", "What is the capital of France?", " Hello", "   leading spaces", "trailing  ",
               "two  spaces   three", "a\nb\n\nc\r\n", "tabs\tand\t\tmore", "2024-01-31: 1234567890",
               "😀 emoji 🤖", "日本語のテキスト", "Привет, мир", "héllo ＡＢＣ ①", "", " ", "the lazy <tool>dog"]
TEXTS = PLAIN_TEXTS + ["<s>Hello</s> world", "jumps<ctl> over", "</s></s>"]


def train(folder, options: dict, tokenizer_config: dict | None = None):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model, character_coverage=1.0,
                                   hard_vocab_limit=False, num_threads=1, minloglevel=2, **options)
    folder.mkdir(parents=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def converted(folder, legacy=True):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json_from_sentencepiece(folder / "tokenizer.model", legacy=legacy))


def transformers_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def llama_spm(tmp_path_factory):
    return train(tmp_path_factory.mktemp("spm") / "llama-like", LLAMA_LIKE)


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ids_and_decoding_match_transformers(variant, legacy, tmp_path):
    folder = train(tmp_path / variant, VARIANTS[variant], None if legacy else {"legacy": False})
    ours, theirs = converted(folder, legacy), transformers_tokenizer(folder)
    for text in TEXTS:
        ids = ours.encode(text, add_special_tokens=False).ids
        assert ids == theirs(text, add_special_tokens=False).input_ids, text
        assert ours.decode(ids, skip_special_tokens=False) == theirs.decode(ids), text


def test_llama_like_decoding_round_trips(llama_spm):
    tok = converted(llama_spm)
    for text in PLAIN_TEXTS:
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text, text


def test_llama_like_bytes_fall_back_to_byte_pieces(llama_spm):
    tok = converted(llama_spm)
    pieces = tok.encode("😀", add_special_tokens=False).tokens
    assert pieces == ["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]


def test_llama_like_matches_sentencepiece_itself(llama_spm):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(llama_spm / "tokenizer.model"))
    tok = converted(llama_spm)
    for text in PLAIN_TEXTS:  # SentencePiece reads "<s>" in text as characters; transformers as the token
        assert tok.encode(text, add_special_tokens=False).ids == sp.encode(text), text


def test_control_pieces_are_special_added_tokens(llama_spm):
    spec = json.loads(tokenizer_json_from_sentencepiece(llama_spm / "tokenizer.model"))
    added = [(t["id"], t["content"], t["special"], t["normalized"]) for t in spec["added_tokens"]]
    assert added == [(0, "<unk>", True, False), (1, "<s>", True, False), (2, "</s>", True, False)]
    assert spec["model"]["type"] == "BPE" and spec["model"]["byte_fallback"] is True


def test_other_sentencepiece_model_types_are_not_available(tmp_path):
    folder = train(tmp_path / "char", {"model_type": "char", "vocab_size": 60})
    with pytest.raises(NotAvailable, match="'char' model"):
        tokenizer_json_from_sentencepiece(folder / "tokenizer.model")


def test_a_file_that_is_not_a_model_is_a_user_error(tmp_path):
    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"\x0a\xff\xff\x01not a model")
    with pytest.raises(UserError, match="not a valid SentencePiece model"):
        tokenizer_json_from_sentencepiece(path)


def test_gen_config_writes_tokenizer_json_from_tokenizer_model(tiny_llama, llama_spm, tmp_path):
    model = tmp_path / "llama-spm"
    model.mkdir()
    config = json.loads((tiny_llama / "config.json").read_text())
    config["vocab_size"] = 400
    (model / "config.json").write_text(json.dumps(config))
    (model / "tokenizer.model").write_bytes((llama_spm / "tokenizer.model").read_bytes())
    out = tmp_path / "out"
    generate_config(str(model), "q0f32", "llama-2", out, Store(tmp_path / "store"))
    cfg = json.loads((out / "mlc-chat-config.json").read_text())
    # MLC's order: the copied files in TOKENIZER_FILES order, then the tokenizer.json it converted
    assert cfg["tokenizer_files"] == ["tokenizer.model", "tokenizer.json"]
    # MLC reads prepend_space_in_encode from a Prepend normalizer only, not our Metaspace pre-tokenizer
    assert cfg["tokenizer_info"] == {"token_postproc_method": "byte_fallback", "prepend_space_in_encode": False,
                                     "strip_space_in_decode": True}
    from tokenizers import Tokenizer

    written = Tokenizer.from_file(str(out / "tokenizer.json"))
    theirs = transformers_tokenizer(llama_spm)
    for text in TEXTS:
        assert written.encode(text, add_special_tokens=False).ids == theirs(text, add_special_tokens=False).input_ids
