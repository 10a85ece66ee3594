"""MLCEngine on a tiny random llama (q0f32) against transformers, and its API's behaviour."""
import numpy as np
import pytest

from compiled import build
from llmc.runtime import BadRequestError, MLCEngine

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31]


@pytest.fixture(scope="module")
def folder(tiny_llama, session_store, tmp_path_factory):
    return build(tiny_llama, "q0f32", tmp_path_factory.mktemp("engine") / "tiny-MLC", session_store)


@pytest.fixture(scope="module")
def engine(folder):
    return MLCEngine(folder, model_lib=folder / "lib.so")


@pytest.fixture(scope="module")
def hf(tiny_llama):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama).eval()


def hf_generate(hf, steps):
    import torch

    with torch.no_grad():
        out = hf.generate(torch.tensor([PROMPT]), max_new_tokens=steps, do_sample=False, output_scores=True,
                          return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
    logprobs = [torch.log_softmax(s[0].double(), -1).numpy() for s in out.scores]
    return out.sequences[0, len(PROMPT):].tolist(), logprobs


def test_greedy_tokens_and_top_logprobs_match_transformers(engine, hf):
    want, ref = hf_generate(hf, 12)
    req = engine.request(PROMPT, n=1, max_tokens=12, stop=None, seed=None, logprobs=5,
                         params=engine.sampling(0, 1, 0, 0, 1), prompt_param="prompt")
    events = [ev for ev in engine.generate(req) if ev.token is not None]
    assert [ev.token for ev in events] == want
    for ev, lp in zip(events, ref):
        best = np.argsort(-lp, kind="stable")[:5]
        assert [t for t, _ in ev.top] == list(best)
        assert np.allclose([v for _, v in ev.top], lp[best], atol=1e-3)
        assert abs(ev.logprob - lp[ev.token]) < 1e-3


def test_completions_logprobs_shape(engine, hf):
    want, ref = hf_generate(hf, 6)
    r = engine.completions.create(prompt=PROMPT, max_tokens=6, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert lp.tokens == [engine.tokenizer.token_text(t) for t in want]
    assert np.allclose(lp.token_logprobs, [ref[i][t] for i, t in enumerate(want)], atol=1e-3)
    assert r.choices[0].text == engine.tokenizer.decode(want)


def test_echo_scores_the_prompt_as_transformers_does(engine, hf, monkeypatch):
    """echo + logprobs (OpenAI's legacy API, vLLM): the prompt's tokens lead, each with its logprob given
    the tokens before it; max_tokens=0 scores the prompt alone. Chunked prefill must not change them."""
    import torch

    with torch.no_grad():
        ref = torch.log_softmax(hf(torch.tensor([PROMPT])).logits[0].double(), -1).numpy()
    monkeypatch.setattr(engine.lib, "prefill_chunk", 5)  # three chunks of the 12-token prompt
    r = engine.completions.create(prompt=PROMPT, max_tokens=0, echo=True, logprobs=3)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == engine.tokenizer.decode(PROMPT) and r.choices[0].finish_reason == "length"
    assert lp.tokens == [engine.tokenizer.token_text(t) for t in PROMPT]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    want = [ref[i - 1][PROMPT[i]] for i in range(1, len(PROMPT))]
    assert np.allclose(lp.token_logprobs[1:], want, atol=1e-4)
    best = np.argsort(-ref[3], kind="stable")[:3]
    assert list(lp.top_logprobs[4].values()) == pytest.approx(list(ref[3][best]), abs=1e-4)
    # with generation after the echo: prompt entries, then the generated ones
    r = engine.completions.create(prompt=PROMPT, max_tokens=4, echo=True, logprobs=1, temperature=0)
    lp = r.choices[0].logprobs
    assert len(lp.token_logprobs) == len(PROMPT) + 4 and r.choices[0].text.startswith(engine.tokenizer.decode(PROMPT))
    assert np.allclose(lp.token_logprobs[1:len(PROMPT)], want, atol=1e-4)


def test_echo_without_logprobs_prepends_the_prompt(engine):
    r = engine.completions.create(prompt=PROMPT, max_tokens=3, echo=True, temperature=0)
    plain = engine.completions.create(prompt=PROMPT, max_tokens=3, temperature=0)
    assert r.choices[0].text == engine.tokenizer.decode(PROMPT) + plain.choices[0].text
    with pytest.raises(BadRequestError, match="max_tokens"):
        engine.completions.create(prompt=PROMPT, max_tokens=0)
    with pytest.raises(BadRequestError, match="echo"):
        engine.completions.create(prompt=PROMPT, echo="yes")


def test_stream_concatenates_to_the_full_text(engine):
    kwargs = dict(messages=[{"role": "user", "content": "Hello world"}], max_tokens=20, temperature=0)
    full = engine.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(engine.chat.completions.create(stream=True, **kwargs))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_seed_reproduces_a_sampled_text(engine):
    kwargs = dict(prompt="The capital", max_tokens=16, temperature=1.0, top_p=0.9)
    a = engine.completions.create(seed=11, **kwargs).choices[0].text
    b = engine.completions.create(seed=11, **kwargs).choices[0].text
    c = engine.completions.create(seed=12, **kwargs).choices[0].text
    assert a == b and a != c


def test_stop_string_cuts_the_text(engine):
    full = engine.completions.create(prompt="Hello", max_tokens=16, temperature=0).choices[0].text
    stop = full[5:7]
    assert stop and full.find(stop) == 5
    r = engine.completions.create(prompt="Hello", max_tokens=16, temperature=0, stop=[stop])
    assert r.choices[0].text == full[:5] and r.choices[0].finish_reason == "stop"
    chunks = list(engine.completions.create(prompt="Hello", max_tokens=16, temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == full[:5]


def test_max_tokens_sets_length(engine):
    r = engine.completions.create(prompt="Hello", max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_n_choices_and_pages_are_released(engine):
    free = engine.scheduler.free_sequences()
    r = engine.chat.completions.create(messages=[{"role": "user", "content": "Hi"}], n=3, max_tokens=8,
                                       temperature=1.0, seed=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) > 1
    assert engine.scheduler.free_sequences() == free


def test_two_interleaved_streams(engine):
    a = engine.completions.create(prompt="Hello", max_tokens=10, temperature=0)
    b = engine.completions.create(prompt="The capital", max_tokens=10, temperature=0)
    sa = engine.completions.create(prompt="Hello", max_tokens=10, temperature=0, stream=True)
    sb = engine.completions.create(prompt="The capital", max_tokens=10, temperature=0, stream=True)
    ta, tb = "", ""
    for ca, cb in zip(sa, sb):
        ta += ca.choices[0].text
        tb += cb.choices[0].text
    assert ta == a.choices[0].text and tb == b.choices[0].text


def test_abandoned_stream_releases_its_sequence(engine):
    free = engine.scheduler.free_sequences()
    stream = engine.completions.create(prompt="Hello", max_tokens=50, temperature=0, stream=True)
    next(stream)
    assert engine.scheduler.free_sequences() == free - 1
    stream.close()
    assert engine.scheduler.idle() and engine.scheduler.free_sequences() == free  # freed by the scheduler's next step


@pytest.mark.parametrize("kwargs,param", [
    (dict(temperature=5), "temperature"),
    (dict(top_p=0), "top_p"),
    (dict(n=0), "n"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(stop=[""]), "stop"),
    (dict(top_logprobs=3), "top_logprobs"),
    (dict(messages=[]), "messages"),
    (dict(messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]), "messages"),
    (dict(tools=[]), "tools"),
    (dict(temperature="hot"), "temperature"),
    (dict(top_p=None, presence_penalty=[1]), "presence_penalty"),
    (dict(repetition_penalty=True), "repetition_penalty"),
])
def test_validation_errors_name_the_argument(engine, kwargs, param):
    kwargs = {"messages": [{"role": "user", "content": "Hi"}], **kwargs}
    with pytest.raises(BadRequestError) as err:
        engine.chat.completions.create(**kwargs)
    assert err.value.param == param and str(err.value).startswith(param)


def test_completion_prompt_validation(engine):
    with pytest.raises(BadRequestError, match="prompt"):
        engine.completions.create(prompt=[1, 2, 10**6])
    with pytest.raises(BadRequestError, match="logprobs"):
        engine.completions.create(prompt="x", logprobs=9)


def test_jit_compiles_once_then_hits_the_cache(folder, tmp_path):
    from llmc.store import Store

    store = Store(tmp_path / "jit-store")
    first = MLCEngine(folder, store=store)
    runs = sum(1 for _ in store.iter_actions())
    second = MLCEngine(folder, store=store)
    assert sum(1 for _ in store.iter_actions()) == runs
    assert any(name.startswith("jit/") for name in store.list_refs())
    a = first.completions.create(prompt=PROMPT, max_tokens=5, temperature=0).choices[0].text
    assert second.completions.create(prompt=PROMPT, max_tokens=5, temperature=0).choices[0].text == a


def test_failed_jit_raises_the_compilers_message(folder, tmp_path, monkeypatch):
    from llmc.errors import BuildFailed
    from llmc.graph import isolated
    from llmc.store import Store

    # lower runs TVM in a child process; make that child die the way a crash inside TVM does
    monkeypatch.setenv(isolated.CRASH_ENV, "llmc.stages.lower:lower_here")
    with pytest.raises(BuildFailed, match=r"^lower for cpu \([^)]*\) of llama q0f32 crashed inside TVM"):
        MLCEngine(folder, store=Store(tmp_path / "s"))


def test_requests_are_sized_to_the_kv_cache_before_prefill(folder):
    """n long choices on a small cache are capped to what fits, and a prompt the cache cannot hold is a
    BadRequestError naming the cache, never TVM's "The KV cache is full" mid-request."""
    small = MLCEngine(folder, model_lib=folder / "lib.so", max_total_sequence_length=160)
    reply = small.completions.create(prompt=list(range(10, 20)), n=4, max_tokens=100, temperature=1.0, seed=1)
    assert len(reply.choices) == 4 and all(c.finish_reason in ("length", "stop") for c in reply.choices)
    assert reply.usage.completion_tokens <= 4 * ((160 - 4 * (10 + 16)) // 4)
    with pytest.raises(BadRequestError, match=r"do not fit the KV cache \(160 tokens for n=4\)"):
        small.completions.create(prompt=list(range(10, 40)), n=4, max_tokens=5)


def test_the_default_kv_cache_holds_every_sequence_a_full_window(engine):
    from llmc.runtime.engine import kv_cache_tokens

    assert engine.max_total == engine.max_sequences * engine.context_window
    meta = {"kv_cache": {"num_hidden_layers": 80, "num_key_value_heads": 8, "head_dim": 128}}
    capped = kv_cache_tokens(meta, 131072, 4)  # a 70B-shape model with a 128k window: memory decides
    assert 4096 <= capped < 4 * 131072 and capped % 16 == 0


def test_a_corrupt_weight_shard_is_refused_on_load(folder, tmp_path):
    import shutil

    from llmc.runtime.weights import WeightsError

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shard = copy / "params_shard_0.bin"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="params_shard_0.bin is corrupt: its md5"):
        MLCEngine(copy, model_lib=copy / "lib.so")


@pytest.fixture(scope="module")
def padded(models_dir, session_store, tmp_path_factory):
    """A llama whose 320 vocabulary rows outnumber its tokenizer's 300 tokens (as Qwen2 and Phi-3 pad)."""
    from tiny_models import make_llama, make_tokenizer

    model = make_llama(models_dir / "padded-llama", vocab=320)
    make_tokenizer(model, 300)
    return build(model, "q0f32", tmp_path_factory.mktemp("padded") / "padded-MLC", session_store)


def test_padded_vocabulary_rows_are_never_sampled(padded):
    import json

    import numpy as np

    from compiled import library, run_teacher_forced

    # MLC's gen_config: active_vocab_size is len(tokenizer); its compile masks the logits past it
    assert json.loads((padded / "mlc-chat-config.json").read_text())["active_vocab_size"] == 300
    lib = library(padded)
    assert lib.metadata["active_vocab_size"] == 300
    for logits in run_teacher_forced(lib, [5, 6, 7], [8, 9]):
        assert (logits[300:] < -1e30).all() and np.isfinite(logits[:300]).all()
    engine = MLCEngine(padded, model_lib=padded / "lib.so")
    reply = engine.completions.create(prompt=[5, 6, 7], max_tokens=40, temperature=2.0, seed=3, n=4)
    ids = [t for c in reply.choices for t in engine.tokenizer.encode(c.text)]
    assert ids and max(ids) < 300


def _concurrently(calls):
    """Run each call on its own thread (all started together); their results in order."""
    import threading

    results, start = [None] * len(calls), threading.Barrier(len(calls))

    def run(i, call):
        start.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results


def test_a_request_alone_and_inside_a_batch_of_eight_others_gives_the_same_tokens(folder):
    """The scheduler decodes the running sequences of all requests together: greedy output must not
    depend on what else is in the batch (prompts of other lengths, sampled neighbours, more than one
    step of prefill chunks)."""
    wide = MLCEngine(folder, model_lib=folder / "lib.so", max_num_sequence=9)

    def ask(prompt, **kw):
        return lambda: wide.completions.create(prompt=prompt, max_tokens=12, **kw)

    alone = ask(PROMPT, temperature=0)().choices[0].text
    others = [ask(list(range(3 + i, 40 + 9 * i)), temperature=1.0, seed=i) for i in range(8)]
    replies = _concurrently([ask(PROMPT, temperature=0), *others])
    assert replies[0].choices[0].text == alone
    assert wide.stats["decode_tokens"] > 0 and wide.scheduler.idle() and wide.scheduler.free_sequences() == 9


def test_requests_beyond_the_free_sequences_wait_instead_of_failing(folder):
    small = MLCEngine(folder, model_lib=folder / "lib.so", max_num_sequence=2)
    replies = _concurrently([lambda i=i: small.completions.create(prompt=PROMPT[: 4 + i], max_tokens=6, n=2,
                                                                  temperature=1.0, seed=i) for i in range(4)])
    assert all(len(r.choices) == 2 and r.usage.completion_tokens > 0 for r in replies)
    assert small.scheduler.idle() and small.scheduler.free_sequences() == 2


def _greedy_ids(engine, prompt, steps):
    """Greedy tokens with their top-5 logprobs (a prefix computed wrongly shows in the logprobs long before
    it changes a token of a random model)."""
    req = engine.request(prompt, n=1, max_tokens=steps, stop=None, seed=None, logprobs=5,
                         params=engine.sampling(0, None, None, None, None), prompt_param="prompt")
    return [(ev.token, ev.top) for ev in engine.generate(req) if ev.token is not None]


def test_the_next_turn_prefills_only_its_new_tokens_and_answers_the_same(folder):
    """Prefix reuse: turn 2 of a conversation forks turn 1's cached sequence (prompt + reply) and
    prefills only what is new; its greedy reply is the one a cold engine gives."""
    warm = MLCEngine(folder, model_lib=folder / "lib.so")
    cold = MLCEngine(folder, model_lib=folder / "lib.so")
    cold.scheduler.reuse = False
    turn1 = list(range(20, 80))
    reply = _greedy_ids(warm, turn1, 8)
    turn2 = turn1 + [t for t, _ in reply] + [7, 8, 9, 10, 11]
    before = warm.stats["prefill_tokens"]
    got, fresh = _greedy_ids(warm, turn2, 8), _greedy_ids(cold, turn2, 8)
    assert [t for t, _ in got] == [t for t, _ in fresh]
    assert max(abs(a[1] - b[1]) for (_, x), (_, y) in zip(got, fresh) for a, b in zip(x, y)) < 1e-4
    assert warm.stats["prefill_tokens"] - before == 6  # the reply's last token (never decoded) and the new five
    assert cold.stats["prefill_tokens"] == len(turn2)


def test_async_engine_serves_concurrent_asyncio_callers(folder):
    import asyncio

    from llmc import AsyncMLCEngine

    engine = AsyncMLCEngine(folder, model_lib=folder / "lib.so")

    async def main():
        whole = await engine.completions.create(prompt=PROMPT, max_tokens=6, temperature=0)
        stream = await engine.completions.create(prompt=PROMPT, max_tokens=6, temperature=0, stream=True)
        streamed = "".join([c.choices[0].text async for c in stream])
        chats = await asyncio.gather(*[engine.chat.completions.create(
            messages=[{"role": "user", "content": f"Hi {i}"}], max_tokens=4, seed=i) for i in range(5)])
        return whole, streamed, chats

    whole, streamed, chats = asyncio.run(main())
    assert streamed == whole.choices[0].text and len(chats) == 5
    assert all(c.usage.completion_tokens > 0 for c in chats)


def test_a_long_prompt_is_prefilled_a_chunk_per_step_between_decodes(tiny_llama, session_store, tmp_path_factory):
    """A 64-token prompt with prefill chunks of 8 takes eight scheduler steps, and the stream already
    running decodes in each of them: a long prompt never stalls others for more than one chunk."""
    import threading
    import time

    folder = build(tiny_llama, "q0f32", tmp_path_factory.mktemp("chunked") / "tiny-MLC", session_store,
                   prefill_chunk_size=8)
    engine = MLCEngine(folder, model_lib=folder / "lib.so")
    calls, prefill, decode = [], engine.lib.prefill, engine.lib.decode
    engine.lib.prefill = lambda kv, seq, tokens: calls.append(("prefill", seq)) or prefill(kv, seq, tokens)
    # a slowed decode keeps the first stream running while the long prompt arrives, however busy the machine
    engine.lib.decode = lambda kv, seqs, tokens: calls.append(("decode", tuple(seqs))) or time.sleep(0.05) or \
        decode(kv, seqs, tokens)
    running = engine.completions.create(prompt=PROMPT[:4], max_tokens=40, temperature=0, stream=True)
    next(running)
    long = threading.Thread(target=lambda: engine.completions.create(prompt=list(range(10, 74)), max_tokens=2))
    long.start()
    for _ in running:
        pass
    long.join(timeout=60)
    first = next(c for c in calls if c[0] == "prefill")[1]
    chunks = [i for i, c in enumerate(calls) if c[0] == "prefill" and c[1] != first]
    assert len(chunks) == 8
    assert all(any(c[0] == "decode" for c in calls[a + 1:b]) for a, b in zip(chunks, chunks[1:]))


def test_one_requests_failure_fails_that_request_only(folder):
    """An error in one request's own work (its sampling here) reaches that request's caller; the request
    decoding beside it finishes with the tokens it gives alone, and every slot is free afterwards."""
    engine = MLCEngine(folder, model_lib=folder / "lib.so")
    import time

    alone = engine.completions.create(prompt=PROMPT, max_tokens=20, temperature=0).choices[0].text
    step, decode = engine._step, engine.lib.decode
    # a slowed decode keeps the good request running while the doomed one fails, however busy the machine
    engine.lib.decode = lambda kv, seqs, tokens: time.sleep(0.02) or decode(kv, seqs, tokens)

    good_steps = []

    def failing(choice, req):  # the doomed request fails once the good one is decoding beside it
        if req.prompt[:1] == [6] and good_steps:
            raise RuntimeError("this request's sampler broke")
        if req.prompt == PROMPT:
            good_steps.append(1)
        return step(choice, req)

    engine._step = failing

    def doomed():
        try:
            engine.completions.create(prompt=[6, 7, 8], max_tokens=10)
        except RuntimeError as exc:
            return str(exc)

    replies = _concurrently([lambda: engine.completions.create(prompt=PROMPT, max_tokens=20, temperature=0),
                             doomed])
    assert replies[0].choices[0].text == alone and replies[1] == "this request's sampler broke"
    assert engine.scheduler.idle() and engine.scheduler.free_sequences() == 4  # the default max_num_sequence
