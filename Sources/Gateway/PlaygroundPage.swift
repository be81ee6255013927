// The playground: one self-contained HTML document (inline CSS and JavaScript, nothing fetched from anywhere
// but this server's own API), so that it works on a machine with no outside network and under a strict
// Content-Security-Policy (`default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';
// img-src data:; connect-src 'self'`). Tests/Browser/playground_check.py drives it in headless Chromium.

/// The playground page served at GET /: pick or drop an image, ask a question with a visual-token budget, a
/// pruner and the caption on or off, and watch the answer stream in (POST /v1/chat/completions, SSE) beside
/// the image padded to the model's square with its kept patches, the candidate captions with their beam and
/// selector scores, and per-stage time and FLOPs against the unpruned cost.
///
/// Stable hooks for tests: `#image-input`, `#question`, `#budget`, `#pruner`, `#caption-toggle`, `#max-tokens`,
/// `#api-key`, `#submit`, `#answer`, `#status` (`idle`, `sending`, `streaming`, then exactly `done` or
/// `error`), `#patches` (an SVG: one `rect.patch.kept` per kept patch), `#candidates` (one `li` per candidate,
/// `li.chosen` for the chosen one, its text in `.caption-text`), `#error`.
enum PlaygroundPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ACCM playground</title>
<style>
:root {
  --bg: #f3f4f8;
  --card: #ffffff;
  --line: #e1e4ec;
  --line-strong: #cdd2de;
  --text: #1a1f2e;
  --muted: #667088;
  --accent: #4f46e5;
  --accent-dark: #4338ca;
  --accent-soft: #eef0ff;
  --ok: #15803d;
  --ok-soft: #e6f5eb;
  --warn: #b45309;
  --warn-soft: #fcf1df;
  --bad: #b91c1c;
  --bad-soft: #fdecec;
  --kept: #facc15;
  --vision: #6366f1;
  --caption: #0ea5e9;
  --selector: #14b8a6;
  --decoder: #f59e0b;
  --mono: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body {
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif;
  background: var(--bg);
  color: var(--text);
}
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}

/* Header */
header.top {
  display: flex; align-items: center; justify-content: space-between; gap: 16px;
  padding: 14px 28px; background: var(--card); border-bottom: 1px solid var(--line);
}
.brand { display: flex; align-items: center; gap: 12px; min-width: 0; }
.brand svg { flex: none; }
.brand h1 { font-size: 18px; margin: 0; letter-spacing: -0.01em; }
.brand p { margin: 1px 0 0; color: var(--muted); font-size: 13px; }
.server { display: flex; align-items: center; gap: 10px; color: var(--muted); font-size: 13px; white-space: nowrap; }
.server code { font-family: var(--mono); font-size: 12px; color: var(--text); }

.pill {
  display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px;
  font-size: 12px; font-weight: 600; background: #eceef4; color: var(--muted); white-space: nowrap;
}
.pill::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: currentColor; }
.pill.ok { background: var(--ok-soft); color: var(--ok); }
.pill.warn { background: var(--warn-soft); color: var(--warn); }
.pill.bad { background: var(--bad-soft); color: var(--bad); }
.pill.busy { background: var(--accent-soft); color: var(--accent); }
.pill.busy::before { animation: pulse 1s ease-in-out infinite; }
@keyframes pulse { 50% { opacity: 0.25; } }

/* Layout */
main.layout {
  display: grid; grid-template-columns: 340px minmax(0, 1fr); gap: 20px;
  padding: 20px 28px 12px; max-width: 1440px; margin: 0 auto; align-items: start;
}
.results { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 20px; align-items: start; }
.results .wide { grid-column: 1 / -1; }
@media (max-width: 1080px) {
  main.layout { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 760px) {
  .results { grid-template-columns: minmax(0, 1fr); }
  header.top { flex-direction: column; align-items: flex-start; padding: 12px 16px; }
  main.layout { padding: 16px; }
}
.card {
  background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04);
}
.card > h2 {
  display: flex; align-items: center; justify-content: space-between; gap: 8px;
  font-size: 12px; text-transform: uppercase; letter-spacing: 0.07em; color: var(--muted);
  margin: 0 0 14px; font-weight: 650;
}
.card > h2 .aside, .card > h2 .pill { text-transform: none; letter-spacing: 0; }
.card > h2 .aside { font-weight: 500; font-size: 12px; }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }

/* Request form */
form.request { position: sticky; top: 20px; }
.field { margin-bottom: 14px; }
.field > label:not(.drop):not(.switch), .field > .label {
  display: flex; justify-content: space-between; align-items: baseline; gap: 8px;
  font-weight: 600; font-size: 13px; margin-bottom: 6px;
}
.field .hint { font-weight: 400; color: var(--muted); font-size: 12px; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
input[type=text], input[type=password], input[type=number], select {
  width: 100%; font: inherit; color: inherit; background: #fff;
  border: 1px solid var(--line-strong); border-radius: 8px; padding: 8px 10px; outline: none;
}
select { padding-right: 6px; }
input:focus, select:focus { border-color: var(--accent); box-shadow: 0 0 0 3px rgba(79, 70, 229, 0.15); }
select.dim { color: var(--muted); }

.drop {
  display: flex; align-items: center; gap: 14px; padding: 12px; cursor: pointer;
  border: 1.5px dashed var(--line-strong); border-radius: 10px; background: #fafbfd;
  transition: border-color 0.15s, background 0.15s;
}
.drop:hover, .drop.over { border-color: var(--accent); background: var(--accent-soft); }
.drop:focus-within { border-color: var(--accent); }
.thumb {
  flex: none; width: 64px; height: 64px; border-radius: 8px; background: #eceef4;
  display: grid; place-items: center; overflow: hidden; color: var(--muted);
}
.thumb img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
.drop-text { min-width: 0; }
.drop-text strong { display: block; font-size: 13px; }
.drop-text span { display: block; color: var(--muted); font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }

.switch { display: flex; align-items: center; justify-content: space-between; gap: 10px; cursor: pointer; }
.switch .text { font-weight: 600; font-size: 13px; }
.switch .text small { display: block; font-weight: 400; color: var(--muted); font-size: 12px; }
.switch input { position: absolute; opacity: 0; width: 1px; height: 1px; }
.switch .track {
  flex: none; position: relative; width: 38px; height: 22px; border-radius: 999px; background: var(--line-strong);
  transition: background 0.15s;
}
.switch .track::after {
  content: ""; position: absolute; top: 3px; left: 3px; width: 16px; height: 16px; border-radius: 50%;
  background: #fff; box-shadow: 0 1px 2px rgba(0, 0, 0, 0.25); transition: transform 0.15s;
}
.switch input:checked + .track { background: var(--accent); }
.switch input:checked + .track::after { transform: translateX(16px); }
.switch input:focus-visible + .track { box-shadow: 0 0 0 3px rgba(79, 70, 229, 0.25); }

.actions { display: flex; gap: 10px; margin-top: 18px; }
button {
  font: inherit; font-weight: 600; border-radius: 8px; padding: 9px 16px; cursor: pointer;
  border: 1px solid var(--line-strong); background: #fff; color: var(--text);
}
button.primary { flex: 1; background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover { background: var(--accent-dark); }
button:disabled { opacity: 0.55; cursor: default; }
details.sent { margin-top: 14px; font-size: 12px; }
details.sent summary { cursor: pointer; color: var(--muted); }
details.sent pre {
  margin: 8px 0 0; padding: 10px; max-height: 260px; overflow: auto; background: #f6f7fa;
  border: 1px solid var(--line); border-radius: 8px; font: 11.5px/1.45 var(--mono); white-space: pre-wrap; word-break: break-all;
}

/* Error */
.error {
  border: 1px solid #f5c2c2; background: var(--bad-soft); color: #7f1d1d; border-radius: 12px; padding: 12px 16px;
}
.error[hidden] { display: none; }
.error .title { font-weight: 700; margin-bottom: 2px; }
.error .detail { font: 12px/1.4 var(--mono); color: #991b1b; margin-top: 4px; }

/* Answer */
#answer {
  min-height: 34px; font-size: 22px; line-height: 1.35; font-weight: 550; white-space: pre-wrap; word-break: break-word;
}
#answer:empty::before { content: attr(data-placeholder); color: var(--muted); font-size: 15px; font-weight: 400; }
#answer.streaming::after {
  content: ""; display: inline-block; width: 0.5em; height: 1em; margin-left: 2px; vertical-align: -0.12em;
  background: var(--accent); animation: pulse 0.9s steps(2) infinite;
}
.answer-meta { display: flex; flex-wrap: wrap; gap: 6px 16px; margin-top: 12px; color: var(--muted); font-size: 12.5px; }
.answer-meta b { color: var(--text); font-weight: 600; }
.caption-used { margin-top: 12px; padding: 10px 12px; border-radius: 8px; background: #f6f7fa; font-size: 13px; }
.caption-used[hidden] { display: none; }
.caption-used .label { color: var(--muted); font-size: 12px; margin-right: 6px; }

/* Patches */
.stage-wrap { position: relative; width: 100%; max-width: 360px; aspect-ratio: 1 / 1; margin: 0 auto; }
.stage-wrap canvas, .stage-wrap svg { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.stage-wrap canvas { border-radius: 6px; background: #eceef4; }
.stage-wrap .placeholder {
  position: absolute; inset: 0; display: grid; place-items: center; color: var(--muted); text-align: center; padding: 20px;
}
.stage-wrap .placeholder[hidden] { display: none; }
#patches .patch { fill: transparent; stroke: rgba(255, 255, 255, 0.35); stroke-width: 1px; vector-effect: non-scaling-stroke; }
#patches .patch.dropped { fill: rgba(17, 24, 39, 0.5); stroke: rgba(255, 255, 255, 0.12); }
#patches .patch.kept { fill: rgba(250, 204, 21, 0.12); stroke: var(--kept); stroke-width: 2.5px; }
.legend { display: flex; flex-wrap: wrap; justify-content: center; gap: 6px 16px; margin-top: 12px; font-size: 12.5px; color: var(--muted); }
.legend .swatch { display: inline-block; width: 11px; height: 11px; border-radius: 3px; margin-right: 5px; vertical-align: -1px; }
.legend .swatch.kept { border: 2px solid var(--kept); background: rgba(250, 204, 21, 0.18); }
.legend .swatch.dropped { background: rgba(17, 24, 39, 0.5); }
.legend b { color: var(--text); }

/* Candidates */
#candidates { list-style: none; margin: 0; padding: 0; display: grid; gap: 8px; }
#candidates li {
  border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; background: #fff;
}
#candidates li.chosen { border-color: var(--accent); background: var(--accent-soft); box-shadow: inset 3px 0 0 var(--accent); }
.cand-head { display: flex; align-items: flex-start; gap: 8px; }
.cand-head .rank {
  flex: none; width: 20px; height: 20px; border-radius: 50%; background: #eceef4; color: var(--muted);
  display: grid; place-items: center; font-size: 11px; font-weight: 700; margin-top: 1px;
}
li.chosen .cand-head .rank { background: var(--accent); color: #fff; }
.caption-text { flex: 1; min-width: 0; word-break: break-word; }
.badge {
  flex: none; font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: 0.05em;
  color: var(--accent); background: #fff; border: 1px solid #c7c9f7; border-radius: 999px; padding: 1px 8px;
}
.scores { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0 0 28px; font-size: 12px; color: var(--muted); }
.scores b { font-family: var(--mono); font-weight: 600; color: var(--text); }

/* Cost */
.cost-head { display: flex; align-items: baseline; flex-wrap: wrap; gap: 4px 12px; margin-bottom: 10px; }
.cost-head .big { font-size: 30px; font-weight: 700; letter-spacing: -0.02em; }
.cost-head .big.over { color: var(--warn); }
.bar {
  position: relative; display: flex; height: 18px; border-radius: 6px; background: #eceef4; overflow: hidden;
}
.bar .seg { height: 100%; }
.bar .mark { position: absolute; top: -3px; bottom: -3px; width: 2px; background: var(--text); }
.bar-scale { display: flex; justify-content: space-between; margin-top: 4px; font-size: 11.5px; color: var(--muted); }
.seg.vision, .dot.vision { background: var(--vision); }
.seg.caption, .dot.caption { background: var(--caption); }
.seg.selector, .dot.selector { background: var(--selector); }
.seg.decoder, .dot.decoder { background: var(--decoder); }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 7px; }
table.stages { width: 100%; border-collapse: collapse; margin-top: 16px; font-size: 13px; }
table.stages th {
  text-align: left; font-size: 11.5px; font-weight: 600; color: var(--muted); padding: 0 8px 6px 0;
  border-bottom: 1px solid var(--line);
}
table.stages td { padding: 7px 8px 7px 0; border-bottom: 1px solid var(--line); }
table.stages td.num, table.stages th.num { text-align: right; font-family: var(--mono); white-space: nowrap; }
table.stages th.num { font-family: inherit; }
table.stages tr.total td { font-weight: 700; border-bottom: none; }
table.stages td.share { width: 34%; }
.minibar { height: 6px; border-radius: 3px; background: #eceef4; overflow: hidden; }
.minibar i { display: block; height: 100%; background: var(--line-strong); }
.skipped { color: var(--muted); font-style: italic; }

footer { max-width: 1440px; margin: 0 auto; padding: 4px 28px 24px; color: var(--muted); font-size: 12px; }
footer code { font-family: var(--mono); }
</style>
</head>
<body>
<header class="top">
  <div class="brand">
    <svg width="34" height="34" viewBox="0 0 34 34" aria-hidden="true">
      <rect width="34" height="34" rx="8" fill="#4f46e5"/>
      <g fill="#ffffff" fill-opacity="0.28">
        <rect x="6" y="6" width="6" height="6" rx="1"/><rect x="14" y="6" width="6" height="6" rx="1"/>
        <rect x="6" y="14" width="6" height="6" rx="1"/><rect x="22" y="14" width="6" height="6" rx="1"/>
        <rect x="14" y="22" width="6" height="6" rx="1"/><rect x="22" y="22" width="6" height="6" rx="1"/>
      </g>
      <g fill="#facc15">
        <rect x="22" y="6" width="6" height="6" rx="1"/><rect x="14" y="14" width="6" height="6" rx="1"/>
        <rect x="6" y="22" width="6" height="6" rx="1"/>
      </g>
    </svg>
    <div>
      <h1>ACCM playground</h1>
      <p>Keep a few visual tokens, compensate with a question-guided caption.</p>
    </div>
  </div>
  <div class="server">
    <span id="model-name">model <code>…</code></span>
    <span id="health" class="pill" title="GET /health">checking</span>
  </div>
</header>

<main class="layout">
  <form id="form" class="card request" novalidate autocomplete="off">
    <h2>Request</h2>

    <div class="field">
      <span class="label">Image <span class="hint">PNG or JPEG · drop, paste or pick</span></span>
      <label class="drop" id="drop" for="image-input">
        <input type="file" id="image-input" class="sr-only" accept="image/png,image/jpeg,.png,.jpg,.jpeg">
        <span class="thumb" id="thumb" aria-hidden="true">
          <svg width="26" height="26" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.6">
            <rect x="3" y="4" width="18" height="16" rx="2"/><circle cx="9" cy="10" r="2"/><path d="M4 18l5-5 4 4 3-3 4 4"/>
          </svg>
        </span>
        <span class="drop-text">
          <strong id="file-name">Choose an image…</strong>
          <span id="file-info">or drag and drop it here</span>
        </span>
      </label>
    </div>

    <div class="field">
      <label for="question">Question</label>
      <input type="text" id="question" placeholder="What color is the cross?" maxlength="8192">
    </div>

    <div class="row">
      <div class="field">
        <label for="budget">Visual tokens <span class="hint" id="budget-hint">of 64</span></label>
        <select id="budget">
          <option value="1">1</option><option value="2">2</option><option value="4" selected>4</option>
          <option value="8">8</option><option value="16">16</option><option value="32">32</option>
          <option value="64">64</option>
        </select>
      </div>
      <div class="field">
        <label for="max-tokens">Max tokens</label>
        <input type="number" id="max-tokens" value="32" min="1" max="256" step="1">
      </div>
    </div>

    <div class="field">
      <label for="pruner">Pruner</label>
      <select id="pruner">
        <option value="accm" selected>accm: ACCM's selection</option>
        <option value="text">text: question-guided similarity</option>
        <option value="cls">cls: class-token attention</option>
        <option value="uniform">uniform: evenly spaced</option>
        <option value="random">random</option>
        <option value="none">none: keep every token</option>
      </select>
    </div>

    <div class="field">
      <label class="switch" for="caption-toggle">
        <span class="text">Caption compensation<small>beam-search captions, the selector picks one</small></span>
        <input type="checkbox" id="caption-toggle" checked>
        <span class="track" aria-hidden="true"></span>
      </label>
    </div>

    <div class="field">
      <label for="api-key">API key <span class="hint">optional · kept in this browser</span></label>
      <input type="password" id="api-key" placeholder="sent as Authorization: Bearer …" spellcheck="false">
    </div>

    <div class="actions">
      <button type="submit" id="submit" class="primary">Ask</button>
      <button type="button" id="stop" disabled>Stop</button>
    </div>

    <details class="sent" id="sent" hidden>
      <summary>Request sent</summary>
      <pre id="sent-json"></pre>
    </details>
  </form>

  <div class="results">
    <div id="error" class="error wide" role="alert" hidden></div>

    <section class="card wide">
      <h2>Answer <span id="status" class="pill">idle</span></h2>
      <div id="answer" aria-live="polite" data-placeholder="Pick an image, ask a question, and the answer streams in here."></div>
      <div class="answer-meta" id="answer-meta"></div>
      <div class="caption-used" id="caption-used" hidden><span class="label">Caption given to the decoder</span><span id="caption-used-text"></span></div>
    </section>

    <section class="card">
      <h2>Visual tokens <span class="aside muted" id="grid-info">8 × 8 patches</span></h2>
      <div class="stage-wrap">
        <canvas id="canvas" width="720" height="720"></canvas>
        <svg id="patches" viewBox="0 0 8 8" preserveAspectRatio="none" aria-label="patch grid"></svg>
        <div class="placeholder" id="canvas-placeholder">No image yet</div>
      </div>
      <div class="legend" id="legend">
        <span><span class="swatch kept"></span>kept</span>
        <span><span class="swatch dropped"></span>pruned</span>
      </div>
    </section>

    <section class="card">
      <h2>Caption candidates <span class="aside muted" id="candidates-info"></span></h2>
      <ol id="candidates"></ol>
      <p class="empty" id="candidates-empty">The candidate captions and their scores appear here.</p>
    </section>

    <section class="card wide">
      <h2>Cost <span class="aside muted">time and FLOPs per stage, against the same answer unpruned</span></h2>
      <div id="cost"><p class="empty">Per-stage time and FLOPs appear here after an answer.</p></div>
    </section>
  </div>
</main>

<footer>
  <code>POST /v1/chat/completions</code> (OpenAI chat completions, streamed) ·
  <code>GET /v1/models</code> · <code>GET /health</code> · <code>GET /metrics</code>
</footer>

<script>
(function () {
  "use strict";

  var STAGES = ["vision", "caption", "selector", "decoder"];
  // LLaVA pads to a square with the CLIP processor's image mean.
  var PAD_COLOR = "rgb(122, 116, 103)";
  var KEY_STORAGE = "accm.playground.apiKey";
  var SVG_NS = "http://www.w3.org/2000/svg";

  var $ = function (id) { return document.getElementById(id); };

  var state = {
    image: null,          // {dataURL, mime, name, bytes, width, height, element}
    grid: { rows: 8, cols: 8 },
    padding: "square",
    kept: null,           // kept patch indices of the last answer, or null
    patchCount: 64,
    model: null,
    controller: null
  };

  // ---------- small helpers ----------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function formatFlops(x) {
    if (typeof x !== "number" || !isFinite(x)) return "—";
    var units = [[1e15, "PFLOP"], [1e12, "TFLOP"], [1e9, "GFLOP"], [1e6, "MFLOP"], [1e3, "kFLOP"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(x) >= units[i][0]) return (x / units[i][0]).toPrecision(3) + " " + units[i][1];
    }
    return Math.round(x) + " FLOP";
  }

  function formatSeconds(s) {
    if (typeof s !== "number" || !isFinite(s)) return "—";
    if (s >= 1) return s.toFixed(2) + " s";
    var ms = s * 1000;
    return (ms >= 10 ? ms.toFixed(0) : ms.toFixed(1)) + " ms";
  }

  function formatBytes(n) {
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    if (n >= 1024) return (n / 1024).toFixed(1) + " KiB";
    return n + " B";
  }

  function formatScore(x) {
    return typeof x === "number" && isFinite(x) ? x.toFixed(3) : "—";
  }

  function authHeaders() {
    var key = $("api-key").value.trim();
    return key ? { "Authorization": "Bearer " + key } : {};
  }

  function setStatus(text) {
    var node = $("status");
    node.textContent = text;
    var kind = { done: "ok", error: "bad", sending: "busy", streaming: "busy", stopped: "warn" }[text] || "";
    node.className = "pill" + (kind ? " " + kind : "");
  }

  // ---------- errors ----------

  function APIError(message, detail) {
    this.name = "APIError";
    this.message = message;
    this.detail = detail || "";
  }
  APIError.prototype = Object.create(Error.prototype);

  function errorFromObject(error, prefix) {
    var parts = prefix ? [prefix] : [];
    if (error.type) parts.push(error.type);
    if (error.param) parts.push("param " + error.param);
    if (error.code) parts.push("code " + error.code);
    return new APIError(error.message || "the server reported an error", parts.join(" · "));
  }

  function errorFromResponse(response, text) {
    var prefix = "HTTP " + response.status + (response.statusText ? " " + response.statusText : "");
    var error;
    try {
      var body = JSON.parse(text);
      if (body && body.error) error = errorFromObject(body.error, prefix);
    } catch (ignored) { /* not JSON */ }
    if (!error) error = new APIError(text.trim().slice(0, 500) || "the server answered " + prefix, prefix);
    var retry = response.headers.get("Retry-After");
    if (retry) error.detail += " · retry after " + retry + " s";
    return error;
  }

  function showError(title, message, detail) {
    var box = $("error");
    box.textContent = "";
    box.appendChild(el("div", "title", title));
    box.appendChild(el("div", "message", message));
    if (detail) box.appendChild(el("div", "detail", detail));
    box.hidden = false;
  }

  function clearError() {
    var box = $("error");
    box.hidden = true;
    box.textContent = "";
  }

  // ---------- the image ----------

  function sniffType(bytes) {
    if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return "image/png";
    if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
    return null;
  }

  function base64(bytes) {
    var chunks = [];
    for (var i = 0; i < bytes.length; i += 0x8000) {
      chunks.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return btoa(chunks.join(""));
  }

  function loadFile(file) {
    if (!file) return;
    clearError();
    var reader = new FileReader();
    reader.onerror = function () { showError("Could not read the file", file.name, String(reader.error)); };
    reader.onload = function () {
      var bytes = new Uint8Array(reader.result);
      var mime = sniffType(bytes);
      if (!mime) {
        showError("Not a PNG or JPEG image", file.name + " is neither: the model reads PNG and JPEG files.");
        return;
      }
      var dataURL = "data:" + mime + ";base64," + base64(bytes);
      var img = new Image();
      img.onload = function () {
        state.image = {
          dataURL: dataURL, mime: mime, name: file.name || "pasted image", bytes: bytes.length,
          width: img.naturalWidth, height: img.naturalHeight, element: img
        };
        state.kept = null;
        var thumb = $("thumb");
        thumb.textContent = "";
        var small = new Image();
        small.src = dataURL;
        small.alt = "";
        thumb.appendChild(small);
        $("file-name").textContent = state.image.name;
        $("file-info").textContent = img.naturalWidth + " × " + img.naturalHeight + " · " + formatBytes(bytes.length) +
          (bytes.length > 8 << 20 ? " · over the default 8 MiB image limit" : "");
        drawImage();
        renderPatches();
      };
      img.onerror = function () { showError("Could not decode the image", file.name + " looks like " + mime + " but the browser cannot decode it."); };
      img.src = dataURL;
    };
    reader.readAsArrayBuffer(file);
  }

  // Draws the image as the model sees its layout: padded to a centered square (LLaVA "pad"), or
  // resized so that its short side fills the square and center-cropped ("crop").
  function drawImage() {
    var canvas = $("canvas");
    var ctx = canvas.getContext("2d");
    var size = canvas.width;
    ctx.clearRect(0, 0, size, size);
    var image = state.image;
    $("canvas-placeholder").hidden = !!image;
    if (!image) return;
    var w = image.width, h = image.height;
    var side = state.padding === "crop" ? Math.min(w, h) : Math.max(w, h);
    var scale = size / side;
    ctx.imageSmoothingEnabled = scale < 2;
    ctx.imageSmoothingQuality = "high";
    if (state.padding !== "crop") {
      ctx.fillStyle = PAD_COLOR;
      ctx.fillRect(0, 0, size, size);
    }
    var x = Math.floor((side - w) / 2) * scale, y = Math.floor((side - h) / 2) * scale;
    ctx.drawImage(image.element, x, y, w * scale, h * scale);
  }

  // The patch grid over the canvas: one rect per patch, `patch kept` or `patch dropped` once an answer
  // said which were kept, plain `patch` before.
  function renderPatches() {
    var svg = $("patches");
    var rows = state.grid.rows, cols = state.grid.cols;
    svg.textContent = "";
    svg.setAttribute("viewBox", "0 0 " + cols + " " + rows);
    $("grid-info").textContent = rows + " × " + cols + " patches" +
      (state.padding === "crop" ? " · center-cropped" : " · padded to a square");
    if (!state.image) { renderLegend(); return; }
    var kept = state.kept ? new Set(state.kept) : null;
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) {
        var index = r * cols + c;
        var rect = document.createElementNS(SVG_NS, "rect");
        rect.setAttribute("x", c);
        rect.setAttribute("y", r);
        rect.setAttribute("width", 1);
        rect.setAttribute("height", 1);
        var isKept = kept && kept.has(index);
        rect.setAttribute("class", kept ? (isKept ? "patch kept" : "patch dropped") : "patch");
        rect.setAttribute("data-index", index);
        var title = document.createElementNS(SVG_NS, "title");
        title.textContent = "patch " + index + " (row " + r + ", column " + c + ")" + (kept ? (isKept ? ": kept" : ": pruned") : "");
        rect.appendChild(title);
        svg.appendChild(rect);
      }
    }
    // Kept patches last, so that their outline is drawn over their neighbours'.
    Array.prototype.slice.call(svg.querySelectorAll(".patch.kept")).forEach(function (node) { svg.appendChild(node); });
    renderLegend();
  }

  function renderLegend() {
    var legend = $("legend");
    legend.textContent = "";
    var total = state.grid.rows * state.grid.cols;
    var kept = state.kept ? state.kept.length : null;
    var item = function (swatch, label, count) {
      var span = el("span");
      span.appendChild(el("span", "swatch " + swatch));
      span.appendChild(document.createTextNode(label + (count === null ? "" : " ")));
      if (count !== null) span.appendChild(el("b", null, String(count)));
      legend.appendChild(span);
    };
    item("kept", "kept", kept);
    item("dropped", "pruned", kept === null ? null : total - kept);
    if (kept !== null) legend.appendChild(el("span", null, Math.round(100 * kept / total) + "% of the visual tokens"));
  }

  function updateBudgetOptions(patches) {
    if (!patches || patches === state.patchCount) return;
    state.patchCount = patches;
    var select = $("budget");
    var current = Number(select.value);
    var values = [];
    for (var v = 1; v < patches; v *= 2) values.push(v);
    values.push(patches);
    select.textContent = "";
    var chosen = values[0];
    values.forEach(function (value) {
      if (value <= current) chosen = value;
      var option = el("option", null, String(value));
      option.value = String(value);
      select.appendChild(option);
    });
    select.value = String(chosen);
    $("budget-hint").textContent = "of " + patches;
  }

  // ---------- rendering an answer ----------

  function resetResults() {
    var answer = $("answer");
    answer.textContent = "";
    answer.classList.remove("streaming");
    $("answer-meta").textContent = "";
    $("caption-used").hidden = true;
    $("candidates").textContent = "";
    $("candidates-info").textContent = "";
    var empty = $("candidates-empty");
    empty.hidden = false;
    empty.textContent = "The candidate captions and their scores appear here.";
    $("cost").innerHTML = '<p class="empty">Per-stage time and FLOPs appear here after an answer.</p>';
    state.kept = null;
    renderPatches();
  }

  function renderACCM(accm) {
    if (!accm) return;
    var patches = accm.patch_count;
    if (accm.grid && accm.grid.rows > 0 && accm.grid.cols > 0) {
      state.grid = { rows: accm.grid.rows, cols: accm.grid.cols };
    } else if (patches > 0 && Math.round(Math.sqrt(patches)) ** 2 === patches) {
      state.grid = { rows: Math.sqrt(patches), cols: Math.sqrt(patches) };
    }
    if (accm.image_padding) state.padding = accm.image_padding;
    updateBudgetOptions(patches);
    if (Array.isArray(accm.kept_patches)) {
      state.kept = accm.kept_patches.slice();
    } else if (patches && accm.visual_tokens_kept === patches) {
      state.kept = [];
      for (var i = 0; i < patches; i++) state.kept.push(i);
    }
    drawImage();
    renderPatches();
    renderCaption(accm);
    renderCandidates(accm);
    renderCost(accm.stage_seconds, accm.flops);
  }

  function renderCaption(accm) {
    var box = $("caption-used");
    if (accm.caption) {
      $("caption-used-text").textContent = "“" + accm.caption + "”";
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  function renderCandidates(accm) {
    var list = $("candidates");
    list.textContent = "";
    var candidates = Array.isArray(accm.candidates) ? accm.candidates : [];
    var chosen = typeof accm.chosen_candidate === "number" ? accm.chosen_candidate : -1;
    if (chosen < 0 && accm.caption) {
      chosen = candidates.findIndex(function (c) { return c.text === accm.caption; });
    }
    candidates.forEach(function (candidate, index) {
      var li = el("li", index === chosen ? "candidate chosen" : "candidate");
      var head = el("div", "cand-head");
      head.appendChild(el("span", "rank", String(index + 1)));
      head.appendChild(el("span", "caption-text", candidate.text));
      if (index === chosen) head.appendChild(el("span", "badge", "chosen"));
      li.appendChild(head);
      var scores = el("div", "scores");
      var beam = el("span", null, "beam ");
      beam.appendChild(el("b", null, formatScore(candidate.beam_score)));
      var selector = el("span", null, "selector ");
      selector.appendChild(el("b", null, formatScore(candidate.selector_score)));
      scores.appendChild(beam);
      scores.appendChild(selector);
      li.appendChild(scores);
      list.appendChild(li);
    });
    var empty = $("candidates-empty");
    if (candidates.length) {
      empty.hidden = true;
      $("candidates-info").textContent = candidates.length + " from beam search";
    } else {
      empty.hidden = false;
      empty.textContent = accm.caption ? "The server returned no candidates." : "No caption: compensation was off for this answer.";
    }
  }

  function renderCost(seconds, flops) {
    var box = $("cost");
    box.textContent = "";
    if (!seconds && !flops) {
      box.appendChild(el("p", "empty", "The server returned no timings."));
      return;
    }
    seconds = seconds || {};
    flops = flops || {};
    var stageFlops = 0, stageSeconds = 0;
    STAGES.forEach(function (s) {
      if (typeof flops[s] === "number") stageFlops += flops[s];
      if (typeof seconds[s] === "number") stageSeconds += seconds[s];
    });
    var total = typeof flops.total === "number" ? flops.total : stageFlops;
    var unpruned = flops.unpruned;

    if (typeof unpruned === "number" && unpruned > 0 && total > 0) {
      var ratio = total / unpruned;
      var head = el("div", "cost-head");
      var pct = ratio * 100;
      head.appendChild(el("span", "big" + (ratio > 1 ? " over" : ""), (pct < 10 ? pct.toFixed(1) : pct.toFixed(0)) + "%"));
      head.appendChild(el("span", "muted", "of the unpruned cost: " + formatFlops(total) + " against " + formatFlops(unpruned) +
        (ratio > 1 ? " (the caption costs more than pruning saved)" : pct >= 99.95 ? " (nothing saved)" :
          " (" + (100 - pct).toFixed(pct > 90 ? 1 : 0) + "% saved)")));
      box.appendChild(head);

      var scale = Math.max(total, unpruned);
      var bar = el("div", "bar");
      STAGES.forEach(function (s) {
        if (typeof flops[s] !== "number" || flops[s] <= 0) return;
        var seg = el("div", "seg " + s);
        seg.style.width = (100 * flops[s] / scale) + "%";
        seg.title = s + ": " + formatFlops(flops[s]);
        bar.appendChild(seg);
      });
      var mark = el("div", "mark");
      mark.style.left = "calc(" + (100 * unpruned / scale) + "% - 2px)";
      mark.title = "unpruned: " + formatFlops(unpruned);
      bar.appendChild(mark);
      box.appendChild(bar);
      var scaleRow = el("div", "bar-scale");
      scaleRow.appendChild(el("span", null, "0"));
      scaleRow.appendChild(el("span", null, "▏unpruned " + formatFlops(unpruned)));
      box.appendChild(scaleRow);
    }

    var table = el("table", "stages");
    var thead = el("thead");
    var hr = el("tr");
    [["Stage", ""], ["Time", "num"], ["", ""], ["FLOPs", "num"], ["of total", "num"]].forEach(function (h) {
      hr.appendChild(el("th", h[1], h[0]));
    });
    thead.appendChild(hr);
    table.appendChild(thead);
    var tbody = el("tbody");
    STAGES.forEach(function (s) {
      var tr = el("tr");
      var name = el("td");
      name.appendChild(el("span", "dot " + s));
      name.appendChild(document.createTextNode(s));
      tr.appendChild(name);
      var ran = typeof seconds[s] === "number" || typeof flops[s] === "number";
      if (!ran) {
        var skipped = el("td", "skipped", "skipped");
        skipped.colSpan = 4;
        tr.appendChild(skipped);
      } else {
        tr.appendChild(el("td", "num", formatSeconds(seconds[s])));
        var share = el("td", "share");
        var mini = el("div", "minibar");
        var fill = el("i");
        fill.style.width = (stageSeconds > 0 && typeof seconds[s] === "number" ? 100 * seconds[s] / stageSeconds : 0) + "%";
        fill.className = "";
        fill.style.background = "var(--" + s + ")";
        mini.appendChild(fill);
        share.appendChild(mini);
        tr.appendChild(share);
        tr.appendChild(el("td", "num", formatFlops(flops[s])));
        tr.appendChild(el("td", "num", total > 0 && typeof flops[s] === "number" ? (100 * flops[s] / total).toFixed(1) + "%" : "—"));
      }
      tbody.appendChild(tr);
    });
    var totalRow = el("tr", "total");
    totalRow.appendChild(el("td", null, "total"));
    totalRow.appendChild(el("td", "num", formatSeconds(stageSeconds)));
    totalRow.appendChild(el("td"));
    totalRow.appendChild(el("td", "num", formatFlops(total)));
    totalRow.appendChild(el("td", "num", typeof unpruned === "number" && unpruned > 0 ? (100 * total / unpruned).toFixed(1) + "% of unpruned" : ""));
    tbody.appendChild(totalRow);
    table.appendChild(tbody);
    box.appendChild(table);
  }

  function renderMeta(info) {
    var meta = $("answer-meta");
    meta.textContent = "";
    var add = function (label, value) {
      var span = el("span", null, label + " ");
      span.appendChild(el("b", null, value));
      meta.appendChild(span);
    };
    if (info.finish) add("finish", info.finish);
    if (info.usage) {
      add("tokens", info.usage.completion_tokens + " answer · " + info.usage.prompt_tokens + " prompt");
      if (typeof info.usage.visual_tokens_kept === "number") {
        add("visual tokens", info.usage.visual_tokens_kept + " kept · " + info.usage.visual_tokens_dropped + " pruned");
      }
    }
    if (info.firstToken !== null) add("first token", formatSeconds(info.firstToken));
    add("total", formatSeconds(info.elapsed));
  }

  // ---------- the request ----------

  function buildRequest() {
    var accm = {
      visual_tokens: Number($("budget").value),
      pruner: $("pruner").value,
      caption: $("caption-toggle").checked,
      return_candidates: true,
      return_timings: true
    };
    var body = {
      messages: [{
        role: "user",
        content: [
          { type: "text", text: $("question").value.trim() },
          { type: "image_url", image_url: { url: state.image.dataURL } }
        ]
      }],
      max_tokens: Math.max(1, Math.floor(Number($("max-tokens").value) || 32)),
      temperature: 0,
      seed: 0,
      stream: true,
      stream_options: { include_usage: true },
      accm: accm
    };
    if (state.model) body = Object.assign({ model: state.model }, body);
    return body;
  }

  function showSent(body) {
    var shown = JSON.stringify(body, function (key, value) {
      if (key === "url" && typeof value === "string" && value.length > 80) {
        return value.slice(0, 48) + "… (" + formatBytes(value.length) + ")";
      }
      return value;
    }, 2);
    $("sent-json").textContent = "POST /v1/chat/completions\n" + shown;
    $("sent").hidden = false;
  }

  // Reads a server-sent event stream; calls onData with each event's data. Returns true when onData
  // returned true (the `[DONE]` event), false when the stream simply ended.
  async function readEvents(body, onData) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buffer = "", data = [];
    try {
      for (;;) {
        var result = await reader.read();
        buffer += result.done ? decoder.decode() + "\n\n" : decoder.decode(result.value, { stream: true });
        var newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          var line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (data.length) {
              var payload = data.join("\n");
              data = [];
              if (onData(payload) === true) return true;
            }
            continue;
          }
          if (line.charAt(0) === ":") continue;  // a comment (keep-alive)
          var colon = line.indexOf(":");
          var field = colon < 0 ? line : line.slice(0, colon);
          var value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.charAt(0) === " ") value = value.slice(1);
          if (field === "data") data.push(value);
        }
        if (result.done) return false;
      }
    } finally {
      reader.cancel().catch(function () {});
    }
  }

  async function submit(event) {
    if (event) event.preventDefault();
    if (state.controller) return;
    clearError();
    if (!state.image) {
      showError("No image", "Choose or drop a PNG or JPEG image first.");
      setStatus("error");
      return;
    }
    if (!$("question").value.trim()) {
      showError("No question", "Type a question about the image.");
      setStatus("error");
      $("question").focus();
      return;
    }
    resetResults();
    var body = buildRequest();
    showSent(body);

    var controller = new AbortController();
    state.controller = controller;
    $("submit").disabled = true;
    $("stop").disabled = false;
    setStatus("sending");

    var answer = $("answer");
    var started = performance.now();
    var info = { finish: null, usage: null, firstToken: null, elapsed: 0 };
    try {
      var headers = Object.assign({ "Content-Type": "application/json", "Accept": "text/event-stream" }, authHeaders());
      var response = await fetch("/v1/chat/completions", {
        method: "POST", headers: headers, body: JSON.stringify(body), signal: controller.signal
      });
      if (!response.ok) throw errorFromResponse(response, await response.text());
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") >= 0) {
        // A server that answered without streaming: the whole completion at once.
        var completion = await response.json();
        if (completion.error) throw errorFromObject(completion.error, "HTTP " + response.status);
        var choice = completion.choices && completion.choices[0];
        answer.textContent = choice && choice.message ? choice.message.content : "";
        info.finish = choice ? choice.finish_reason : null;
        info.usage = completion.usage || null;
        renderACCM(completion.accm);
      } else {
        setStatus("streaming");
        answer.classList.add("streaming");
        var sawDone = await readEvents(response.body, function (data) {
          if (data === "[DONE]") return true;
          var chunk;
          try {
            chunk = JSON.parse(data);
          } catch (ignored) {
            throw new APIError("The stream carried an event that is not JSON: " + data.slice(0, 200), "stream");
          }
          if (chunk.error) throw errorFromObject(chunk.error, "failed mid-stream");
          if (chunk.usage) info.usage = chunk.usage;
          var choice = chunk.choices && chunk.choices[0];
          if (!choice) return false;
          var text = choice.delta && choice.delta.content;
          if (text) {
            if (info.firstToken === null) info.firstToken = (performance.now() - started) / 1000;
            answer.appendChild(document.createTextNode(text));
          }
          if (choice.finish_reason) {
            info.finish = choice.finish_reason;
            renderACCM(chunk.accm || choice.accm);
          }
          return false;
        });
        if (!info.finish) {
          throw new APIError(sawDone ? "The stream ended ([DONE]) without a final chunk." :
            "The stream ended before its final chunk: the connection closed early.", "stream");
        }
      }
      answer.normalize();
      info.elapsed = (performance.now() - started) / 1000;
      answer.classList.remove("streaming");
      renderMeta(info);
      setStatus("done");
    } catch (error) {
      answer.classList.remove("streaming");
      info.elapsed = (performance.now() - started) / 1000;
      if (error && error.name === "AbortError") {
        setStatus("stopped");
        renderMeta(info);
      } else {
        if (error instanceof APIError) {
          showError("The request failed", error.message, error.detail);
        } else if (error instanceof TypeError) {
          showError("Could not reach the server", String(error.message || error), "network");
        } else {
          showError("Something went wrong", String(error && error.message || error), "");
        }
        setStatus("error");
      }
    } finally {
      state.controller = null;
      $("submit").disabled = false;
      $("stop").disabled = true;
    }
  }

  // ---------- server status ----------

  async function checkHealth() {
    var pill = $("health");
    try {
      var response = await fetch("/health", { headers: authHeaders(), cache: "no-store" });
      if (response.status === 404) { pill.hidden = true; return; }
      var body = await response.json();
      var ready = body.status === "ready";
      pill.textContent = ready ? "ready" : "not ready";
      pill.className = "pill " + (ready ? "ok" : "warn");
      var lines = [];
      Object.keys(body.stages || {}).forEach(function (name) {
        var stage = body.stages[name];
        lines.push(name + ": " + stage.replicas + " replica" + (stage.replicas === 1 ? "" : "s") +
          (typeof stage.queued === "number" ? ", " + stage.queued + " queued" : ""));
      });
      if (body.error) lines.push(body.error);
      pill.title = "GET /health\n" + lines.join("\n");
    } catch (error) {
      pill.textContent = "offline";
      pill.className = "pill bad";
      pill.title = "GET /health failed: " + error;
    }
  }

  async function loadModels() {
    var label = $("model-name");
    try {
      var response = await fetch("/v1/models", { headers: authHeaders(), cache: "no-store" });
      if (response.status === 401) {
        label.textContent = "API key needed";
        state.model = null;
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      var body = await response.json();
      state.model = body.data && body.data[0] ? body.data[0].id : null;
      label.textContent = "model ";
      label.appendChild(el("code", null, state.model || "?"));
    } catch (error) {
      state.model = null;
      label.textContent = "";
    }
  }

  // ---------- wiring ----------

  function init() {
    var keyField = $("api-key");
    try { keyField.value = localStorage.getItem(KEY_STORAGE) || ""; } catch (ignored) { /* storage off */ }
    var keyTimer = null;
    keyField.addEventListener("input", function () {
      try {
        if (keyField.value) localStorage.setItem(KEY_STORAGE, keyField.value);
        else localStorage.removeItem(KEY_STORAGE);
      } catch (ignored) { /* storage off */ }
      clearTimeout(keyTimer);
      keyTimer = setTimeout(loadModels, 400);
    });

    $("image-input").addEventListener("change", function (event) {
      loadFile(event.target.files && event.target.files[0]);
    });
    var drop = $("drop");
    ["dragenter", "dragover"].forEach(function (name) {
      drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "dragend"].forEach(function (name) {
      drop.addEventListener(name, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (event) {
      event.preventDefault();
      drop.classList.remove("over");
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) loadFile(files[0]);
    });
    // A file dropped beside the drop zone should not make the browser navigate away to it.
    window.addEventListener("dragover", function (event) { event.preventDefault(); });
    window.addEventListener("drop", function (event) {
      event.preventDefault();
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) loadFile(files[0]);
    });
    document.addEventListener("paste", function (event) {
      var items = event.clipboardData ? event.clipboardData.files : null;
      if (items && items.length) loadFile(items[0]);
    });

    $("pruner").addEventListener("change", function () {
      $("budget").classList.toggle("dim", $("pruner").value === "none");
      $("budget-hint").textContent = $("pruner").value === "none" ? "ignored" : "of " + state.patchCount;
    });
    $("form").addEventListener("submit", submit);
    $("stop").addEventListener("click", function () { if (state.controller) state.controller.abort(); });

    renderPatches();
    checkHealth();
    loadModels();
    setInterval(checkHealth, 15000);
  }

  init();
})();
</script>
</body>
</html>
"""#
}
