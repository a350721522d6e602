// treaty dashboard: renders the snapshots the server streams. Every value
// from the node or a peer is set with textContent or setAttribute, never as
// HTML, so peer-chosen text cannot become markup.
//
// The token comes in the URL's fragment (#token=…, which the browser sends
// to no server), moves to this tab's sessionStorage (readable by this origin
// only: this host and port) and goes out as an Authorization header. No
// cookie: a browser would send it to every port of 127.0.0.1.
"use strict";

const TOKEN_KEY = "treaty-dashboard-token";

function takeToken() {
  const h = location.hash;
  if (h.startsWith("#token=")) {
    try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(h.slice(7))); } catch (err) { console.error(err); }
    // Out of the address bar and the history entry.
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();

// A #token= URL pasted into this tab after the page loaded changes only the
// fragment: load the page again with the new token.
window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#token=")) {
    takeToken();
    location.reload();
  }
});

class Unauthorized extends Error {}

async function get(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store", credentials: "omit" });
  if (r.status === 401) throw new Unauthorized(await r.text());
  if (!r.ok) throw new Error(await r.text());
  return r;
}

function needToken(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  const box = $("login");
  box.hidden = false;
  $("login-detail").textContent = msg || "";
}

const SVG = "http://www.w3.org/2000/svg";

function $(id) { return document.getElementById(id); }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null || text === "" ? "-" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function shortID(id) { return id && id.length > 20 ? id.slice(0, 16) + "…" : id; }

function time(t) {
  const d = new Date(t);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}

function peerLabel(e) { return e.peer_name || shortID(e.peer); }

// rendered keeps what each table last showed: a table whose rows did not
// change is left alone, so a click on it is not lost to a re-render.
const rendered = new Map();

function fill(id, rows, render) {
  const key = JSON.stringify(rows || []);
  if (rendered.get(id) === key) return;
  rendered.set(id, key);
  const body = $(id).tBodies[0];
  const fresh = document.createElement("tbody");
  for (const r of rows || []) fresh.appendChild(render(r));
  body.replaceWith(fresh);
}

function sparkline(values) {
  const w = 120, h = 24;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  if (values && values.length > 0) {
    const step = values.length > 1 ? w / (values.length - 1) : 0;
    const pts = values.map((v, i) => {
      const y = h - 2 - Math.max(0, Math.min(1, Number(v) || 0)) * (h - 4);
      return (i * step).toFixed(1) + "," + y.toFixed(1);
    });
    if (pts.length === 1) pts.push(w + "," + pts[0].split(",")[1]);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function entryRow(e, cols) {
  const tr = document.createElement("tr");
  tr.dataset.index = e.index;
  for (const c of cols) {
    const v = c(e);
    cell(tr, v, v === "refused" ? "refused" : "");
  }
  return tr;
}

function render(s) {
  const n = s.node || {};
  $("node").textContent = n.up ? n.name + " " + shortID(n.id) + " " + n.addr : "node not answering: " + (n.error || "");

  const v = s.verify || { state: "unknown", detail: "" };
  const badge = $("verify");
  badge.textContent = v.state;
  badge.className = "badge " + (v.state === "ok" || v.state === "failed" ? v.state : "unknown");
  $("verify-detail").textContent = v.detail || "";

  fill("peers", s.peers, (p) => {
    const tr = document.createElement("tr");
    tr.dataset.id = p.id;
    cell(tr, p.name);
    cell(tr, shortID(p.id), "id").title = p.id;
    cell(tr, p.addr);
    cell(tr, p.breaker, p.breaker === "open" ? "refused" : "");
    cell(tr, p.unwitnessed ? p.unwitnessed + " unjudged in a row" : "ok", p.unwitnessed_alert ? "refused" : "");
    const t = p.trust;
    cell(tr, t ? t.level + (t.quarantined ? " (quarantined)" : "") : "");
    cell(tr, t ? t.score.toFixed(3) : "");
    cell(tr, "").replaceChildren(sparkline(p.history));
    return tr;
  });

  fill("calls", s.calls, (e) => entryRow(e, [
    (e) => e.index, (e) => time(e.time), (e) => e.kind.replace(/^call\./, ""), (e) => e.direction,
    peerLabel, (e) => e.capability, (e) => e.outcome, (e) => e.stage]));

  fill("refusals", s.refusals, (e) => entryRow(e, [
    (e) => e.index, (e) => time(e.time), (e) => e.kind, peerLabel, (e) => e.capability, (e) => e.stage]));

  $("groups-box").hidden = !s.has_groups;
  fill("groups", s.groups, (g) => {
    const tr = document.createElement("tr");
    cell(tr, g.name);
    cell(tr, g.mode);
    cell(tr, g.epoch);
    cell(tr, g.leader ? shortID(g.leader) : "");
    cell(tr, g.term);
    cell(tr, g.last_index);
    cell(tr, g.error ? "error: " + g.error : g.healthy ? "healthy" : "unhealthy", g.healthy ? "" : "refused");
    cell(tr, (g.members || []).map((m) => (m.name || shortID(m.id)) + (m.reachable ? "" : " (unreachable)")).join(", "));
    return tr;
  });

  fill("motions", s.motions, (m) => {
    const tr = document.createElement("tr");
    cell(tr, m.group);
    cell(tr, m.name);
    cell(tr, m.kind);
    cell(tr, m.subject ? shortID(m.subject) : "");
    cell(tr, m.outcome, m.outcome === "failed" ? "refused" : "");
    cell(tr, m.yes);
    cell(tr, m.no);
    cell(tr, m.quorum);
    cell(tr, m.opened);
    cell(tr, m.decided);
    return tr;
  });

  $("members-box").hidden = !s.has_members;
  fill("members", s.members, (m) => {
    const tr = document.createElement("tr");
    tr.dataset.id = m.id;
    cell(tr, m.name);
    cell(tr, shortID(m.id), "id").title = m.id;
    cell(tr, m.source);
    cell(tr, m.status, m.status === "member" ? "" : "refused");
    cell(tr, m.state, m.state === "suspect" || m.state === "dead" ? "refused" : "");
    cell(tr, m.org);
    cell(tr, (m.addrs && m.addrs.length ? m.addrs : [m.addr]).join(", "));
    return tr;
  });

  $("audit-size").textContent = "(" + (s.audit_size || 0) + " in the log; newest first; click one for its inclusion proof)";
  fill("audit", s.audit, (e) => {
    const tr = entryRow(e, [
      (e) => e.index, (e) => time(e.time), (e) => e.kind, (e) => e.direction, peerLabel,
      (e) => e.capability, (e) => e.outcome, (e) => e.stage]);
    tr.className = "click";
    tr.addEventListener("click", () => prove(e.index));
    return tr;
  });
}

async function prove(index) {
  const box = $("proof");
  box.hidden = false;
  $("proof-index").textContent = String(index);
  const valid = $("proof-valid");
  valid.textContent = "…";
  valid.className = "badge unknown";
  try {
    const p = await (await get("/api/prove?index=" + encodeURIComponent(index))).json();
    valid.textContent = p.valid ? "valid" : "INVALID";
    valid.className = "badge " + (p.valid ? "ok" : "failed");
    const lines = [
      "leaf: " + p.leaf_text,
      "tree size: " + p.proof.size,
      "root: " + p.proof.root,
      "path (" + p.proof.proof.length + " hashes):",
      ...p.proof.proof.map((h) => "  " + h),
      "signed checkpoint:",
      p.proof.checkpoint,
    ];
    if (p.error) lines.unshift("error: " + p.error);
    $("proof-body").textContent = lines.join("\n");
  } catch (err) {
    valid.textContent = "error";
    valid.className = "badge failed";
    $("proof-body").textContent = String(err.message || err);
  }
}

// maxEvent bounds one event of the stream as this page buffers it.
const maxEvent = 64 << 20;

// stream reads the server-sent events of /events (EventSource cannot send
// a header) and renders each snapshot; it returns when the stream ends.
async function stream(live) {
  const r = await get("/events");
  live.textContent = "live";
  live.className = "badge live";
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (event === "snapshot" && data.length > 0) {
        try { render(JSON.parse(data.join("\n"))); } catch (err) { console.error(err); }
      }
    }
    if (buf.length > maxEvent) throw new Error("event stream: an event over " + maxEvent + " bytes");
  }
}

async function connect() {
  const live = $("live");
  if (!token) {
    needToken("");
    return;
  }
  for (;;) {
    try {
      await stream(live);
    } catch (err) {
      if (err instanceof Unauthorized) {
        live.textContent = "offline";
        live.className = "badge offline";
        needToken(err.message);
        return;
      }
      console.error(err);
    }
    live.textContent = "offline";
    live.className = "badge offline";
    await new Promise((done) => setTimeout(done, 1000));
  }
}

connect();
