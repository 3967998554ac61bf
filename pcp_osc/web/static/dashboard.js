// The operator dashboard: live state by server-sent events, controls by POST.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { colours: {}, cue: null, cues: 0, live: 0, latencies: [], status: null };
window.pcpState = state; // read by the tests and handy in the browser console
const PREVIEW_INTERVAL_MS = 200;

function fmtUptime(s) {
  s = Math.floor(s || 0);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
}
function pct(v) { return Math.round((v || 0) * 100) + "%"; }
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], { hour12: false }); }

// ---- layout built once --------------------------------------------------------
function buildBars() {
  const bars = $("bars");
  bars.innerHTML = "";
  for (const e of EMOTIONS) {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span>${e}</span><div class="track"><div class="fill" id="bar-${e}"></div></div><span class="pct" id="pct-${e}">–</span>`;
    bars.appendChild(row);
  }
}
function buildButtons() {
  for (const box of document.querySelectorAll(".emotions")) {
    const action = box.dataset.action;
    box.innerHTML = "";
    for (const e of EMOTIONS) {
      const b = document.createElement("button");
      b.className = "emo";
      b.textContent = e;
      b.dataset.emotion = e;
      b.id = `${action}-${e}`;
      b.addEventListener("click", () => {
        const args = [e];
        const secs = parseFloat($("override-s").value);
        if (action === "override" && secs > 0) args.push(secs);
        control(action, args);
      });
      box.appendChild(b);
    }
  }
}
function paintColours(colours) {
  state.colours = colours || {};
  for (const e of EMOTIONS) {
    const c = state.colours[e] || "#888";
    const fill = $(`bar-${e}`);
    if (fill) fill.style.background = c;
    for (const b of document.querySelectorAll(`button.emo[data-emotion="${e}"]`)) b.style.borderBottomColor = c;
  }
}

// ---- controls -----------------------------------------------------------------
async function control(name, args, resultId = "control-result") {
  const out = $(resultId);
  out.className = "result";
  out.textContent = `${name} ${args.join(" ")}…`;
  try {
    const r = await fetch("/api/control", {
      method: "POST", headers: PCP.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ address: name, args }),
    });
    const body = await r.json().catch(() => ({ message: `HTTP ${r.status}` }));
    out.className = "result " + (r.ok && body.accepted ? "ok" : "bad");
    out.textContent = body.message || body.error || `HTTP ${r.status}`;
    refreshStatus(); // show the new intent/override/window at once, not at the next status tick
    return r.ok && body.accepted;
  } catch (err) {
    out.className = "result bad";
    out.textContent = "the daemon did not answer: " + err;
    return false;
  }
}
$("release").addEventListener("click", () => control("release", []));
$("generate").addEventListener("click", () => control("generate", []));
$("marker-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = $("marker").value.trim();
  if (!name) { $("control-result").className = "result bad"; $("control-result").textContent = "type a song or cue name first"; return; }
  control("marker", [name]);
  $("marker").value = "";
});
$("window-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = parseFloat($("window").value);
  control("window", [isNaN(v) ? $("window").value : v]);
});

// ---- the audience region, drawn on the preview --------------------------------
// The operator clicks (taps) the corners of the audience on the preview; the points are
// fractions of the picture (0..1), whatever size the preview is shown at. Apply sends them
// to the daemon as show control ("region", x y pairs), which checks them with the config's
// rule; the config file is the operator's: the page shows the line to paste, never writes it.
const REGION_SNAP = 0.015; // a click this close to the picture's edge (or beyond it) is on the edge
const REGION_CLOSE_PX = 14; // a click this close to the first corner closes the outline and applies it
const REGION_MARGIN_PX = 16; // the drawing layer reaches this far beyond the picture (dashboard.css)
const region = { drawing: false, points: [] };
function previewBox() {
  // where the picture lies in the preview frame (object-fit: contain leaves bars around it)
  const wrap = $("preview-wrap"), img = $("preview");
  const W = wrap.clientWidth, H = wrap.clientHeight;
  const nw = img.naturalWidth || 16, nh = img.naturalHeight || 9;
  const s = Math.min(W / nw, H / nh);
  return { left: (W - nw * s) / 2, top: (H - nh * s) / 2, width: nw * s, height: nh * s };
}
function regionPointAt(ev) {
  const r = $("preview-wrap").getBoundingClientRect(), b = previewBox();
  const snap = (v) => (v < REGION_SNAP ? 0 : v > 1 - REGION_SNAP ? 1 : Math.round(v * 10000) / 10000);
  return [snap((ev.clientX - r.left - b.left) / b.width), snap((ev.clientY - r.top - b.top) / b.height)];
}
function regionPx([x, y]) { const b = previewBox(); return [b.left + x * b.width, b.top + y * b.height]; }
function drawRegion() {
  const svg = $("region-draw");
  const pts = region.points.map(regionPx).map(([x, y]) => [x + REGION_MARGIN_PX, y + REGION_MARGIN_PX]);
  const list = pts.map((p) => p.join(",")).join(" ");
  let html = pts.length >= 3 ? `<polygon points="${list}"/>` : pts.length ? `<polyline points="${list}"/>` : "";
  pts.forEach(([x, y], i) => {
    const cls = i === 0 ? "first" + (pts.length >= 3 ? " closable" : "") : "";
    html += `<circle class="${cls}" cx="${x}" cy="${y}" r="${i === 0 && pts.length >= 3 ? 7 : 4.5}"/>`;
  });
  svg.innerHTML = html;
  const n = region.points.length;
  $("region-hint").textContent = n === 0 ? "click the corners of the audience on the preview, in order around it"
    : n < 3 ? `${n} point${n === 1 ? "" : "s"}: at least 3` : `${n} points: Apply, or click the first point to close`;
  $("region-apply").disabled = n < 3;
  $("region-undo").disabled = n === 0;
}
function regionMode(on) {
  region.drawing = on;
  region.points = [];
  $("region-draw").toggleAttribute("hidden", !on); // an SVG element has no .hidden property
  $("preview-wrap").classList.toggle("drawing", on);
  $("region-idle").hidden = on;
  $("region-drawing").hidden = !on;
  if (on) { $("region-result").className = "result"; $("region-result").textContent = ""; drawRegion(); }
}
async function applyRegion() {
  if (region.points.length < 3) return;
  const ok = await control("region", region.points.flat(), "region-result");
  if (ok) regionMode(false); // refused: the outline stays to be mended (undo) or cancelled
}
$("region-draw").addEventListener("pointerdown", (ev) => {
  if (!region.drawing || ev.button > 0) return;
  ev.preventDefault();
  const p = regionPointAt(ev);
  if (region.points.length >= 3) {
    const [fx, fy] = regionPx(region.points[0]), [px, py] = regionPx(p);
    if (Math.hypot(fx - px, fy - py) <= REGION_CLOSE_PX) { applyRegion(); return; }
  }
  const last = region.points[region.points.length - 1];
  if (last && last[0] === p[0] && last[1] === p[1]) return; // a double click is one corner
  if (region.points.length >= (state.status && state.status.max_region_points || 64)) {
    $("region-result").className = "result bad";
    $("region-result").textContent = `a region has at most ${region.points.length} points: Apply or Undo`;
    return;
  }
  region.points.push(p);
  drawRegion();
});
$("region-start").addEventListener("click", () => regionMode(true));
$("region-cancel").addEventListener("click", () => regionMode(false));
$("region-undo").addEventListener("click", () => { region.points.pop(); drawRegion(); });
$("region-apply").addEventListener("click", applyRegion);
$("region-clear").addEventListener("click", () => control("region", [], "region-result"));
document.addEventListener("keydown", (ev) => {
  if (!region.drawing || ev.target.tagName === "INPUT") return;
  if (ev.key === "Escape") regionMode(false);
  else if (ev.key === "Enter") { ev.preventDefault(); applyRegion(); }
  else if (ev.key === "Backspace" || (ev.key === "z" && (ev.ctrlKey || ev.metaKey))) { ev.preventDefault(); region.points.pop(); drawRegion(); }
});
window.addEventListener("resize", () => { if (region.drawing) drawRegion(); });
function fmtFraction(v) { return String(Math.round(v * 10000) / 10000); }
function showRegion(st) {
  const r = st.audience_region;
  $("region-now").textContent = r == null ? "the whole picture" : Array.isArray(r) ? `${r.length} points` : r;
  // the line to keep it: the config file is the operator's, so the page never writes it
  const by = st.audience_region_set_by;
  const where = by == null ? "" : by.startsWith("web:") ? "on the dashboard" : `by show control (${by})`;
  let line = "", note = "";
  if (Array.isArray(r)) {
    line = "region = [" + r.map(([x, y]) => `[${fmtFraction(x)}, ${fmtFraction(y)}]`).join(", ") + "]";
    note = by != null ? `set ${where}, for this run only: to keep it, paste this line under [perception] in the config`
      : "from the config ([perception])";
  } else if (r == null && by != null) {
    line = "region = []";
    note = `cleared ${where}, for this run only: to keep that, remove region (and region_mask) under [perception] in the config`;
  }
  $("region-keep").hidden = !line;
  $("region-keep-note").textContent = note;
  if ($("region-toml").textContent !== line) $("region-toml").textContent = line;
}
$("region-copy").addEventListener("click", async () => {
  const text = $("region-toml").textContent, out = $("region-result");
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) { // no clipboard API (plain HTTP beyond localhost): copy the selected text instead
    const range = document.createRange();
    range.selectNodeContents($("region-toml"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    if (!document.execCommand("copy")) { out.className = "result bad"; out.textContent = "select the line and copy it (Ctrl+C)"; return; }
  }
  out.className = "result ok";
  out.textContent = "copied: paste it under [perception] in the config file";
});

// ---- counters: what each one counts (hover a row for the explanation) -----------
const COUNTERS = {
  frames: ["frames analysed", "camera frames the perception has read faces in"],
  cues: ["cues sent", "cues sent over OSC since start (windows and operator cues)"],
  perception_errors: ["perception errors", "frames the perception could not read (the log says why)"],
  control_accepted: ["show control applied", "show-control messages applied, from OSC and from this dashboard together"],
  control_rejected: ["show control refused", "show-control messages with a wrong address or value (OSC and dashboard); the log says what was wrong"],
  control_received: ["OSC control packets in", "UDP packets that reached the show-control port"],
  control_malformed: ["OSC packets not understood", "packets on the show-control port that are not OSC"],
  control_refused: ["OSC senders refused", "packets from a machine not in osc.allowed_senders"],
  osc_sent: ["OSC packets sent", "packets sent to TouchDesigner and the extra targets"],
  frames_received: ["browser camera frames in", "frames posted by the /camera page"],
  frames_refused: ["browser camera frames refused", "posted frames that were too big, came while others were being decoded, or were not a JPEG or PNG"],
  controls: ["dashboard button presses", "show-control requests from dashboards (each is also counted in show control applied or refused)"],
  previews: ["previews served", "camera previews sent to dashboards"],
  clients: ["dashboards open", "browsers following the live state"],
  unauthorised: ["requests without the token", "requests refused for a missing or wrong web token"],
  requests_refused: ["dashboard requests refused", "requests from another site or name (Origin, Host), or with a body the dashboard does not take; the log says which"],
};

// ---- live state ---------------------------------------------------------------
function showCue(cue) {
  state.cue = cue;
  state.cues += 1;
  $("cue-id").textContent = "#" + cue.id + (cue.reason && cue.reason !== "window" ? " · " + cue.reason : "");
  $("cue-emotion").textContent = cue.emotion;
  $("cue-hex").textContent = cue.hex;
  $("swatch").style.backgroundColor = cue.hex;
  $("cue-confidence").textContent = pct(cue.confidence);
  $("cue-source").textContent = cue.source;
  // The cue's faces are a mean over the window's frames (6.01 means about six people).
  $("cue-faces").textContent = Number(cue.faces).toFixed(1) + " per frame";
  $("intent").textContent = cue.intent;
  if (cue.source === "override") $("override").textContent = cue.emotion;
  else if (cue.reason === "release") $("override").textContent = "none";
  if (cue.sent_ms) {
    // cue -> painted on the page: measured at the next animation frame after the DOM update
    requestAnimationFrame(() => { state.latencies.push(Date.now() - cue.sent_ms); });
  }
}
function showLive(live) {
  state.live += 1;
  for (const e of EMOTIONS) {
    const v = live.shares[e] || 0;
    $(`bar-${e}`).style.width = (v * 100).toFixed(1) + "%";
    $(`pct-${e}`).textContent = pct(v);
  }
  $("faces-now").textContent = live.faces + (live.faces === 1 ? " face" : " faces");
  $("valence").textContent = live.valence.toFixed(2);
  $("arousal").textContent = live.arousal.toFixed(2);
}
function showStatus(st) {
  state.status = st;
  if (st.colours && Object.keys(state.colours).length === 0) paintColours(st.colours);
  const pill = $("status");
  pill.textContent = st.status;
  pill.className = "pill " + (st.status === "ok" ? "ok" : "bad");
  $("source").textContent = st.source || "–";
  $("uptime").textContent = fmtUptime(st.uptime_s);
  $("intent").textContent = st.intent || "–";
  $("override").textContent = st.override || "none";
  // an empty "for … s" field means the configured override timeout, or until release
  $("override-s").placeholder = st.override_timeout_s > 0 ? String(st.override_timeout_s) : "∞";
  $("window-s").textContent = st.window_s;
  $("window-left").textContent = st.window_left_s;
  if (document.activeElement !== $("window") && !$("window").value) $("window").value = st.window_s;
  for (const b of document.querySelectorAll("#intent-" + st.intent)) {
    for (const o of document.querySelectorAll(".emotions[data-action=intent] button")) o.classList.toggle("current", o === b);
  }
  for (const o of document.querySelectorAll(".emotions[data-action=override] button")) o.classList.toggle("current", o.dataset.emotion === st.override);
  if (st.cue && (!state.cue || st.cue.id > state.cue.id)) showCue(Object.assign({ intent: st.intent }, st.cue));
  if (st.live) showLive(st.live);
  const rows = Object.entries(Object.assign({}, st.counters || {}, st.web || {}))
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => {
      const [label, help] = COUNTERS[k] || [k.replaceAll("_", " "), ""];
      return `<tr title="${help}"><td>${label}</td><td>${v}</td></tr>`;
    });
  $("counters").innerHTML = rows.join("");
  showServers(st.generator);
  showRegion(st);
  if (st.web && !st.web.browser_camera) $("camera-link").title = "start pcp-osc with --source browser to use the camera page";
}
function showControl(ev) {
  const li = document.createElement("li");
  if (!ev.accepted) li.className = "refused";
  const name = ev.address.split("/").pop();
  li.innerHTML = `<time>${clock(ev.wall_time)}</time>`;
  li.appendChild(document.createTextNode(`${name} ${ev.args.join(" ")} — ${ev.message} (${ev.sender})`));
  const list = $("events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 50) list.removeChild(list.lastChild);
}
// ComfyUI servers (generator.kind = "comfyui"): one row each; the server's own error text is
// network text, so it is set with textContent only.
function showServers(gen) {
  const servers = (gen && gen.servers) || [];
  $("servers").hidden = servers.length === 0;
  const body = $("servers-body");
  body.textContent = "";
  for (const s of servers) {
    const tr = document.createElement("tr");
    if (s.state === "down" || s.state === "refused") tr.className = "bad";
    const cells = [String(s.url).replace(/^https?:\/\//, ""), s.state + (s.progress ? " " + s.progress : ""),
      s.done, s.cancelled, s.failed, s.mean_seconds == null ? "–" : Number(s.mean_seconds).toFixed(2) + " s"];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      tr.appendChild(td);
    }
    body.appendChild(tr);
    if (s.error) {
      const er = document.createElement("tr");
      er.className = "server-error";
      const td = document.createElement("td");
      td.colSpan = cells.length;
      td.textContent = s.error;
      er.appendChild(td);
      body.appendChild(er);
    }
  }
}
function showBackground(bg) {
  $("bg-info").textContent = `#${bg.id} · ${bg.generator} · ${bg.seconds} s` + (bg.note ? ` · ${bg.note}` : "");
  $("background").title = bg.prompt;
  $("background").src = PCP.withToken("/api/background.jpg?id=" + bg.id);
}
$("background").addEventListener("load", () => { $("bg-empty").style.display = "none"; $("background").hidden = false; });

function refreshStatus() {
  fetch("/api/status", { headers: PCP.headers() }).then((r) => r.json()).then((st) => { if (!st.error) showStatus(st); }).catch(() => {});
}

// ---- the event stream ---------------------------------------------------------
function connect() {
  const es = new EventSource(PCP.withToken("/api/events"));
  // on every (re)connect the server sends the show-control log so far: start the list afresh
  es.onopen = () => { $("conn").classList.add("on"); $("events").textContent = ""; };
  es.onerror = () => $("conn").classList.remove("on"); // EventSource reconnects by itself
  es.addEventListener("status", (m) => showStatus(JSON.parse(m.data)));
  es.addEventListener("cue", (m) => showCue(JSON.parse(m.data)));
  es.addEventListener("live", (m) => showLive(JSON.parse(m.data)));
  es.addEventListener("control", (m) => showControl(JSON.parse(m.data)));
  es.addEventListener("background", (m) => showBackground(JSON.parse(m.data)));
  state.events = es;
}

// ---- camera preview: fetched one after another, never faster than the page shows them
let previewN = 0;
function nextPreview() {
  const blur = $("blur").checked ? 1 : 0;
  $("preview").src = PCP.withToken(`/api/preview.jpg?blur=${blur}&n=${previewN++}`);
}
$("preview").addEventListener("load", () => {
  $("preview-empty").style.display = "none";
  $("preview").hidden = false;
  $("region-start").disabled = false;
  if (region.drawing) drawRegion(); // the picture's size may have changed
  setTimeout(nextPreview, PREVIEW_INTERVAL_MS);
});
$("preview").addEventListener("error", () => { $("preview-empty").style.display = "flex"; $("preview").hidden = true; setTimeout(nextPreview, 1000); });
$("blur").addEventListener("change", () => { $("preview").alt = $("blur").checked ? "camera preview (faces blurred)" : "camera preview"; });

buildBars();
buildButtons();
$("region-start").disabled = true; // until there is a picture to draw on
fetch("/api/status", { headers: PCP.headers() }).then((r) => r.json()).then((st) => {
  if (st.error) { $("status").textContent = st.error; $("status").className = "pill bad"; return; }
  paintColours(st.colours);
  $("blur").checked = st.web ? st.web.blur_default : true;
  if (st.web && st.web.blur_enforced) {  // the server blurs faces whatever the page asks (web.allow_unblurred is off)
    $("blur").disabled = true;
    $("blur").parentElement.title = "faces are always blurred: set web.allow_unblurred = true to allow sharp previews";
  }
  showStatus(st);
  connect();
  nextPreview();
});
