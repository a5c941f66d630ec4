// The live dashboard: the group's figures from /dashboard/events (server-sent events).
"use strict";

const HISTORY = 60;            // samples of lag kept per partition (one a second)
const lagHistory = new Map();  // "topic[p]" -> [lag, ...]

const $ = (id) => document.getElementById(id);
const fmt = (n, digits = 1) => (n === null || n === undefined) ? "-"
  : Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });

function cell(text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  return td;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

function parts(active) {
  return Object.entries(active).map(([t, ps]) => `${t} ${ps.join(",")}`).join("; ") || "none";
}

function spark(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${HISTORY} 20`);
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...values);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) =>
    `${HISTORY - values.length + i},${(20 - (v / max) * 18 - 1).toFixed(1)}`).join(" "));
  svg.append(line);
  const td = document.createElement("td");
  td.append(svg);
  return td;
}

function render(group) {
  const workers = group.workers || [];
  let eventsS = 0, events = 0, lag = 0, rebalances = 0, errors = 0;
  let decode = 0, dead = 0, send = 0, crashes = 0;
  const agents = new Map(), tables = new Map(), lagRows = [], errorItems = [];
  for (const w of workers) {
    eventsS += w.events_s; events += w.events_total; rebalances += w.rebalances;
    errors += w.decode_errors + w.send_errors;
    decode += w.decode_errors; dead += w.dead_lettered; send += w.send_errors;
    for (const [name, a] of Object.entries(w.agents)) {
      const sum = agents.get(name) || { events_s: 0, events: 0, ms: [], crashes: 0 };
      sum.events_s += a.events_s; sum.events += a.events; sum.crashes += a.crashes;
      if (a.processing_ms !== null) sum.ms.push(a.processing_ms);
      agents.set(name, sum);
      errors += a.crashes; crashes += a.crashes;
    }
    for (const [name, t] of Object.entries(w.tables)) {
      const sum = tables.get(name) || { keys: 0, changelog_records: 0 };
      sum.keys += t.keys; sum.changelog_records += t.changelog_records;
      tables.set(name, sum);
    }
    for (const [tp, n] of Object.entries(w.lag)) {
      lag += n;
      const history = lagHistory.get(tp) || [];
      history.push(n);
      if (history.length > HISTORY) history.shift();
      lagHistory.set(tp, history);
      lagRows.push([cell(tp), cell(w.url), cell(fmt(n), true), spark(history)]);
    }
    for (const e of w.errors) {
      errorItems.push(`${new Date(e.time * 1000).toLocaleTimeString()} ${w.url} ${e.logger}: ${e.message}`);
    }
  }
  $("t-workers").textContent = workers.length;
  $("t-events-s").textContent = fmt(eventsS);
  $("t-events").textContent = fmt(events);
  $("t-lag").textContent = fmt(lag);
  $("t-rebalances").textContent = fmt(rebalances);
  $("t-errors").textContent = fmt(errors);
  $("c-decode").textContent = fmt(decode);
  $("c-dead").textContent = fmt(dead);
  $("c-send").textContent = fmt(send);
  $("c-crashes").textContent = fmt(crashes);
  fill("workers", workers.map((w) => [
    cell(w.url), cell(parts(w.active)), cell(w.standby.join(",") || "none"),
    cell(fmt(w.events_s), true),
    cell(w.recovery ? `${fmt(w.recovery.left)} left, ${fmt(w.recovery.rate)}/s` : "done"),
    cell(fmt(w.rebalances), true),
  ]));
  fill("agents", [...agents].map(([name, a]) => [
    cell(name), cell(fmt(a.events_s), true), cell(fmt(a.events), true),
    cell(a.ms.length ? fmt(a.ms.reduce((x, y) => x + y, 0) / a.ms.length, 3) : "-", true),
    cell(fmt(a.crashes), true),
  ]));
  fill("tables", [...tables].map(([name, t]) => [
    cell(name), cell(fmt(t.keys), true), cell(fmt(t.changelog_records), true),
  ]));
  lagRows.sort((a, b) => a[0].textContent.localeCompare(b[0].textContent, "en", { numeric: true }));
  fill("lag", lagRows);
  const unreachable = Object.entries(group.unreachable || {});
  $("unreachable").textContent = unreachable.length
    ? "unreachable: " + unreachable.map(([u, why]) => `${u} (${why})`).join(", ") : "";
  $("errors").replaceChildren(...errorItems.slice(-10).map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  $("error-counts").textContent = group.error ? `(${group.error})` : "";
}

function connect() {
  const source = new EventSource("/dashboard/events");
  source.onopen = () => { $("status").textContent = "live"; $("status").className = "status live"; };
  source.onmessage = (message) => {
    const group = JSON.parse(message.data);
    render(group);
    $("status").textContent = `live · ${new Date(group.time * 1000).toLocaleTimeString()}`;
  };
  source.onerror = () => { $("status").textContent = "reconnecting…"; $("status").className = "status down"; };
}

connect();
