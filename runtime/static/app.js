// llmc's chat page: streams /v1/chat/completions, renders replies as Markdown, stops on request.
"use strict";
const $ = (id) => document.getElementById(id);
let history = [];
let controller = null;

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// A small Markdown renderer (no CDN, no build step): fenced code, inline code, bold, italics, headings,
// lists, links, paragraphs. Input is escaped first, so model output never becomes markup of its own.
function renderMarkdown(source) {
  const blocks = [];
  let text = escapeHtml(source).replace(/```(\w*)\n?([\s\S]*?)(```|$)/g, (_, lang, code) => {
    blocks.push(`<pre><code class="lang-${lang}">${code}</code></pre>`);
    return `\u0000${blocks.length - 1}\u0000`;
  });
  const inline = (s) => s
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" rel="noopener">$1</a>');
  const out = [];
  let list = null;
  for (const line of text.split("\n")) {
    const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (item) {
      if (!list) { list = []; }
      list.push(`<li>${inline(item[1])}</li>`);
      continue;
    }
    if (list) { out.push(`<ul>${list.join("")}</ul>`); list = null; }
    if (heading) out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`);
    else if (/^\u0000\d+\u0000$/.test(line.trim())) out.push(line.trim());
    else if (line.trim()) out.push(`<p>${inline(line)}</p>`);
  }
  if (list) out.push(`<ul>${list.join("")}</ul>`);
  return out.join("").replace(/\u0000(\d+)\u0000/g, (_, i) => blocks[Number(i)]);
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  div.innerHTML = role === "assistant" ? renderMarkdown(text) : escapeHtml(text).replace(/\n/g, "<br>");
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function settings() {
  const number = (id) => Number($(id).value);
  return { temperature: number("temperature"), top_p: number("top_p"), max_tokens: number("max_tokens") };
}

async function send(text) {
  $("error").textContent = "";
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const reply = addMessage("assistant", "");
  reply.dataset.state = "streaming";
  const system = $("system").value.trim();
  const messages = system ? [{ role: "system", content: system }, ...history] : history;
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  let content = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, signal: controller.signal,
      body: JSON.stringify({ messages, stream: true, ...settings() }),
    });
    if (!response.ok) {
      const body = await response.json();
      throw new Error(body.error ? body.error.message : response.statusText);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const event of events) {
        const data = event.replace(/^data: /, "");
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        const delta = chunk.choices.length ? chunk.choices[0].delta.content : null;
        if (delta) { content += delta; reply.innerHTML = renderMarkdown(content); }
      }
    }
    reply.dataset.state = "done";
  } catch (err) {
    reply.dataset.state = err.name === "AbortError" ? "stopped" : "failed";
    if (err.name !== "AbortError") $("error").textContent = String(err.message || err);
  } finally {
    history.push({ role: "assistant", content });
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("reset").addEventListener("click", () => { history = []; $("log").innerHTML = ""; });
fetch("/v1/models").then((r) => r.json()).then((m) => { $("model").textContent = m.data[0].id; }).catch(() => {});
window.llmcRenderMarkdown = renderMarkdown;
