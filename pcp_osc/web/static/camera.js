// The browser camera: getUserMedia -> a JPEG every N seconds -> POST /api/frame.
// What the original project's React page did, so a phone in the hall can be the audience camera.
"use strict";
const $ = (id) => document.getElementById(id);
const cam = { stream: null, timer: null, sent: 0, refused: 0, busy: false, lastMs: null };
window.pcpCamera = cam; // read by the tests

function say(text, ok) {
  $("message").className = "result " + (ok ? "ok" : "bad");
  $("message").textContent = text;
}

async function start() {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    $("insecure").hidden = false;
    say("the camera needs https:// (or localhost)", false);
    return;
  }
  const [w, h] = $("size").value.split("x").map(Number);
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: w }, height: { ideal: h }, facingMode: { ideal: $("facing").value } }, audio: false,
    });
  } catch (err) {
    say("the browser did not open the camera: " + err.name + (err.message ? " (" + err.message + ")" : ""), false);
    return;
  }
  $("video").srcObject = cam.stream;
  $("start").disabled = true;
  $("stop").disabled = false;
  $("state").textContent = "sending";
  $("state").className = "pill ok";
  schedule();
}

function stop() {
  clearTimeout(cam.timer);
  cam.timer = null;
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  cam.stream = null;
  $("video").srcObject = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("state").textContent = "stopped";
  $("state").className = "pill";
}

function intervalMs() {
  const s = parseFloat($("interval").value);
  return Math.min(60, Math.max(0.1, isNaN(s) ? 1 : s)) * 1000;
}

function schedule() {
  if (!cam.stream) return;
  cam.timer = setTimeout(async () => { await sendFrame(); schedule(); }, intervalMs());
}

// This page's own id: the daemon takes frames from one camera page at a time.
const CAMERA_ID = Math.random().toString(36).slice(2) + Date.now().toString(36);

async function sendFrame() {
  const video = $("video");
  if (cam.busy || !video.videoWidth) return; // never queue frames behind a slow network
  cam.busy = true;
  const canvas = $("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
  const t0 = performance.now();
  try {
    const r = await fetch("/api/frame", { method: "POST", headers: PCP.headers({ "Content-Type": "image/jpeg", "X-PCP-Camera": CAMERA_ID }), body: blob });
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      cam.sent += 1;
      cam.lastMs = Math.round(performance.now() - t0);
      $("sent").textContent = cam.sent;
      $("last").textContent = `${body.width}×${body.height} · ${cam.lastMs} ms`;
      say("frames are reaching the show", true);
    } else {
      cam.refused += 1;
      $("refused").textContent = cam.refused;
      if (r.status === 409 && !body.held_by) $("no-browser-source").hidden = false;
      say(body.error || `the daemon refused the frame (HTTP ${r.status})`, false);
    }
  } catch (err) {
    cam.refused += 1;
    $("refused").textContent = cam.refused;
    say("the daemon did not answer: " + err, false);
  } finally {
    cam.busy = false;
  }
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
if (!window.isSecureContext) $("insecure").hidden = false;
if (PCP.params.get("interval")) $("interval").value = PCP.params.get("interval");
if (PCP.params.get("autostart") === "1") start();
