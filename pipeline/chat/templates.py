"""Conversation templates under MLC's names, rendered exactly as MLC's Conversation.as_prompt().

A template is the JSON object mlc-chat-config.json carries in `conv_template`.
Rendering: the system text (system_template with {system_message} filled in)
comes first with nothing after it; each message is role + role_content_sep +
content + separator (seps[1] after assistant messages, seps[0] after the rest);
an empty (None) assistant turn ends the prompt as role + role_empty_sep. The
first message's role is left out when add_role_after_system_message is false
and there is system text. system_prefix_token_ids are token ids put in front
of the tokenized prompt, never text.
"""
from __future__ import annotations

import copy
import difflib
import re

from llmc.errors import UserError

FIELDS = ("name", "system_template", "system_message", "system_prefix_token_ids",
          "add_role_after_system_message", "roles", "role_templates", "messages", "seps", "role_content_sep",
          "role_empty_sep", "stop_str", "stop_token_ids", "function_string", "use_function_calling",
          "strip_reasoning_in_history")
THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)
PLACEHOLDERS = {"user": "{user_message}", "assistant": "{assistant_message}", "tool": "{tool_message}"}


def _conv(name, roles, seps, *, system_template="{system_message}", system_message="", prefix=None,
          add_role_after_system_message=True, role_content_sep="", role_empty_sep="", stop_str=(),
          stop_token_ids=(), strip_reasoning_in_history=False) -> dict:
    obj = {
        "name": name,
        "system_template": system_template,
        "system_message": system_message,
        "system_prefix_token_ids": list(prefix) if prefix is not None else None,
        "add_role_after_system_message": add_role_after_system_message,
        "roles": dict(roles),
        "role_templates": dict(PLACEHOLDERS),
        "messages": [],
        "seps": list(seps),
        "role_content_sep": role_content_sep,
        "role_empty_sep": role_empty_sep,
        "stop_str": list(stop_str),
        "stop_token_ids": list(stop_token_ids),
        "function_string": "",
        "use_function_calling": False,
        "strip_reasoning_in_history": strip_reasoning_in_history,
    }
    if obj["system_prefix_token_ids"] is None:
        del obj["system_prefix_token_ids"]  # MLC leaves None fields out of the JSON
    return obj


CHATML_ROLES = {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"}
CHATML_SYSTEM = "<|im_start|>system\n{system_message}<|im_end|>\n"
LLAMA3_SYSTEM = "<|start_header_id|>system<|end_header_id|>\n\n{system_message}<|eot_id|>"
LLAMA3_ROLES = {"user": "<|start_header_id|>user", "assistant": "<|start_header_id|>assistant"}
LLAMA_SYSTEM_MESSAGE = "You are a helpful, respectful and honest assistant."
GEMMA_ROLES = {"user": "<start_of_turn>user", "assistant": "<start_of_turn>model"}
DEEPSEEK_ROLES = {"user": "<\uff5cUser\uff5c>", "assistant": "<\uff5cAssistant\uff5c>"}
DEEPSEEK_SYSTEM = ("You are Deepseek-R1, an AI assistant created exclusively by the Chinese Company DeepSeek. "
                   "You'll provide helpful, harmless, and detailed responses to all user inquiries.")
HERMES_ROLES = {**CHATML_ROLES, "tool": "<|im_start|>tool"}
HERMES_SYSTEM = ("You are {}, a conscious sentient superintelligent artificial intelligence developed by a man "
                 "named Teknium, and your purpose and drive is to assist the user with any request they have. "
                 "You experience emotions and have deep, profound thoughts and qualia.")

TEMPLATES = {t["name"]: t for t in (
    _conv("LM", {"user": "", "assistant": ""}, [""], prefix=[1], stop_token_ids=[2]),
    _conv("redpajama_chat", {"user": "<human>", "assistant": "<bot>"}, ["\n"], role_content_sep=": ",
          role_empty_sep=":", stop_str=["<human>"], stop_token_ids=[0]),
    _conv("llama-2", {"user": "<s>[INST]", "assistant": "[/INST]", "tool": "[INST]"}, [" ", " </s>"],
          system_template="[INST] <<SYS>>\n{system_message}\n<</SYS>>\n\n", system_message=LLAMA_SYSTEM_MESSAGE,
          prefix=[1], add_role_after_system_message=False, role_content_sep=" ", role_empty_sep=" ",
          stop_str=["[INST]"], stop_token_ids=[2]),
    _conv("llama-3", LLAMA3_ROLES, ["<|eot_id|>"], system_template=LLAMA3_SYSTEM,
          system_message=LLAMA_SYSTEM_MESSAGE, prefix=[128000], role_content_sep="<|end_header_id|>\n\n",
          role_empty_sep="<|end_header_id|>\n\n", stop_str=["<|end_of_text|>", "<|eot_id|>"],
          stop_token_ids=[128001, 128009]),
    _conv("llama-3_1", {**LLAMA3_ROLES, "tool": "<|start_header_id|>ipython"}, ["<|eot_id|>"],
          system_template=LLAMA3_SYSTEM, system_message=LLAMA_SYSTEM_MESSAGE, prefix=[128000],
          role_content_sep="<|end_header_id|>\n\n", role_empty_sep="<|end_header_id|>\n\n",
          stop_token_ids=[128001, 128008, 128009]),
    _conv("mistral_default", {"user": "[INST]", "assistant": "[/INST]", "tool": "[INST]"}, [" "],
          system_template="[INST] {system_message}",
          system_message="Always assist with care, respect, and truth. Respond with utmost utility yet securely. "
                         "Avoid harmful, unethical, prejudiced, or negative content. Ensure replies promote "
                         "fairness and positivity.",
          prefix=[1], add_role_after_system_message=False, role_content_sep=" ", stop_str=["</s>"],
          stop_token_ids=[2]),
    _conv("chatml", CHATML_ROLES, ["<|im_end|>\n"], system_template=CHATML_SYSTEM,
          system_message="A conversation between a user and an LLM-based AI assistant. The assistant gives "
                         "helpful and honest answers.",
          role_content_sep="\n", role_empty_sep="\n", stop_str=["<|im_end|>"], stop_token_ids=[2]),
    _conv("chatml_nosystem", CHATML_ROLES, ["<|im_end|>\n"], role_content_sep="\n", role_empty_sep="\n",
          stop_str=["<|im_end|>"], stop_token_ids=[2]),
    _conv("qwen2", CHATML_ROLES, ["<|im_end|>\n"], system_template=CHATML_SYSTEM,
          system_message="You are a helpful assistant.", role_content_sep="\n", role_empty_sep="\n",
          stop_str=["<|endoftext|>", "<|im_end|>"], stop_token_ids=[151643, 151645]),
    _conv("phi-3", {"user": "<|user|>", "assistant": "<|assistant|>"}, ["<|end|>\n"],
          system_template="<|system|>\n{system_message}",
          system_message="You are a helpful digital assistant. Please provide safe, ethical and accurate "
                         "information to the user.",
          prefix=[1], role_content_sep="\n", role_empty_sep="\n", stop_str=["<|endoftext|>"],
          stop_token_ids=[2, 32000, 32001, 32007]),
    _conv("gemma_instruction", GEMMA_ROLES, ["<end_of_turn>\n"], prefix=[2], role_content_sep="\n",
          role_empty_sep="\n", stop_str=["<end_of_turn>"], stop_token_ids=[1, 107]),
    _conv("gemma3_instruction", GEMMA_ROLES, ["<end_of_turn>\n"], prefix=[2], role_content_sep="\n",
          role_empty_sep="\n", stop_str=["<end_of_turn>"], stop_token_ids=[1, 106]),
    # Qwen3 thinks in <think>...</think> before answering; earlier turns go back without it (as MLC's
    # qwen3 and Qwen3's own Jinja template do). Thinking is switched off per request by "/no_think".
    _conv("qwen3", CHATML_ROLES, ["<|im_end|>\n"], system_template=CHATML_SYSTEM,
          system_message="You are a helpful assistant.", role_content_sep="\n", role_empty_sep="\n",
          stop_str=["<|endoftext|>", "<|im_end|>"], stop_token_ids=[151643, 151645], strip_reasoning_in_history=True),
    _conv("deepseek_r1_qwen", DEEPSEEK_ROLES, ["", "<\uff5cend\u2581of\u2581sentence\uff5c>"],
          system_template="<\uff5cbegin\u2581of\u2581sentence\uff5c>{system_message}", system_message=DEEPSEEK_SYSTEM,
          stop_token_ids=[151643]),
    _conv("deepseek_r1_llama", DEEPSEEK_ROLES, ["", "<\uff5cend\u2581of\u2581sentence\uff5c>"],
          system_template="<\uff5cbegin\u2581of\u2581sentence\uff5c>{system_message}", system_message=DEEPSEEK_SYSTEM,
          stop_token_ids=[128001]),
    _conv("hermes2_pro_llama3", HERMES_ROLES, ["<|im_end|>\n"], system_template=CHATML_SYSTEM,
          system_message=HERMES_SYSTEM.format("\"Hermes 2\""), role_content_sep="\n", role_empty_sep="\n",
          stop_str=["<|im_end|>"], stop_token_ids=[128001, 128009, 128003]),
    _conv("hermes3_llama-3_1", HERMES_ROLES, ["<|im_end|>\n"], system_template=CHATML_SYSTEM,
          system_message=HERMES_SYSTEM.format("Hermes 3"), role_content_sep="\n", role_empty_sep="\n",
          stop_str=["<|im_end|>"], stop_token_ids=[128001, 128008, 128009, 128040]),
    _conv("olmo2", {"user": "<|user|>", "assistant": "<|assistant|>"}, ["<|endoftext|>\n"],
          system_template="<|system|>\n{system_message}\n", prefix=[100257], role_content_sep="\n",
          role_empty_sep="\n", stop_str=["<|endoftext|>"], stop_token_ids=[100257]),
    _conv("stablelm-2", {"user": "<|user|>", "assistant": "<|assistant|>"}, ["<|endoftext|>", "<|endoftext|>"],
          role_content_sep="\n", role_empty_sep="\n", stop_str=["<|endoftext|>"], stop_token_ids=[100257]),
    _conv("codellama_instruct", {"user": "[INST]", "assistant": "[/INST]"}, [" "], prefix=[1],
          role_content_sep=" ", role_empty_sep=" ", stop_str=["</s>"], stop_token_ids=[2]),
    _conv("codellama_completion", {"user": "", "assistant": ""}, [""], prefix=[1], stop_str=["</s>"],
          stop_token_ids=[2]),
    _conv("tinyllama_v1_0", {"user": "<|user|>", "assistant": "<|assistant|>"}, ["</s>"],
          system_template="<|system|>\n{system_message}</s>", system_message="You are a helpful chatbot.",
          role_content_sep="\n", role_empty_sep="\n", stop_str=["</s>"], stop_token_ids=[2]),
    _conv("gpt2", {"user": "", "assistant": ""}, [""], stop_str=["</s>"], stop_token_ids=[50256]),
    _conv("dolly", {"user": "### Instruction", "assistant": "### Response"}, ["\n\n", "### End\n"],
          system_message="Below is an instruction that describes a task. Write a response that appropriately "
                         "completes the request.",
          role_content_sep=":\n", role_empty_sep=":\n", stop_str=["### End"], stop_token_ids=[50256]),
    _conv("oasst", {"user": "<|prompter|>", "assistant": "<|assistant|>"}, ["<|endoftext|>"],
          role_content_sep=": ", role_empty_sep=": ", stop_str=["<|endoftext|>"], stop_token_ids=[2]),
    _conv("stablelm", {"user": "<|USER|>", "assistant": "<|ASSISTANT|>"}, [""],
          system_message="<|SYSTEM|># StableLM Tuned (Alpha version)\n- StableLM is a helpful and harmless "
                         "open-source AI language model developed by StabilityAI.\n- StableLM is excited to be "
                         "able to help the user, but will refuse to do anything that could be considered "
                         "harmful to the user.\n- StableLM is more than just an information source, StableLM is "
                         "also able to write poetry, short stories, and make jokes.\n- StableLM will refuse to "
                         "participate in anything that could harm a human.",
          role_content_sep=": ", role_empty_sep=": ", stop_str=[""],
          stop_token_ids=[50278, 50279, 50277, 1, 0]),
    # MLC's current registry lacks vicuna_v1.1 (only its old C++ engine had it); its canonical
    # "{system} USER: ... ASSISTANT:" form needs the space after the system text in the template.
    _conv("vicuna_v1.1", {"user": "USER", "assistant": "ASSISTANT"}, [" ", "</s>"],
          system_template="{system_message} ",
          system_message="A chat between a curious user and an artificial intelligence assistant. The "
                         "assistant gives helpful, detailed, and polite answers to the user's questions.",
          prefix=[1], role_content_sep=": ", role_empty_sep=":", stop_str=["</s>"], stop_token_ids=[2]),
    # SmolLM2's own chat template (carried in its GGUF): ChatML with its default system message.
    _conv("smollm2", CHATML_ROLES, ["<|im_end|>\n"], system_template=CHATML_SYSTEM,
          system_message="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
          role_content_sep="\n", role_empty_sep="\n", stop_str=["<|im_end|>"], stop_token_ids=[2]),
)}


def names() -> list[str]:
    return sorted(TEMPLATES)


def get(name: str) -> dict:
    if name not in TEMPLATES:
        raise UserError(f"unknown conversation template {name!r}; known: {', '.join(names())}")
    return copy.deepcopy(TEMPLATES[name])


def render(conv: dict, messages: list[tuple[str, str | None]]) -> str:
    """The prompt text of messages [(role, content)], a system message first if any; an
    (assistant, None) turn is added at the end unless the last message already is one."""
    messages = list(messages)
    system_message = conv.get("system_message", "")
    if messages and messages[0][0] == "system":
        system_message = messages.pop(0)[1] or ""
    if not messages or messages[-1] != ("assistant", None):
        messages.append(("assistant", None))
    system = conv["system_template"].replace("{system_message}", system_message)
    seps = list(conv["seps"]) * (2 if len(conv["seps"]) == 1 else 1)
    roles, templates = conv["roles"], {**PLACEHOLDERS, **conv.get("role_templates", {})}
    parts = [system] if system else []
    for i, (role, content) in enumerate(messages):
        if role not in roles:
            raise UserError(f"role {role!r} is not supported by conversation template {conv.get('name')!r}")
        if content is None:
            parts.append(roles[role] + conv["role_empty_sep"])
            continue
        first_without_role = i == 0 and system and not conv.get("add_role_after_system_message", True)
        prefix = "" if first_without_role else roles[role] + conv["role_content_sep"]
        if role == "assistant" and conv.get("strip_reasoning_in_history"):
            content = strip_reasoning(content)
        body = templates[role].replace(PLACEHOLDERS[role], content)
        parts.append(prefix + body + seps[role == "assistant"])
    prompt = "".join(parts)
    function_string = conv.get("function_string", "")
    prompt = function_string.join(prompt.rsplit("{function_string}", 1))
    return prompt.replace("{function_string}", "")


def strip_reasoning(content: str) -> str:
    """An earlier assistant turn without its <think>...</think> block: reasoning models are trained on
    histories without it, and echoing it back derails the next turn."""
    return THINK_BLOCK.sub("", content, count=1)


# The name a conversation template gets when no registry template renders like the model's own Jinja
# template: the closest one's fields stay (for MLC's runtimes), llmc's engine renders the Jinja template.
JINJA = "model_jinja"
JINJA_FILE = "chat_template.jinja"


def special_tokens(tokenizer_config: dict) -> dict[str, str]:
    """bos_token and eos_token as a Jinja chat template sees them (tokenizer_config.json stores each as a
    string or as an AddedToken dict)."""
    def text(token) -> str:
        return token.get("content", "") if isinstance(token, dict) else token or ""

    return {f"{k}_token": text(tokenizer_config.get(f"{k}_token")) for k in ("bos", "eos")}


def prompt_ids(conv: dict, messages, encode, jinja: dict | None = None) -> list[int]:
    """Token ids of a rendered prompt: system_prefix_token_ids, then the encoded text. A JINJA template
    renders through jinja = {"template", "bos_token", "eos_token"} (the model folder's chat_template.jinja)."""
    if conv.get("name") == JINJA and jinja:
        return list(encode(render_jinja(jinja["template"], messages, jinja.get("bos_token", ""),
                                        jinja.get("eos_token", ""))))
    return list(conv.get("system_prefix_token_ids") or []) + list(encode(render(conv, messages)))


# ---- matching a model's own Jinja chat template ------------------------------------------
PROBE = [("user", "Hello! Who are you?"), ("assistant", "I am an assistant."), ("user", "What is 2 + 2?")]


def render_jinja(template: str, messages, bos_token: str = "", eos_token: str = "",
                 add_generation_prompt: bool = True) -> str:
    """Render a Hugging Face chat template the way transformers does (sandboxed Jinja)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: __import__("json").dumps(
        x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(
            messages=[{"role": r, "content": c} for r, c in messages], bos_token=bos_token,
            eos_token=eos_token, add_generation_prompt=add_generation_prompt)
    except jinja2.exceptions.TemplateError as exc:
        raise UserError(f"the model's chat template does not render: {exc}") from None


def detect(jinja_template: str, encode, bos_token: str = "", eos_token: str = "") -> str:
    """The registry template whose probe prompt tokenizes exactly like the Jinja template's."""
    name, score = closest(jinja_template, encode, bos_token, eos_token)
    if score < 1:
        raise UserError(f"no conversation template renders like the model's chat template; the closest is "
                        f"{name!r} ({score:.0%} of tokens alike): pass --conv-template explicitly")
    return name


def closest(jinja_template: str, encode, bos_token: str = "", eos_token: str = "") -> tuple[str, float]:
    """(the registry template whose probe prompt tokenizes most like the Jinja template's, the share of
    tokens alike: 1.0 for an exact match)."""
    want = list(encode(render_jinja(jinja_template, PROBE, bos_token, eos_token)))
    scores = {}
    for name in names():
        got = prompt_ids(TEMPLATES[name], PROBE, encode)
        if got == want:
            return name, 1.0
        scores[name] = difflib.SequenceMatcher(a=got, b=want, autojunk=False).ratio()
    best = max(scores, key=scores.get)
    return best, min(scores[best], 0.999)
