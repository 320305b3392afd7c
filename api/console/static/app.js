// Keel console: a hash-routed single page over the public API (api.js). Plain DOM, no framework.
import { api, ApiError, claims, setToken, signOut, stream, takeTokenFromFragment, token } from "./api.js";

const main = document.getElementById("main");

// h("tag.class", {attr}, ...children): build elements without innerHTML (values are never parsed as HTML).
function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the console's CSP, a style attribute is not
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false)
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const pct = (x) => `${(Number(x) * 100).toFixed(1)} %`;
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const hhmm = (t) => String(t).slice(0, 5);
const isoDay = (d) => d.toISOString().slice(0, 10);
const addDays = (day, n) => { const d = new Date(`${day}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + n); return isoDay(d); };
const message = (err) => (err instanceof ApiError ? err.message : `The request failed: ${err.message}`);

function page(title, ...children) {
  document.title = `${title} · Keel console`;
  main.replaceChildren(h("h1", { text: title }), ...children);
  main.focus({ preventScroll: true });
}

function table(caption, columns, rows) {
  return h("table", {},
    h("caption.muted", { style: "text-align:left" }, caption),
    h("thead", {}, h("tr", {}, columns.map(([label, , cls]) => h("th", { scope: "col", class: cls }, label)))),
    h("tbody", {}, rows.length
      ? rows.map((row) => h("tr", {}, columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing to show."))));
}

// --- sign-in ---------------------------------------------------------------------------------------

function signInPage() {
  document.getElementById("nav").hidden = true;
  const alert = h("div.alert", { role: "alert" });
  const field = h("textarea", { id: "token", name: "token", required: true, autocomplete: "off", spellcheck: "false" });
  const form = h("form.card.signin", {
    onsubmit: async (event) => {
      event.preventDefault();
      setToken(field.value);
      try {
        await api("GET", "/api/ready");
        location.hash = "#/tower";
        route();
      } catch (err) {
        signOut();
        alert.textContent = err instanceof ApiError && err.status === 401 ? "That token was refused (expired or not signed by this server)." : message(err);
      }
    },
  },
    h("h2", { text: "Sign in with a bearer token" }),
    h("p.muted", {}, "Keel has no passwords. Paste a token issued for you — in development, ",
      h("code", { text: "keel token --console" }), " or ", h("code", { text: "keel clinic create" }),
      " prints a link that signs you in directly."),
    h("label", { for: "token" }, "Bearer token"), field, alert,
    h("p", {}, h("button", { type: "submit" }, "Sign in")));
  document.title = "Sign in · Keel console";
  main.replaceChildren(form);
}

// --- control tower ---------------------------------------------------------------------------------

const KPI_DEFINITIONS = {
  conversion_rate: ["Conversion rate", "Leads added this month that are now converted, out of all leads added this month."],
  cro_success_rate: ["CRO success rate", "Of this month's leads the CRO team handled (past new inquiry), the share that reached first consult, follow-up or converted."],
  churn_rate: ["Churn rate", "This month's leads that are lost or not interested, out of all leads added this month."],
  avg_days_to_convert: ["Avg. days to convert", "Average days from a lead's date added to the registration of its patient, for patients registered this month from a lead."],
};

function chart(days) {
  const series = [["leads_created", "Leads", "#2f6fb4"], ["appointments_booked", "Appointments", "#d9822b"]];
  const width = 720, height = 220, pad = 28, n = Math.max(days.length, 1);
  const top = Math.max(1, ...days.flatMap((d) => series.map(([key]) => d[key])));
  const bw = (width - pad * 2) / n / 2.4;
  const y = (v) => height - pad - (v / top) * (height - pad * 2);
  const svgNS = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, text) => {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": `Leads and appointments per day, ${days[0]?.day ?? ""} to ${days.at(-1)?.day ?? ""}` });
  svg.append(s("line", { x1: pad, x2: width - pad, y1: y(0), y2: y(0), stroke: "#8b96a3" }));
  svg.append(s("text", { x: 2, y: y(top) + 4, "font-size": 11, fill: "#56606b" }, String(top)));
  days.forEach((d, i) => {
    const x0 = pad + ((width - pad * 2) / n) * i;
    series.forEach(([key, label, color], j) => {
      const bar = s("rect", { x: x0 + j * bw, y: y(d[key]), width: bw * 0.95, height: y(0) - y(d[key]), fill: color });
      bar.append(s("title", {}, `${d.day}: ${d[key]} ${label.toLowerCase()}`));
      svg.append(bar);
    });
    if (n <= 14 || i % Math.ceil(n / 10) === 0)
      svg.append(s("text", { x: x0, y: height - 8, "font-size": 10, fill: "#56606b" }, d.day.slice(5)));
  });
  return h("figure", { style: "margin:0" }, svg,
    h("figcaption.legend", {}, series.map(([, label, color]) => h("span", { style: `--c:${color}` }, label))));
}

async function towerPage() {
  const role = claims()?.role;
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const body = h("div", {}, h("p.muted", { text: "Loading…" }));
  const to = h("input", { type: "date", id: "range-to", name: "to" });
  const from = h("input", { type: "date", id: "range-from", name: "from" });
  const refresh = role === "admin" ? h("button.secondary", { type: "button", id: "refresh", onclick: async () => {
    refresh.disabled = true; notice.textContent = "Refreshing the views…";
    try {
      const result = await api("POST", "/api/control-tower/refresh");
      notice.textContent = `Refresh ${result.outcome} in ${Math.round(result.duration_ms)} ms.`;
      await load();
    } catch (err) { notice.textContent = ""; alert.textContent = message(err); }
    refresh.disabled = false;
  } }, "Refresh now") : null;
  const dailyBox = h("div", {});

  async function loadDaily() {
    try {
      const daily = await api("GET", `/api/control-tower/daily?from=${from.value}&to=${to.value}`);
      dailyBox.replaceChildren(chart(daily.days),
        h("p.muted", { id: "daily-totals" }, `${daily.totals.leads_created} leads, ${daily.totals.appointments_booked} appointments from ${daily.from} to ${daily.to}.`));
    } catch (err) { dailyBox.replaceChildren(h("div.alert", { role: "alert" }, message(err))); }
  }

  async function load() {
    alert.textContent = "";
    try {
      const [summary, doctors, queue] = await Promise.all([
        api("GET", "/api/control-tower/summary"),
        api("GET", "/api/control-tower/doctors"),
        api("GET", "/api/control-tower/intervention-queue?limit=20"),
      ]);
      if (!to.value) { to.value = summary.today; from.value = addDays(summary.today, -29); }
      const funnelTop = Math.max(1, summary.funnel[0].count);
      body.replaceChildren(
        h("p.muted", { id: "refreshed" }, `Figures as of ${when(summary.refreshed_at)} (refreshed ${summary.stale_seconds} s ago); month ${summary.period.from} to ${summary.period.to}, clinic time zone ${summary.timezone}.`),
        h("dl.kpis", {}, Object.entries(KPI_DEFINITIONS).map(([key, [label, definition]]) =>
          h("div.kpi", { "data-kpi": key },
            h("dt", {}, h("abbr", { title: definition }, label)),
            h("dd", {}, key === "avg_days_to_convert" ? String(summary.kpis[key]) : pct(summary.kpis[key]))))),
        h("div.grid", {},
          h("section.card", { "aria-labelledby": "h-funnel" }, h("h2", { id: "h-funnel", text: "Funnel this month (cumulative)" }),
            h("ol.funnel", {}, summary.funnel.map((stage) => h("li", { "data-stage": stage.stage },
              `${stage.stage.replace("_", " ")}: ${stage.count}`,
              h("div.bar", { style: `width:${Math.max(1, (stage.count / funnelTop) * 100)}%`, "aria-hidden": "true" }))))),
          h("section.card", { "aria-labelledby": "h-today" }, h("h2", { id: "h-today", text: `Appointments today (${summary.appointments_today.total})` }),
            table("By status", [["Status", (r) => r.status.replace("_", " ")], ["Count", (r) => r.count, "num"]], summary.appointments_today.by_status))),
        h("section.card", { "aria-labelledby": "h-daily" }, h("h2", { id: "h-daily", text: "Leads and appointments per day" }),
          h("form.row", { onsubmit: (e) => { e.preventDefault(); loadDaily(); } },
            h("label", { for: "range-from" }, "From", from), h("label", { for: "range-to" }, "To", to),
            h("button.secondary", { type: "submit" }, "Show")),
          dailyBox),
        h("section.card", { "aria-labelledby": "h-doctors" }, h("h2", { id: "h-doctors", text: `Doctor load, ${doctors.from} to ${doctors.to}` }),
          table("Busiest first", [["Doctor", (r) => r.name], ["Appointments", (r) => r.appointments, "num"],
            ["Completed", (r) => r.completed, "num"], ["No-show", (r) => r.no_show, "num"],
            ["Booked hours", (r) => (r.booked_minutes / 60).toFixed(1), "num"]], doctors.doctors)),
        h("section.card", { "aria-labelledby": "h-queue" }, h("h2", { id: "h-queue", text: `Intervention queue (${queue.total})` }),
          table(`Leads untouched for ${queue.min_days}+ days, oldest first`, [["Lead", (r) => r.name], ["Status", (r) => r.status],
            ["Days stalled", (r) => r.days_stalled, "num"], ["Assigned to", (r) => r.assigned_to_name || "—"]], queue.items)));
      await loadDaily();
    } catch (err) { body.replaceChildren(); alert.textContent = message(err); }
  }
  page("Control tower", h("div.row", {}, refresh, notice), alert, body);
  await load();
}

// --- today -----------------------------------------------------------------------------------------

async function todayPage() {
  const alert = h("div.alert", { role: "alert", id: "today-error" });
  const notice = h("div.notice", { role: "status" });
  const day = h("input", { type: "date", id: "day", name: "day", value: isoDay(new Date()) });
  const gridBox = h("div.card", {}, h("p.muted", { text: "Loading…" }));
  const doctorSel = h("select", { id: "book-doctor", name: "doctor_id", required: true });
  const patientSel = h("select", { id: "book-patient", name: "patient_id", required: true });
  const start = h("input", { type: "time", id: "book-start", name: "start_time", required: true, value: "10:00", step: 300 });
  const end = h("input", { type: "time", id: "book-end", name: "end_time", required: true, value: "10:30", step: 300 });
  let doctors = [];

  async function act(label, request) {
    alert.textContent = ""; notice.textContent = "";
    try { await request(); notice.textContent = label; await load(); }
    catch (err) { alert.textContent = message(err); }
  }

  function block(a) {
    const actions = [];
    if (a.status === "scheduled") actions.push(h("button.secondary", { type: "button", onclick: () => act("Checked in.", () => api("PATCH", `/api/appointments/${a.id}`, { status: "checked_in" })) }, "Check in"));
    if (a.status === "checked_in") actions.push(h("button.secondary", { type: "button", onclick: () => act("Completed.", () => api("PATCH", `/api/appointments/${a.id}`, { status: "completed" })) }, "Complete"));
    if (a.status === "scheduled" || a.status === "checked_in") actions.push(h("button.danger", { type: "button", onclick: () => {
      const reason = prompt(`Why is ${a.patient_name_snapshot}'s appointment cancelled?`, "Cancelled at the front desk");
      if (reason) act("Cancelled.", () => api("POST", `/api/appointments/${a.id}/cancel`, { reason }));
    } }, "Cancel"));
    const label = `${a.patient_name_snapshot}, ${hhmm(a.start_time)}–${hhmm(a.end_time)}, ${a.status.replace("_", " ")}`;
    return h(`div.appt.${a.status}`, { "data-appointment": a.id, "aria-label": label, role: "group" },
      h("strong", {}, a.patient_name_snapshot), h("div", {}, `${hhmm(a.start_time)}–${hhmm(a.end_time)} · ${a.status.replace("_", " ")}`),
      actions.length ? h("div.actions", {}, actions) : null);
  }

  async function load() {
    try {
      const list = await api("GET", `/api/appointments?date=${day.value}&limit=200`);
      const items = list.items;
      const minutes = (t) => Number(hhmm(t).slice(0, 2)) * 60 + Number(hhmm(t).slice(3));
      const first = Math.min(8 * 60, ...items.map((a) => minutes(a.start_time)));
      const last = Math.max(18 * 60, ...items.map((a) => minutes(a.end_time)));
      const startSlot = Math.floor(first / 30), slots = Math.ceil(last / 30) - startSlot;
      const grid = h("div.timegrid", { style: `grid-template-columns: 56px repeat(${Math.max(doctors.length, 1)}, minmax(150px, 1fr)); grid-template-rows: auto repeat(${slots}, minmax(34px, auto))` });
      grid.append(h("div.colhead", { style: "grid-column:1;grid-row:1" }, "Time"));
      doctors.forEach((d, i) => grid.append(h("div.colhead", { style: `grid-column:${i + 2};grid-row:1` }, d.name)));
      for (let i = 0; i < slots; i++) {
        const m = (startSlot + i) * 30;
        grid.append(h("div.slot", { style: `grid-column:1 / -1;grid-row:${i + 2}` }, `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`));
      }
      for (const a of items) {
        const col = doctors.findIndex((d) => d.id === a.doctor_id);
        const rowStart = Math.floor(minutes(a.start_time) / 30) - startSlot + 2;
        const rowEnd = Math.max(rowStart + 1, Math.ceil(minutes(a.end_time) / 30) - startSlot + 2);
        const el = block(a);
        el.style.gridColumn = String(col >= 0 ? col + 2 : 2);
        el.style.gridRow = `${rowStart} / ${rowEnd}`;
        grid.append(el);
      }
      gridBox.replaceChildren(h("h2", {}, `${items.length} appointment${items.length === 1 ? "" : "s"} on ${day.value}`), grid);
    } catch (err) { gridBox.replaceChildren(); alert.textContent = message(err); }
  }

  const form = h("form.card", { "aria-labelledby": "h-book", onsubmit: (event) => {
    event.preventDefault();
    act("Booked.", () => api("POST", "/api/appointments", { patient_id: patientSel.value, doctor_id: doctorSel.value,
      appointment_date: day.value, start_time: start.value, end_time: end.value }));
  } },
    h("h2", { id: "h-book", text: "Book an appointment" }),
    h("div.row", {}, h("label", { for: "book-patient" }, "Patient", patientSel), h("label", { for: "book-doctor" }, "Doctor", doctorSel),
      h("label", { for: "book-start" }, "Start", start), h("label", { for: "book-end" }, "End", end),
      h("button", { type: "submit", id: "book" }, "Book")));
  page("Today", h("div.row", {}, h("label", { for: "day" }, "Day", day)), alert, notice, form, gridBox);
  day.addEventListener("change", load);
  try {
    const [docs, patients] = await Promise.all([api("GET", "/api/doctors?limit=200"), api("GET", "/api/patients?limit=200")]);
    doctors = docs.items;
    doctorSel.replaceChildren(...doctors.map((d) => h("option", { value: d.id }, d.name)));
    patientSel.replaceChildren(...patients.items.map((p) => h("option", { value: p.id }, `${p.name} (${p.uhid})`)));
  } catch (err) { alert.textContent = message(err); }
  await load();
}

// --- assistant -------------------------------------------------------------------------------------

const CONVERSATION = "keel.conversation";
let replyAbort = null;

async function assistantPage() {
  const alert = h("div.alert", { role: "alert" });
  const list = h("ul.convs", {});
  const msgs = h("div.msgs", { id: "messages", role: "log", "aria-label": "Messages" });
  const box = h("textarea", { id: "chat-input", name: "message", rows: 3, required: true });
  const send = h("button", { type: "submit", id: "send" }, "Send");
  let current = sessionStorage.getItem(CONVERSATION);

  function bubble(role, text) {
    const body = h("span.text", {}, text);
    const state = h("span.state", {});
    const el = h(`div.msg.${role}`, {}, body, state);
    msgs.append(el);
    msgs.scrollTop = msgs.scrollHeight;
    return { el, body, state };
  }

  async function follow(messageId, view) {
    // Stream a reply until done or error; text arrives as deltas; `reset` means an attempt failed and
    // another is starting (retry). A reload resumes here: the stream replays the text so far.
    replyAbort?.abort();
    replyAbort = new AbortController();
    view.el.dataset.message = messageId;
    view.state.textContent = "thinking…";
    view.state.className = "state";
    try {
      await stream(`/api/internal-assistant/messages/${messageId}/events`, (event, data) => {
        if (event === "delta") { view.body.textContent += data.text; view.state.textContent = "writing…"; }
        else if (event === "reset") { view.body.textContent = ""; view.state.textContent = "retrying…"; }
        else if (event === "status" && data.status === "retrying") { view.state.textContent = `retrying (attempt ${data.attempt})…`; }
        else if (event === "done") { view.state.textContent = ""; if (data.content !== undefined) view.body.textContent = data.content; }
        else if (event === "error") { view.state.textContent = `failed: ${data.error || data.detail || "the reply could not be produced"}`; view.state.className = "state failed"; }
        msgs.scrollTop = msgs.scrollHeight;
      }, { signal: replyAbort.signal });
    } catch (err) {
      if (err.name !== "AbortError") { view.state.textContent = `failed: ${message(err)}`; view.state.className = "state failed"; }
    }
  }

  async function open(id) {
    current = id;
    if (id) sessionStorage.setItem(CONVERSATION, id); else sessionStorage.removeItem(CONVERSATION);
    for (const b of list.querySelectorAll("button")) b.setAttribute("aria-current", String(b.dataset.id === (id || "")));
    msgs.replaceChildren();
    if (!id) return;
    try {
      const conv = await api("GET", `/api/internal-assistant/conversations/${id}?limit=100`);
      for (const m of conv.items) {
        const view = bubble(m.role, m.content);
        if (m.status === "failed") { view.state.textContent = `failed: ${m.error || "no reply"}`; view.state.className = "state failed"; }
        else if (m.role === "assistant" && (m.status === "queued" || m.status === "running")) { view.body.textContent = ""; follow(m.id, view); }
      }
    } catch (err) { alert.textContent = message(err); }
  }

  async function loadList() {
    const convs = await api("GET", "/api/internal-assistant/conversations?limit=50");
    if (current === null && convs.items.length) current = convs.items[0].id;  // the latest, unless one was open
    list.replaceChildren(
      h("li", {}, h("button.secondary", { type: "button", "data-id": "", onclick: () => { current = ""; open(null); } }, "New conversation")),
      ...convs.items.map((c) => h("li", {}, h("button.secondary", { type: "button", "data-id": c.id, onclick: () => open(c.id) }, c.title || "Untitled"))));
  }

  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    alert.textContent = ""; send.disabled = true;
    try {
      const accepted = await api("POST", "/api/internal-assistant/chat", current ? { message: text, conversation_id: current } : { message: text });
      box.value = "";
      if (accepted.conversation_id !== current) { await loadList(); await open(accepted.conversation_id); }
      else { bubble("user", text); }
      let view = [...msgs.querySelectorAll(".msg.assistant")].find((el) => el.dataset.message === accepted.message_id);
      view = view ? { el: view, body: view.querySelector(".text"), state: view.querySelector(".state") } : bubble("assistant", "");
      if (!replyAbort || view.el.dataset.message !== accepted.message_id) await follow(accepted.message_id, view);
    } catch (err) { alert.textContent = message(err); }
    send.disabled = false;
  } },
    h("label", { for: "chat-input" }, "Message"), box, h("p", {}, send));
  page("Assistant", alert, h("div.chat", {},
    h("nav.card", { "aria-label": "Conversations" }, h("h2", { text: "Conversations" }), list),
    h("section.card", { "aria-label": "Conversation" }, msgs, form)));
  try { await loadList(); await open(current); } catch (err) { alert.textContent = message(err); }
}

// --- operations ------------------------------------------------------------------------------------

async function operationsPage() {
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const body = h("div", {}, h("p.muted", { text: "Loading…" }));
  async function load() {
    try {
      const ops = await api("GET", "/api/operations");
      const kv = (pairs) => h("dl.kpis", {}, pairs.map(([label, value, id]) => h("div.kpi", { id }, h("dt", {}, label), h("dd", {}, String(value)))));
      body.replaceChildren(
        h("section", { "aria-labelledby": "h-outbox" }, h("h2", { id: "h-outbox", text: "Outbox" }),
          kv([["Pending", ops.outbox.pending, "outbox-pending"], ["Due now", ops.outbox.due], ["Failed", ops.outbox.failed, "outbox-failed"],
            ["Oldest pending", ops.outbox.oldest_pending ? when(ops.outbox.oldest_pending) : "—"]])),
        h("section.card", { "aria-labelledby": "h-failed" }, h("h2", { id: "h-failed", text: "Failed events" }),
          table("Newest first; a retry puts the event back in the queue", [["Topic", (r) => r.topic], ["Failed", (r) => when(r.failed_at)],
            ["Attempts", (r) => r.attempts, "num"], ["Last error", (r) => r.last_error || "—"],
            ["", (r) => h("button.secondary", { type: "button", "data-retry": r.id, "aria-label": `Retry ${r.topic} event ${r.id}`, onclick: async (e) => {
              e.target.disabled = true;
              try { await api("POST", `/api/operations/outbox/${r.id}/retry`); notice.textContent = `Event ${r.id} queued again.`; await load(); }
              catch (err) { alert.textContent = message(err); e.target.disabled = false; }
            } }, "Retry")]], ops.failed_events)),
        h("div.grid", {},
          h("section.card", { "aria-labelledby": "h-jobs" }, h("h2", { id: "h-jobs", text: "Assistant jobs" }),
            table("Replies by status", [["Status", (r) => r.status], ["Jobs", (r) => r.jobs, "num"], ["Oldest", (r) => when(r.oldest)]], ops.assistant_jobs)),
          h("section.card", { "aria-labelledby": "h-pool" }, h("h2", { id: "h-pool", text: "Connection pool (this process)" }),
            table("Connections", [["Size", (r) => r.size, "num"], ["In use", (r) => r.in_use, "num"], ["Waiting", (r) => r.waiting, "num"], ["Max", (r) => r.max, "num"]], [ops.pool]))),
        h("section.card", { "aria-labelledby": "h-refresh" }, h("h2", { id: "h-refresh", text: "Metrics refresh log" }),
          table("Last 10 runs", [["Started", (r) => when(r.started_at)], ["Outcome", (r) => h(`span.pill.${r.outcome}`, {}, r.outcome)],
            ["Duration (ms)", (r) => (r.duration_ms === null ? "—" : Math.round(r.duration_ms)), "num"], ["Detail", (r) => r.detail || ""]], ops.refresh_log)),
        h("p.muted", {}, `As of ${when(ops.generated_at)}.`));
    } catch (err) { body.replaceChildren(); alert.textContent = message(err); }
  }
  page("Operations", h("div.row", {}, h("button.secondary", { type: "button", onclick: load }, "Reload")), alert, notice, body);
  await load();
}

// --- router ----------------------------------------------------------------------------------------

const PAGES = { "#/tower": towerPage, "#/today": todayPage, "#/assistant": assistantPage, "#/operations": operationsPage };

function route() {
  if (!token()) return signInPage();
  const who = claims() || {};
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("nav-ops").hidden = who.role !== "admin";
  document.getElementById("who").textContent = [who.role, who.clinic_id ? `clinic ${who.clinic_id.slice(0, 8)}` : null].filter(Boolean).join(" · ");
  const target = PAGES[location.hash] ? location.hash : "#/tower";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === target) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (target !== "#/assistant") replyAbort?.abort();
  PAGES[target]();
}

document.getElementById("signout").addEventListener("click", () => {
  signOut(); sessionStorage.removeItem(CONVERSATION);
  document.getElementById("signout").hidden = true; document.getElementById("who").textContent = "";
  location.hash = ""; signInPage();
});
takeTokenFromFragment();
window.addEventListener("hashchange", route);
route();
