// actionclip serve: the page's behaviour in plain JavaScript (no build step, no library, works offline).
// It only calls the public API: /v1/models, /v1/classes, /v1/classify, /v1/timeline, /v1/watch, /v1/preview
// and, when the server serves an index, /v1/index, /v1/search, /v1/thumbnails and /v1/videos.
"use strict";

const $ = (id) => document.getElementById(id);
const LONG_VIDEO = 10; // seconds: longer videos get a timeline by default
let token = localStorage.getItem("actionclip-token") || "";
let chosen = null; // the picked File

// --- talking to the server -------------------------------------------------------------------------
function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (response.status === 401) $("token-box").hidden = false;
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

// <img> and <video> cannot send a header: media URLs carry the token as ?token=
function withToken(url) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

function setNote(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function labels() {
  return $("labels").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

function topK() {
  const k = parseInt($("top-k").value, 10);
  return Number.isFinite(k) && k > 0 ? k : 10;
}

// --- start-up: the model's name and the built-in class lists ----------------------------------------
async function start() {
  try {
    const info = await api("/v1/models");
    const m = info.model;
    $("model").textContent = `${m.name} · ${m.frames} frames · ${m.device} ${m.dtype}`;
    const lists = await api("/v1/classes");
    $("class-list").replaceChildren($("class-list").options[0]);
    for (const name of lists.lists) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      $("class-list").appendChild(option);
    }
    await startSearch();
  } catch (err) {
    $("model").textContent = "";
    setStatus(err.message, true);
  }
}

$("token-box").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("actionclip-token", token);
  $("token-box").hidden = true;
  setStatus("Token saved.");
  start();
});

$("class-list").addEventListener("change", async (event) => {
  const name = event.target.value;
  if (!name) return;
  try {
    const list = await api(`/v1/classes/${encodeURIComponent(name)}`);
    $("labels").value = list.classes.join("\n");
    setStatus(`${list.classes.length} ${name} classes loaded.`);
  } catch (err) {
    setStatus(err.message, true);
  }
});

// --- tabs ---------------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
    for (const body of document.querySelectorAll(".tab-body")) body.hidden = body.id !== tab.dataset.tab;
    document.querySelector("main").classList.toggle("searching", tab.dataset.tab === "search-tab");
    if (tab.dataset.tab !== "webcam-tab") stopWebcam();
    if (tab.dataset.tab !== "search-tab") $("search-player").pause();
  });
}

// --- the Search tab (a server started with --index) -------------------------------------------------
async function startSearch() {
  let info;
  try {
    info = await api("/v1/index");
  } catch (_) {
    return; // no index on this server: the tab stays hidden
  }
  const moments = info.moments ? `${info.moments} moments (${info.window} s windows)` : "no moments (index with --window)";
  $("index-info").textContent = `${info.videos} videos · ${moments} · ${info.model}`;
  $("search-tab-button").hidden = false;
  if (!$("search-tab-button").classList.contains("active")) $("search-tab-button").click();
}

function clock(t) {
  return `${t.toFixed(1)} s`;
}

function baseName(path) {
  return path.split(/[\\/]/).pop();
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("query").value.trim();
  if (!text) { setNote("search-status", "Type what you are looking for, in words.", true); return; }
  const only = $("search-only").value;
  const query = new URLSearchParams({ q: text, k: "12" });
  if (only) query.set("only", only);
  $("search-go").disabled = true;
  setNote("search-status", `Searching for “${text}”…`);
  const started = performance.now();
  try {
    const answer = await api(`/v1/search?${query}`);
    showHits(answer.results);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setNote("search-status", answer.results.length
      ? `${answer.results.length} results for “${text}” in ${seconds} s. Click one to play that moment.`
      : `Nothing found for “${text}”: the index holds no videos yet.`);
  } catch (err) {
    $("hits").replaceChildren();
    setNote("search-status", err.message, true);
  } finally {
    $("search-go").disabled = false;
  }
});

function showHits(results) {
  const list = $("hits");
  list.replaceChildren();
  for (const hit of results) {
    const item = document.createElement("li");
    const card = document.createElement("button");
    card.type = "button";
    card.className = "hit";
    card.dataset.start = hit.start === null ? "0" : String(hit.start);
    card.dataset.score = String(hit.score);
    card.dataset.video = hit.video;
    const image = document.createElement("img");
    image.src = withToken(hit.thumbnail);
    image.alt = "";
    image.loading = "lazy";
    const line = document.createElement("span");
    line.className = "hit-line";
    const score = document.createElement("span");
    score.className = "hit-score";
    score.textContent = hit.score.toFixed(3);
    const when = document.createElement("span");
    when.className = "hit-time";
    when.textContent = hit.start === null ? "whole video" : `${clock(hit.start)}–${clock(hit.end)}`;
    line.append(score, when);
    const name = document.createElement("span");
    name.className = "hit-name";
    name.textContent = baseName(hit.video);
    name.title = hit.video;
    card.append(image, line, name);
    card.addEventListener("click", () => playHit(hit, card));
    item.appendChild(card);
    list.appendChild(item);
  }
}

function playHit(hit, card) {
  const player = $("search-player");
  for (const other of document.querySelectorAll(".hit.current")) other.classList.remove("current");
  card.classList.add("current");
  $("search-player-box").hidden = false;
  $("search-view").classList.add("playing");
  if ($("search-player-box").getBoundingClientRect().top < 0) $("search-player-box").scrollIntoView({ block: "start" });
  const start = hit.start === null ? 0 : hit.start;
  $("search-caption").textContent = `${baseName(hit.video)} · ${hit.start === null ? "whole video" :
    `${clock(hit.start)}–${clock(hit.end)}`} · score ${hit.score.toFixed(3)}`;
  setNote("search-note", hit.playable ? "" :
    "This browser cannot play this file as it is: playing a copy converted by the server (the first time takes a moment).");
  const src = withToken(hit.media);
  const seek = () => {
    player.currentTime = start;
    player.play().catch(() => {});
  };
  player.onerror = () => explainPlayerError(player, src, "search-note");
  if (player.dataset.src === src && player.readyState >= 1) { seek(); return; }
  player.dataset.src = src;
  player.src = src;
  player.addEventListener("loadedmetadata", seek, { once: true });
}

// A <video> that fails says nothing useful: ask the server what went wrong with that URL.
async function explainPlayerError(player, src, noteId) {
  let reason = "the browser cannot play this video";
  try {
    const response = await fetch(src, { headers: { ...authHeaders(), Range: "bytes=0-0" } });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      if (body && body.error) reason = body.error;
    }
  } catch (_) { /* keep the generic reason */ }
  setNote(noteId, `Cannot play this video: ${reason}.`, true);
}

// --- picking a video ----------------------------------------------------------------------------------
// Containers Chromium does not open at all: ask the server for a playable copy at once.
const UNPLAYABLE = /\.(avi|mkv|wmv|flv|mpg|mpeg|m2ts|mts|ts|3gp|ogv|divx|vob|asf)$/i;

function choose(file) {
  if (!file) return;
  chosen = file;
  $("file-name").textContent = `${file.name} (${(file.size / 1048576).toFixed(1)} MiB)`;
  $("classify").disabled = false;
  $("results").replaceChildren(); // the ranking of the previous video no longer applies
  $("lanes").replaceChildren();
  const player = $("player");
  if (player.src.startsWith("blob:")) URL.revokeObjectURL(player.src);
  $("player-box").hidden = false;
  setNote("player-note", "");
  player.onloadedmetadata = () => {
    $("want-timeline").checked = player.duration > LONG_VIDEO;
    if (!player.videoWidth && player.dataset.kind === "original") playPreview(file); // sound only: no video codec
  };
  player.onerror = () => {
    if (!player.getAttribute("src")) return; // emptied on purpose, while a preview is made
    if (player.dataset.kind === "original") playPreview(file);
    else setNote("player-note", `${file.name} cannot be shown here; it can still be classified.`, true);
  };
  const known = file.type ? player.canPlayType(file.type) : "";
  if (UNPLAYABLE.test(file.name) || (file.type && !known)) playPreview(file);
  else {
    player.dataset.kind = "original";
    player.src = URL.createObjectURL(file);
  }
  setStatus("Ready: press Classify.");
}

async function playPreview(file) {
  const player = $("player");
  player.dataset.kind = "preview";
  player.removeAttribute("src");
  player.load();
  setNote("player-note", `This browser cannot play ${file.name} as it is: converting it on the server…`);
  const body = new FormData();
  body.append("video", file, file.name);
  try {
    const response = await fetch("/v1/preview", { method: "POST", body, headers: authHeaders() });
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new Error((problem && problem.error) || `${response.status} ${response.statusText}`);
    }
    if (chosen !== file) return; // another file was picked meanwhile
    player.src = URL.createObjectURL(await response.blob());
    setNote("player-note", `Playing a copy of ${file.name} converted by the server (the browser cannot play the original).`);
  } catch (err) {
    if (chosen === file) setNote("player-note", `${file.name} cannot be shown here (${err.message}); it can still be classified.`, true);
  }
}

$("file").addEventListener("change", (event) => choose(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  choose(event.dataTransfer.files[0]);
});

function form() {
  const data = new FormData();
  data.append("video", chosen, chosen.name);
  for (const label of labels()) data.append("labels", label);
  return data;
}

$("classify").addEventListener("click", async () => {
  if (!chosen) return;
  if (labels().length === 0) { setStatus("Name at least one action (one per line).", true); return; }
  $("classify").disabled = true;
  setStatus(`Classifying ${chosen.name}…`);
  const started = performance.now();
  try {
    const record = await api("/v1/classify", { method: "POST", body: form() });
    showRanking(record.results);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setStatus(`${record.video}: ${record.results.length} labels ranked in ${seconds} s.`);
    if ($("want-timeline").checked) {
      setStatus(`${record.video}: ranked; computing the timeline…`);
      const body = form();
      body.append("score", $("score").value);
      body.append("threshold", $("threshold").value);
      const doc = await api("/v1/timeline", { method: "POST", body });
      showTimeline(doc);
      setStatus(doc.segments.length
        ? `${record.video}: ${doc.segments.length} segments in ${doc.stats.windows} windows. Click a segment to play it.`
        : `${record.video}: no segment reaches the threshold in ${doc.stats.windows} windows.`);
    }
  } catch (err) {
    $("results").replaceChildren(); // never a ranking under an error that is not about it
    $("lanes").replaceChildren();
    setStatus(err.message, true);
  } finally {
    $("classify").disabled = false;
  }
});

// --- drawing ------------------------------------------------------------------------------------------
function showRanking(results) {
  const list = $("results");
  list.replaceChildren();
  for (const { label, prob, score } of results.slice(0, topK())) {
    const value = prob !== undefined ? prob : score;
    const row = document.createElement("li");
    row.className = "bar-row";
    row.dataset.label = label;
    row.dataset.prob = String(value);
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = label;
    name.title = label;
    const number = document.createElement("span");
    number.className = "bar-value";
    number.textContent = `${(100 * value).toFixed(1)}%`;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
    bar.appendChild(fill);
    row.append(name, number, bar);
    list.appendChild(row);
  }
}

function showTimeline(doc) {
  const lanes = $("lanes");
  lanes.replaceChildren();
  const player = $("player");
  const duration = doc.stats.duration || player.duration || 1;
  const pct = (t) => `${Math.max(0, Math.min(100, (100 * t) / duration))}%`;
  for (const label of doc.labels) {
    const lane = document.createElement("div");
    lane.className = "lane";
    const name = document.createElement("span");
    name.className = "lane-name";
    name.textContent = label;
    name.title = label;
    const track = document.createElement("div");
    track.className = "lane-track";
    for (const w of doc.windows) { // the decision score over time, as faint heat
      const heat = document.createElement("span");
      heat.className = "lane-heat";
      const centre = (w.start + w.end) / 2;
      const step = doc.settings.stride;
      heat.style.left = pct(centre - step / 2);
      heat.style.width = pct(step);
      const s = doc.settings.score === "softmax" ? w.probs[label] : w.scores[label];
      heat.style.opacity = (0.35 * s).toFixed(3);
      track.appendChild(heat);
    }
    for (const seg of doc.segments.filter((s) => s.label === label)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "segment";
      button.style.left = pct(seg.start);
      button.style.width = pct(seg.end - seg.start);
      button.title = `${label}: ${seg.start.toFixed(1)}–${seg.end.toFixed(1)} s (peak ${seg.peak_score.toFixed(2)})`;
      button.addEventListener("click", () => { player.currentTime = seg.start; player.play().catch(() => {}); });
      track.appendChild(button);
    }
    const head = document.createElement("span");
    head.className = "playhead";
    track.appendChild(head);
    lane.append(name, track);
    lanes.appendChild(lane);
  }
  player.ontimeupdate = () => {
    for (const head of lanes.querySelectorAll(".playhead")) head.style.left = pct(player.currentTime);
  };
}

// --- webcam over the WebSocket ---------------------------------------------------------------------
let socket = null;
let stream = null;
let timer = null;

function stopWebcam() {
  if (timer) clearInterval(timer);
  timer = null;
  if (socket) socket.close();
  socket = null;
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("cam-start").disabled = false;
  $("cam-stop").disabled = true;
}

$("cam-stop").addEventListener("click", () => { stopWebcam(); setStatus("Webcam stopped."); });

$("cam-start").addEventListener("click", async () => {
  if (labels().length === 0) { setStatus("Name at least one action (one per line).", true); return; }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    setStatus(`No webcam: ${err.message}`, true);
    return;
  }
  const camera = $("camera");
  camera.srcObject = stream;
  $("cam-start").disabled = true;
  $("cam-stop").disabled = false;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  socket = new WebSocket(`${scheme}://${location.host}/v1/watch${query}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => socket.send(JSON.stringify({ labels: labels(), top_k: topK() }));
  socket.onclose = (event) => {
    if (timer) { setStatus(`Webcam connection closed${event.reason ? `: ${event.reason}` : ""}.`, true); stopWebcam(); }
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "error") setStatus(message.error, true);
    else if (message.type === "ready") {
      setStatus(`Watching: ${message.frames} frames over ${message.window} s, updated every ${message.every} s…`);
      timer = setInterval(sendFrame, 1000 / message.fps);
    } else if (message.type === "update") {
      const results = Object.entries(message.probs).map(([label, prob]) => ({ label, prob }));
      results.sort((a, b) => b.prob - a.prob);
      showRanking(results);
      const seen = message.detected.length ? message.detected.join(", ") : "nothing detected";
      setStatus(`Live: ${seen} (latency ${(1000 * message.latency).toFixed(0)} ms).`);
    }
  };
});

const canvas = document.createElement("canvas");
function sendFrame() {
  const camera = $("camera");
  if (!socket || socket.readyState !== WebSocket.OPEN || !camera.videoWidth) return;
  const scale = Math.min(1, 480 / camera.videoWidth); // the model sees 224 px: no need to send more
  canvas.width = Math.round(camera.videoWidth * scale);
  canvas.height = Math.round(camera.videoHeight * scale);
  canvas.getContext("2d").drawImage(camera, 0, 0, canvas.width, canvas.height);
  const stamp = performance.now() / 1000;
  canvas.toBlob(async (blob) => {
    if (!blob || !socket || socket.readyState !== WebSocket.OPEN) return;
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    const message = new Uint8Array(8 + jpeg.length);
    new DataView(message.buffer).setFloat64(0, stamp, true);
    message.set(jpeg, 8);
    socket.send(message);
  }, "image/jpeg", 0.8);
}

start();
