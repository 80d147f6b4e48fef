// SwiftDeploy dashboard: one EventSource to the CLI, charts drawn by hand
// in SVG. Every text from the daemon goes in with textContent, never as
// markup.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const SVG = "http://www.w3.org/2000/svg";
const W = 800, H = 180, L = 48, R = 12, T = 12, B = 24; // chart box
const SPAN = 10 * 60 * 1000; // the charts show the last ten minutes

const state = { status: null, whoami: null, points: [], weights: [], events: [], chain: null, now: Date.now() };

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function badge(text, cls) { return el("span", { class: "badge " + (cls || "") }, text); }
function hhmmss(t) { return new Date(t).toISOString().slice(11, 19); }

// connect keeps one stream open; the browser reconnects by itself.
function connect() {
  const es = new EventSource("/events?token=" + encodeURIComponent(token));
  const conn = document.getElementById("conn");
  es.onopen = () => { conn.textContent = "live"; conn.className = "conn"; };
  es.onerror = () => { conn.textContent = "disconnected from swiftctl dashboard; retrying…"; conn.className = "conn err"; };
  es.onmessage = (m) => apply(JSON.parse(m.data));
}

function apply(u) {
  if (u.init) { state.points = []; state.weights = []; state.events = []; }
  if (u.whoami) state.whoami = u.whoami;
  if (u.status) state.status = u.status;
  if (u.chain) state.chain = u.chain;
  state.now = Date.parse(u.now);
  for (const p of u.points || []) { p.t = Date.parse(p.t); state.points.push(p); }
  for (const w of u.weights || []) { w.t = Date.parse(w.t); state.weights.push(w); }
  for (const e of u.events || []) { e.t = Date.parse(e.t); state.events.push(e); }
  const conn = document.getElementById("conn");
  if (u.error) { conn.textContent = "daemon: " + u.error; conn.className = "conn err"; }
  else if (!u.init) { conn.textContent = "live, updated " + hhmmss(state.now) + " UTC"; conn.className = "conn"; }
  render();
}

function render() {
  const s = state.status;
  renderHeader(s);
  if (s) { renderPolicies(s); renderRollout(s); renderContainers(s); }
  renderWeight();
  renderRED();
  renderTimeline();
}

function renderHeader(s) {
  const who = state.whoami;
  document.getElementById("who").textContent = who ? who.user + " (" + who.role + ")" : "";
  const canOperate = who && (who.role === "operate" || who.role === "admin");
  document.getElementById("actions-box").hidden = !canOperate;
  if (!s) return;
  document.getElementById("project").textContent = "· " + s.project;
  const sum = document.getElementById("summary");
  clear(sum);
  sum.append(badge(s.mode || "nothing serves", s.mode === "canary" ? "warn" : ""));
  if (s.mode === "canary") sum.append(badge("canary " + s.canary_weight + "%", "warn"));
  sum.append(badge(s.converged ? "converged" : "converging", s.converged ? "ok" : "warn"));
  if (s.down) sum.append(badge("down", "bad"));
  if (s.journal && s.journal.error) sum.append(badge("journal failing", "bad"));
}

const policyNames = { infrastructure: "Infrastructure", canary_safety: "Canary Safety", cluster: "Cluster" };

function renderPolicies(s) {
  const box = document.getElementById("policies");
  clear(box);
  const list = s.policies || [];
  if (!list.length) box.append(el("p", {}, "no decision yet"));
  for (const d of list) {
    const div = el("div", { class: "policy", "data-policy": d.policy });
    div.append(el("strong", {}, (policyNames[d.policy] || d.policy) + ": "));
    div.append(badge(d.allowed ? "PASS" : "FAIL", d.allowed ? "ok" : "bad"));
    if (!d.allowed && d.reasons) {
      const ul = el("ul");
      for (const r of d.reasons) ul.append(el("li", {}, r));
      div.append(ul);
    }
    box.append(div);
  }
  if (s.denial && !s.denial.allowed) {
    const div = el("div", { class: "policy" });
    div.append(el("strong", {}, "Last deploy: "), badge("DENIED", "bad"));
    const ul = el("ul");
    for (const r of s.denial.reasons || []) ul.append(el("li", {}, r));
    div.append(ul);
    box.append(div);
  }
}

function renderRollout(s) {
  const r = s.rollout, box = document.getElementById("rollout");
  clear(box);
  if (!r) {
    box.textContent = s.mode === "canary" ? "canary " + s.canary_image + " at " + s.canary_weight + "% (no steps)" : "no canary";
  } else {
    box.append(el("div", {}, r.image + ": step " + r.step + "/" + r.steps + " at " + r.weight + "%, " + r.phase +
      (r.next_in ? ", next in " + r.next_in : "")));
    box.append(el("div", {}, "failed checks " + r.failed_checks + "/" + r.failure_limit + " (every " + r.interval + ")"));
    if (r.last_check) {
      box.append(el("div", { class: r.last_check.outcome === "pass" ? "" : "check-failed" },
        "last check " + r.last_check.outcome.toUpperCase() + " at " + hhmmss(Date.parse(r.last_check.at)) +
        (r.last_check.reasons && r.last_check.reasons.length ? ": " + r.last_check.reasons.join("; ") : "")));
    }
    if (r.aborted) box.append(el("div", { class: "check-failed" }, "ABORTED" + (r.aborted.by ? " by " + r.aborted.by : "") + ": " + (r.aborted.reasons || []).join("; ")));
  }
  const pend = document.getElementById("pending");
  clear(pend);
  const items = (s.pending || []).slice();
  if (s.manifest_errors) for (const e of s.manifest_errors) items.push("manifest rejected: " + e);
  if (s.engine_error) items.push("engine: " + s.engine_error);
  if (!items.length) items.push(s.converged ? "nothing: converged" : "…");
  for (const p of items) pend.append(el("li", {}, p));
}

function renderContainers(s) {
  const tb = document.querySelector("#containers tbody");
  clear(tb);
  for (const c of s.containers || []) {
    const tr = el("tr");
    for (const v of [c.name, c.track || c.role, c.image, c.state]) tr.append(el("td", {}, v || ""));
    tb.append(tr);
  }
}

// axes draws the frame of a chart over [t0, t1] × [0, ymax].
function axes(node, t0, t1, ymax, fmt) {
  clear(node);
  const x = (t) => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => H - B - (H - T - B) * Math.min(v, ymax) / ymax;
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    node.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    node.append(svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  node.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  node.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4;
    node.append(svg("text", { x: x(t), y: H - 6, "text-anchor": "middle" }, hhmmss(t)));
  }
  return { x, y };
}

function range() {
  const t1 = state.now || Date.now();
  let t0 = t1 - SPAN;
  const first = Math.min(...[state.weights[0], state.points[0]].filter(Boolean).map((p) => p.t), t1);
  if (first > t0) t0 = first;
  if (t1 - t0 < 30000) t0 = t1 - 30000;
  return [t0, t1];
}

const markerEvents = ["canary_step", "check_passed", "check_failed", "check_grace", "rollout_paused", "rollout_resumed", "aborted", "rolled_back", "promoted"];
const markerLabel = { canary_step: "step", rollout_paused: "pause", rollout_resumed: "resume", aborted: "ABORT", rolled_back: "ROLLBACK", promoted: "PROMOTED" };

function renderWeight() {
  const node = document.getElementById("weight-chart");
  const [t0, t1] = range();
  const { x, y } = axes(node, t0, t1, 100, (v) => v + "%");
  // The polled weights, and the journal's moments a weight took effect
  // (a step, an abort, a rollback, a promotion): the chart changes where
  // nginx started serving it, not at the next poll.
  const fromEvents = state.events.filter((e) => e.t >= t0).flatMap((e) => {
    if (e.event === "canary_step" && e.details && typeof e.details.weight === "number") return [{ t: e.t, weight: e.details.weight }];
    if (["aborted", "rolled_back", "promoted"].includes(e.event)) return [{ t: e.t, weight: 0 }];
    return [];
  });
  const ws = state.weights.filter((w) => w.t >= t0).concat(fromEvents).sort((a, b) => a.t - b.t);
  if (ws.length) {
    // A step line: the weight holds until the next reading.
    let d = "";
    ws.forEach((w, i) => {
      d += (i ? "H" + x(w.t) + "V" : "M" + x(w.t) + ",") + y(w.weight);
    });
    d += "H" + x(t1);
    node.append(svg("path", { class: "wline", d }));
    // A point where the weight changed (and the first one).
    let last = null;
    for (const w of ws) {
      if (w.weight !== last) {
        const c = svg("circle", { class: "wpoint", cx: x(w.t), cy: y(w.weight), r: 4, "data-weight": w.weight, "data-t": new Date(w.t).toISOString() });
        c.append(svg("title", {}, w.weight + "% at " + hhmmss(w.t)));
        node.append(c);
        last = w.weight;
      }
    }
  }
  const list = document.getElementById("check-list");
  clear(list);
  let row = 0;
  for (const e of state.events) {
    if (e.t < t0 || !markerEvents.includes(e.event)) continue;
    const g = svg("g", { class: "marker m-" + e.event, "data-event": e.event, "data-t": new Date(e.t).toISOString() });
    const reasons = (e.details && e.details.reasons) || [];
    if (reasons.length) g.setAttribute("data-reasons", reasons.join("; "));
    if (e.event.startsWith("check_")) {
      g.append(svg("circle", { cx: x(e.t), cy: H - B - 6, r: e.event === "check_failed" ? 5 : 3 }));
    } else {
      g.append(svg("line", { x1: x(e.t), x2: x(e.t), y1: T, y2: H - B }));
      const right = x(e.t) > W - 90; // keep the label inside the chart
      g.append(svg("text", { x: x(e.t) + (right ? -3 : 3), y: T + 10 + 12 * (row++ % 3), "text-anchor": right ? "end" : "start" }, markerLabel[e.event] +
        (e.event === "canary_step" && e.details ? " " + e.details.weight + "%" : "")));
    }
    g.append(svg("title", {}, hhmmss(e.t) + " " + e.message));
    node.append(g);
    if (e.event === "check_failed" || e.event === "aborted") {
      list.prepend(el("li", { class: "check-failed", "data-event": e.event }, hhmmss(e.t) + " " + (e.event === "aborted" ? "abort: " : "check failed: ") + (reasons.join("; ") || e.message)));
    }
  }
}

// thresholds are the canary-safety policy's, from its last decision's input.
function thresholds() {
  const d = ((state.status && state.status.policies) || []).find((p) => p.policy === "canary_safety");
  const t = (d && d.input && d.input.thresholds) || {};
  let err = typeof t.max_error_rate === "number" ? t.max_error_rate : 0.01;
  if (err > 1) err = err / 100;
  return { err, p99: typeof t.max_p99_ms === "number" ? t.max_p99_ms : 500 };
}

const colors = { stable: "#3559e0", canary: "#e07a16" };
const palette = ["#7a5af8", "#0e9384", "#c11574", "#4e5ba6"];

function renderRED() {
  const [t0, t1] = range();
  const th = thresholds();
  const series = new Map(); // track/revision → points
  for (const p of state.points) {
    if (p.t < t0) continue;
    const k = p.track + " " + (p.revision || "").slice(0, 8);
    if (!series.has(k)) series.set(k, { track: p.track, pts: [] });
    series.get(k).pts.push(p);
  }
  const draw = (id, field, pfield, ymin, fmt, threshold) => {
    const node = document.getElementById(id);
    let ymax = ymin;
    for (const s of series.values()) for (const p of s.pts) ymax = Math.max(ymax, p[field] || 0, p[pfield] || 0);
    if (threshold !== undefined) ymax = Math.max(ymax, threshold * 1.25);
    const { x, y } = axes(node, t0, t1, ymax * 1.05, fmt);
    if (threshold !== undefined) {
      node.append(svg("line", { class: "threshold", x1: L, x2: W - R, y1: y(threshold), y2: y(threshold) }));
      node.append(svg("text", { x: W - R - 2, y: y(threshold) - 3, "text-anchor": "end" }, "threshold " + fmt(threshold)));
    }
    let i = 0, ly = T + 10;
    for (const [name, s] of series) {
      const color = colors[s.track] && i < 2 ? colors[s.track] : palette[i % palette.length];
      i++;
      for (const [f, dash] of [[field, ""], [pfield, "5 4"]]) {
        const pts = s.pts.filter((p) => typeof p[f] === "number");
        if (!pts.length) continue;
        const path = svg("path", { class: "series", stroke: color, d: pts.map((p, j) => (j ? "L" : "M") + x(p.t) + "," + y(p[f])).join(""), "data-series": name + (dash ? " nginx" : " app") });
        if (dash) path.setAttribute("stroke-dasharray", dash);
        node.append(path);
      }
      node.append(svg("text", { x: L + 6, y: ly, fill: color }, name));
      ly += 13;
    }
  };
  draw("rps-chart", "rps", "proxy_rps", 1, (v) => v.toFixed(v < 10 ? 1 : 0));
  draw("err-chart", "err", "proxy_err", 0.01, (v) => (v * 100).toFixed(1) + "%", th.err);
  draw("p99-chart", "p99", "proxy_p99", 10, (v) => v.toFixed(0) + "ms", th.p99);
}

function renderTimeline() {
  const ol = document.getElementById("timeline");
  clear(ol);
  for (const e of state.events.slice(-200).reverse()) {
    const li = el("li", { "data-event": e.event });
    li.append(el("time", {}, hhmmss(e.t)), el("span", { class: "ev" }, e.event), document.createTextNode(" " + e.message + (e.user ? " (" + e.user + ")" : "")));
    ol.append(li);
  }
  const c = state.chain, b = document.getElementById("chain");
  if (!c) return;
  if (c.error) { b.textContent = "chain NOT verified: " + c.error; b.className = "badge bad"; }
  else { b.textContent = "chain verified (" + c.lines + " records, " + hhmmss(Date.parse(c.checked)) + ")"; b.className = "badge ok"; }
}

async function act(name, button) {
  const out = document.getElementById("action-result");
  out.className = "result";
  out.textContent = name + "…";
  for (const b of document.querySelectorAll("#actions button")) b.disabled = true;
  try {
    const resp = await fetch("/action/" + name, { method: "POST", headers: { "X-Dashboard-Token": token } });
    const r = await resp.json();
    if (r.denied && r.denied.length) {
      out.className = "result denied";
      out.textContent = name.toUpperCase() + " DENIED by the gate:\n" + r.denied.map((x) => "• " + x).join("\n");
    } else if (r.error) {
      out.className = "result error";
      out.textContent = name + " failed: " + r.error;
    } else {
      out.className = "result ok";
      out.textContent = (r.lines || []).join("\n") || name + ": done";
    }
  } catch (e) {
    out.className = "result error";
    out.textContent = name + ": " + e;
  } finally {
    for (const b of document.querySelectorAll("#actions button")) b.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#actions button")) b.addEventListener("click", () => act(b.dataset.action, b));
  connect();
});
