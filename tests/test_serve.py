"""`llmc serve` (runtime/server.py): the OpenAI-compatible API over a tiny llama, its errors and metrics."""
import collections
import contextlib
import json
import threading
import time

import pytest

from compiled import build
from llmc.runtime import MLCEngine

PROMPT = "Hello there"
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def engine(tiny_llama, session_store, tmp_path_factory):
    folder = build(tiny_llama, "q0f32", tmp_path_factory.mktemp("serve") / "tiny-MLC", session_store)
    return MLCEngine(folder, model_lib=folder / "lib.so")


@pytest.fixture(scope="module")
def client(engine):
    from fastapi.testclient import TestClient

    from llmc.runtime.server import create_app

    return TestClient(create_app(engine))


def sse(response) -> list:
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[len("data: "):]) for line in lines[:-1]]


def test_chat_completion_is_the_engines(client, engine):
    r = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 8, "temperature": 0})
    assert r.status_code == 200
    body = r.json()
    direct = engine.chat.completions.create(messages=MESSAGES, max_tokens=8, temperature=0)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == \
        direct.choices[0].message.content
    assert body["usage"]["completion_tokens"] == direct.usage.completion_tokens


def test_streams_are_server_sent_events_with_usage_last(client):
    whole = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 8, "temperature": 0}).json()
    r = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 8, "temperature": 0, "stream": True,
                                             "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = sse(r)
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1] if c["choices"]) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    chat = sse(client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 4, "stream": True}))
    assert chat[0]["choices"][0]["delta"]["role"] == "assistant" and chat[-1]["choices"][0]["finish_reason"]


def test_models_health_and_metrics(client, engine):
    assert client.get("/v1/models").json()["data"][0]["id"] == engine.model
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 3, "stream": True})
    text = client.get("/metrics").text
    for name in ("llmc_queue_depth", "llmc_running_sequences", "llmc_kv_pages_used", "llmc_prompt_tokens_total",
                 "llmc_generated_tokens_total", "llmc_time_to_first_token_seconds_count",
                 "llmc_inter_token_latency_seconds_bucket"):
        assert name in text, name
    count = next(line for line in text.splitlines() if line.startswith("llmc_time_to_first_token_seconds_count"))
    assert float(count.split()[-1]) >= 1


@pytest.mark.parametrize("path,body,status,param,words", [
    ("/v1/chat/completions", {"messages": MESSAGES, "temperature": 5}, 400, "temperature", "must be in [0, 2]"),
    ("/v1/chat/completions", {"messages": MESSAGES, "tools": []}, 400, "tools", "is not supported"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages", "non-empty"),
    ("/v1/chat/completions", {"temperature": 0}, 422, "messages", "Field required"),
    ("/v1/chat/completions", {"messages": None, "max_tokens": 4}, 422, "messages", ""),  # schemathesis found a 500
    ("/v1/completions", {"prompt": None}, 422, "prompt", ""),
    ("/v1/chat/completions", {"messages": MESSAGES, "stream": "yes"}, 422, "stream", ""),
    ("/v1/completions", {"prompt": "x " * 5000}, 400, "prompt", "do not fit the context window"),
    ("/v1/completions", {"prompt": PROMPT, "stream_options": {"include_usage": True}}, 400, "stream_options", ""),
    ("/v1/completions", {"prompt": PROMPT, "model": "gpt-4"}, 404, "model", "is not served here"),
])
def test_bad_requests_are_openai_shaped_4xx(client, path, body, status, param, words):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param and words in error["message"]


def test_malformed_json_and_unknown_paths_are_4xx_json(client):
    r = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_api_key_is_required_when_set(engine):
    from fastapi.testclient import TestClient

    from llmc.runtime.server import create_app

    guarded = TestClient(create_app(engine, api_key="s3cret"))
    r = guarded.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert guarded.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2},
                        headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.get("/health").status_code == 200  # health checks need no key


@contextlib.contextmanager
def serving(engine, **options):
    """uvicorn serving the engine on 127.0.0.1, a free port; stopped on exit."""
    import uvicorn

    from llmc.runtime.server import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(engine, **options), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture
def server_port(engine):
    with serving(engine) as port:
        yield port


def test_a_real_server_on_127_0_0_1_serves_concurrent_clients(server_port):
    """Eight clients at once, bounded in count and time."""
    import httpx

    port = server_port
    results = [None] * 8

    def ask(i):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            results[i] = c.post("/v1/completions", json={"prompt": f"{PROMPT} {i}", "max_tokens": 6, "seed": i})

    clients = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(timeout=60)
    assert all(r is not None and r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0 for r in results)


def test_serve_refuses_bad_input_in_one_line(tmp_path, capsys):
    from llmc import cli

    for args, words in ((["serve", str(tmp_path)], "has no mlc-chat-config.json"),):
        assert cli.run(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err


def test_a_full_queue_is_429_and_a_huge_body_413(engine):
    from fastapi.testclient import TestClient

    from llmc.runtime.server import MAX_BODY, create_app

    busy = TestClient(create_app(engine, max_waiting=0))
    r = busy.post("/v1/completions", json={"prompt": PROMPT})
    assert r.status_code == 429 and r.json()["error"]["code"] == "server_busy"
    r = busy.post("/v1/completions", content=b"x" * (MAX_BODY + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"


def test_503_while_the_model_loads_and_once_shutdown_begins(engine):
    """With a loader the port answers at once: 503 (OpenAI-shaped) until the model is up, then 200;
    once shutdown has begun, 503 again."""
    from fastapi.testclient import TestClient

    from llmc.runtime.server import create_app

    release = threading.Event()
    app = create_app(lambda: release.wait(30) and engine)
    with TestClient(app) as client:
        for r in (client.get("/health"), client.post("/v1/completions", json={"prompt": PROMPT})):
            assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable_error"
            assert "loading" in r.json()["error"]["message"]
        release.set()
        assert app.state.serving.loaded.wait(30)
        assert client.get("/health").status_code == 200
        assert client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2}).status_code == 200
    r = client.post("/v1/completions", json={"prompt": PROMPT})  # lifespan over: shutting down
    assert r.status_code == 503 and "shutting down" in r.json()["error"]["message"]


def test_a_model_that_fails_to_load_is_503_with_the_reason_and_stops_llmc_serve(tmp_path, capsys, engine):
    from fastapi.testclient import TestClient

    from llmc import cli
    from llmc.runtime.server import create_app

    def broken():
        raise RuntimeError("weights are missing")

    failures = []
    app = create_app(broken, on_load_failure=failures.append)
    with TestClient(app) as client:
        assert app.state.serving.loaded.wait(30)
        r = client.get("/health")
        assert r.status_code == 503 and "weights are missing" in r.json()["error"]["message"]
    assert [str(f) for f in failures] == ["weights are missing"]
    # the command: the server starts, the load fails, llmc serve exits 2 with one line
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"not a shared library")
    assert cli.run(["serve", str(engine.model_dir), "--model-lib", str(lib), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_schemathesis_finds_no_5xx_and_only_openai_shaped_errors(engine):
    """Requests generated from the server's own OpenAPI schema, valid and invalid ones, a bounded number
    per endpoint: no response is a 5xx, and every error body is {"error": {"message", "type", "param",
    "code"}}."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    from llmc.runtime.server import create_app

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(engine))
    seen = collections.Counter()

    def check(case):
        if isinstance(case.body, dict) and "max_tokens" not in case.body:
            case.body["max_tokens"] = 4  # a random model may never stop: keep generated texts short
        r = case.call()
        seen[case.path, r.status_code // 100] += 1
        assert r.status_code < 500, (case.path, case.body, r.text)
        if r.status_code >= 400:
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"], r.text

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/completions", "/v1/models"}
    for operation in operations:
        # a GET without parameters has no invalid form to generate
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * (operation.method.upper() == "POST")
        for mode in modes:
            settings(max_examples=12, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))(
                given(case=operation.as_strategy(generation_mode=mode))(check))()
    assert seen["/v1/completions", 4] and seen["/v1/chat/completions", 4]


SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "size": {"enum": ["small", "large"]}},
          "required": ["ok", "size"], "additionalProperties": False}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_schema_output_parses_and_validates(client, seed):
    """A random model writes whatever it likes; the grammar leaves it only JSON that fits the schema."""
    r = client.post("/v1/completions", json={  # (the tiny model's context leaves chat templates little room)
        "prompt": "Hi", "max_tokens": 60, "temperature": 1.0, "seed": seed,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    value = json.loads(choice["text"])
    assert set(value) == {"ok", "size"} and isinstance(value["ok"], bool) and value["size"] in ("small", "large")
    assert choice["finish_reason"] == "stop"


def test_unconstrained_output_of_the_same_model_is_not_json(client):
    r = client.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 60, "temperature": 1.0, "seed": 0})
    with pytest.raises(ValueError):
        json.loads(r.json()["choices"][0]["text"])


def test_json_object_mode_and_bad_formats(client):
    r = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 60, "temperature": 0,
                                             "response_format": {"type": "json_object"}})
    text = r.json()["choices"][0]["text"]
    if r.json()["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # a random model may run out of tokens inside an object: what it wrote is still a JSON prefix
        assert text.startswith("{")
    for bad in ({"type": "xml"}, {"type": "json_schema", "json_schema": {"schema": 3}}, "json"):
        r = client.post("/v1/chat/completions", json={"messages": MESSAGES, "response_format": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"


@pytest.fixture
def browser(tmp_path):
    from browser import Browser, chromium

    binary = chromium()
    assert binary, "the chat page test needs Chromium (Debian: apt-get install chromium; .ci/run installs it)"
    b = Browser(binary, str(tmp_path / "profile"))
    yield b
    b.close()


def test_the_chat_page_streams_renders_markdown_and_stops(server_port, browser, engine, tmp_path):
    """The page at GET /, in headless Chromium: a message streams in, Markdown renders (escaped), Stop ends
    a reply early and frees its sequence on the server."""
    browser.call("Page.navigate", url=f"http://127.0.0.1:{server_port}/")
    browser.wait_for(f"document.getElementById('model').textContent === {json.dumps(engine.model)}")
    browser.eval("document.getElementById('temperature').value = '0'; document.getElementById('max_tokens').value = '6';"
                 "document.getElementById('input').value = 'Hi'; document.getElementById('form').requestSubmit(); 1")
    browser.wait_for("document.querySelector('.assistant') && document.querySelector('.assistant').dataset.state === 'done'")
    shown = browser.eval("document.querySelector('.assistant').textContent")
    direct = engine.chat.completions.create(messages=MESSAGES, max_tokens=6, temperature=0, top_p=0.95)
    assert shown.strip() and browser.eval("document.querySelector('.user').textContent") == "Hi"
    assert shown.split()[0] in direct.choices[0].message.content or not direct.choices[0].message.content.strip()
    import base64

    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    (tmp_path / "chat-page.png").write_bytes(base64.b64decode(shot))
    assert (tmp_path / "chat-page.png").read_bytes()[:4] == b"\x89PNG"
    html = browser.eval("window.llmcRenderMarkdown('**b** and `c`\\n- one\\n```\\nx<y\\n```')")
    assert "<strong>b</strong>" in html and "<code>c</code>" in html and "<li>one</li>" in html and "x&lt;y" in html
    decode = engine.lib.decode  # a slow model for this reply, so Stop lands while it streams

    def slow(*args):
        time.sleep(0.1)
        return decode(*args)

    engine.lib.decode = slow
    browser.eval("document.getElementById('reset').click(); document.getElementById('max_tokens').value = '100';"
                 "document.getElementById('input').value = 'More'; document.getElementById('form').requestSubmit(); 1")
    browser.wait_for("document.querySelector('.assistant') && document.querySelector('.assistant').textContent.length > 0"
                     " || document.getElementById('error').textContent")
    assert browser.eval("document.getElementById('error').textContent") == ""
    browser.eval("document.getElementById('stop').click(); 1")
    try:
        assert browser.wait_for("document.querySelector('.assistant').dataset.state !== 'streaming' && "
                                "document.querySelector('.assistant').dataset.state") == "stopped"
    finally:
        engine.lib.decode = decode
    assert engine.scheduler.idle(timeout=30)


def test_the_official_openai_client_against_a_running_server(server_port, engine):
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server_port}/v1", api_key="unused", max_retries=0)
    chat = client.chat.completions.create(model=engine.model, messages=MESSAGES, max_tokens=6, temperature=0)
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens > 0
    text = client.completions.create(model=engine.model, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=2)
    assert len(text.choices[0].logprobs.token_logprobs) == text.usage.completion_tokens
    pieces = [c for c in client.chat.completions.create(model=engine.model, messages=MESSAGES, max_tokens=5,
                                                         temperature=0, stream=True,
                                                         stream_options={"include_usage": True})]
    assert pieces[-1].usage.completion_tokens > 0 and "".join(
        p.choices[0].delta.content or "" for p in pieces if p.choices) == client.chat.completions.create(
        model=engine.model, messages=MESSAGES, max_tokens=5, temperature=0).choices[0].message.content
    many = client.chat.completions.create(model=engine.model, messages=MESSAGES, max_tokens=6, n=3, temperature=1,
                                          seed=4)
    assert len(many.choices) == 3
    again = client.chat.completions.create(model=engine.model, messages=MESSAGES, max_tokens=6, n=3, temperature=1,
                                           seed=4)
    assert [c.message.content for c in many.choices] == [c.message.content for c in again.choices]
    lp = client.chat.completions.create(model=engine.model, messages=MESSAGES, max_tokens=3, logprobs=True,
                                        top_logprobs=2)
    assert all(len(t.top_logprobs) == 2 for t in lp.choices[0].logprobs.content)
    stopped = client.completions.create(model=engine.model, prompt=PROMPT, max_tokens=30, temperature=0,
                                        stop=[text.choices[0].text[1:3] or "e"])
    assert stopped.choices[0].finish_reason in ("stop", "length")
    structured = client.completions.create(model=engine.model, prompt="Hi", max_tokens=60, seed=1, extra_body={
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}})
    assert set(json.loads(structured.choices[0].text)) == {"ok", "size"}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=engine.model, messages=MESSAGES, temperature=9)


def test_a_wrong_api_key_is_an_authentication_error_for_the_openai_client(engine):
    import openai

    with serving(engine, api_key="right") as port:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.completions.create(model=engine.model, prompt=PROMPT, max_tokens=2)
        ok = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="right", max_retries=0)
        assert ok.completions.create(model=engine.model, prompt=PROMPT, max_tokens=2).usage.completion_tokens


def test_thirty_two_streaming_clients_on_eight_slots_each_get_their_own_output(engine):
    """Every request completes; each seeded stream equals the same request run alone; the ones beyond
    the eight slots wait."""
    import httpx

    wide = MLCEngine(engine.model_dir, model_lib=engine.model_dir / "lib.so", max_num_sequence=8)
    body = [{"prompt": f"{PROMPT} {i}", "max_tokens": 6, "temperature": 1.0, "seed": i, "stream": True}
            for i in range(32)]
    with serving(wide) as port:
        url = f"http://127.0.0.1:{port}/v1/completions"

        def streamed(b):
            with httpx.Client(timeout=120) as c:
                chunks = [json.loads(line[6:]) for line in c.post(url, json=b).text.splitlines()
                          if line.startswith("data: {")]
            return "".join(ch["choices"][0]["text"] for ch in chunks)

        alone = [streamed(b) for b in body[:4]]
        results = [None] * 32

        def run(i):
            results[i] = streamed(body[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert all(r is not None for r in results)
    assert results[:4] == alone
    assert wide.scheduler.idle() and wide.scheduler.free_sequences() == 8


def test_a_client_gone_mid_stream_frees_its_slots_as_metrics_show(server_port, engine):
    """The reply would take 10 s more at this (slowed) decode speed; the slots are free again at once."""
    import httpx

    base = f"http://127.0.0.1:{server_port}"
    decode = engine.lib.decode
    engine.lib.decode = lambda *args: time.sleep(0.1) or decode(*args)

    def running() -> float:
        text = httpx.get(f"{base}/metrics").text
        return float(next(ln for ln in text.splitlines() if ln.startswith("llmc_running_sequences")).split()[-1])

    with httpx.Client(timeout=30) as c:
        with c.stream("POST", f"{base}/v1/completions", json={"prompt": PROMPT, "max_tokens": 100, "stream": True,
                                                                  "n": 2, "temperature": 1.0}) as r:
            next(r.iter_lines())
            assert running() == 2
    try:
        deadline = time.monotonic() + 3
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running() == 0
    finally:
        engine.lib.decode = decode
