// The wallboard (docs/wallboard.md): draws the snapshot the page carries
// (<script type="application/json" id="snapshot">) at once, then the
// engine's snapshots from /wallboard/events (Server-Sent Events), and counts
// waiting and in-state times up between them.  With ?once=1 in the address
// it draws the page's snapshot and opens no stream (screenshots, kiosk
// tools that wait for the page to go idle).  After each drawing, fit()
// shrinks the board to the screen: a wall screen cannot scroll.  Plain
// JavaScript, no library; every text goes in with textContent (names and
// reasons are data, never markup).
"use strict";
(function () {
  const STATES = ["ready", "reserved", "on_call", "wrap_up", "paused"];
  const STATE_LABEL = {
    ready: "ready", reserved: "ringing", on_call: "on call", wrap_up: "wrap-up",
    paused: "paused", logged_out: "logged out",
  };
  // the language of names, reasons and queue names: CJK glyphs chosen for Chinese
  const DATA_LANG = "zh-CN";
  let skewMs = 0;  // the engine's clock minus this browser's
  let last = null;

  function el(tag, cls, text, lang) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (lang) e.lang = lang;
    return e;
  }
  function engineNow() { return (Date.now() + skewMs) / 1000; }
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
  }
  function pct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + "%"; }
  function tick(cls, since) {
    const e = el("span", "tick " + (cls || ""));
    if (since !== null && since !== undefined) e.dataset.since = String(since);
    e.textContent = duration(since === null || since === undefined ? null : engineNow() - since);
    return e;
  }

  function figure(label, value, cls, sub, big) {
    const f = el("div", "figure" + (big ? " big" : ""));
    f.appendChild(el("div", "label", label));
    const v = typeof value === "object" && value !== null ? value : el("div", null, value);
    v.classList.add("value", "num");
    if (cls) v.classList.add(cls);
    f.appendChild(v);
    if (sub) f.appendChild(el("div", "sub", sub));
    return f;
  }
  function slClass(period) {
    if (period.sl_met === true) return "good";
    if (period.sl_met === false) return "bad";
    return null;
  }
  function slSub(q, period) {
    const parts = [];
    if (q.sl_target !== null) parts.push("target " + pct(q.sl_target) + " in " + q.sl_threshold_s + " s");
    parts.push(period.offered + " offered");
    return parts.join(" · ");
  }

  function renderQueue(q) {
    const card = el("article", "queue");
    card.dataset.queue = q.name;
    if (q.waiting > 0) card.classList.add("busy");
    if (q.sl_threshold_s !== null && q.longest_wait_s !== null && q.longest_wait_s > q.sl_threshold_s) {
      card.classList.add("late");
    }
    card.appendChild(el("h3", null, q.name, DATA_LANG));
    const figs = el("div", "figures");
    const waiting = el("div", "waiting", q.waiting);
    figs.appendChild(figure("waiting", waiting, q.waiting ? "warn" : null, q.ringing ? q.ringing + " ringing" : null, true));
    const longest = tick("longest", q.oldest_queued_at);
    longest.dataset.threshold = q.sl_threshold_s === null ? "" : String(q.sl_threshold_s);
    figs.appendChild(figure("longest wait", longest, null, null, true));
    figs.appendChild(figure("SL today", pct(q.today.service_level), slClass(q.today), slSub(q, q.today)));
    figs.appendChild(figure("SL this interval", pct(q.interval.service_level), slClass(q.interval), q.interval.offered + " offered"));
    card.appendChild(figs);
    const chips = el("div", "chips");
    for (const s of STATES) {
      const n = q.agents[s] || 0;
      const c = el("span", "chip st-" + s + (n ? "" : " zero"), n + " " + STATE_LABEL[s]);
      c.dataset.state = s;
      chips.appendChild(c);
    }
    card.appendChild(chips);
    const list = el("ul", "calls");
    for (const call of q.calls) {
      const li = el("li");
      li.dataset.callId = call.call_id;
      li.appendChild(el("span", "caller num", call.caller || "(no number)"));
      li.appendChild(el("span", "muted", call.customer_class, DATA_LANG));
      li.appendChild(tick("", call.queued_at));
      list.appendChild(li);
    }
    if (q.waiting > q.calls.length) {
      list.appendChild(el("li", "more", "+" + (q.waiting - q.calls.length) + " more"));
    }
    card.appendChild(list);
    return card;
  }

  function renderAgent(a) {
    const tile = el("div", "agent st-" + a.state);
    tile.dataset.agent = a.id;
    tile.appendChild(el("span", "name", a.name || a.id, DATA_LANG));
    tile.appendChild(tick("", a.since));
    let state = STATE_LABEL[a.state] || a.state;
    const st = el("span", "state", state);
    if (a.reason) {
      st.textContent = state + ": ";
      st.appendChild(el("span", null, a.reason, DATA_LANG));
    }
    tile.appendChild(st);
    tile.appendChild(el("span", "state muted ext", a.extension));
    if (a.call) {
      const c = el("span", "call");
      c.appendChild(el("span", "num", a.call.caller || "(no number)"));
      c.appendChild(document.createTextNode(" · "));
      c.appendChild(el("span", null, a.call.queue || "", DATA_LANG));
      tile.appendChild(c);
    }
    return tile;
  }

  function renderAlerts(alerts) {
    const box = document.getElementById("alerts");
    box.replaceChildren();
    for (const a of alerts) {
      const d = el("div", "alert");
      d.dataset.customerClass = a.customer_class;
      d.dataset.period = a.period;
      d.appendChild(document.createTextNode("⚠ "));
      d.appendChild(el("span", null, a.customer_class, DATA_LANG));
      d.appendChild(document.createTextNode(" below target " + (a.period === "today" ? "today" : "this interval") + ": "
        + pct(a.service_level) + " < " + pct(a.sl_target) + " "));
      d.appendChild(el("span", "what", "(" + a.within_sl + " of " + a.offered + " answered within " + a.sl_threshold_s + " s)"));
      box.appendChild(d);
    }
    box.hidden = alerts.length === 0;
  }

  function renderSummary(snap) {
    const box = document.getElementById("summary");
    box.replaceChildren();
    const w = el("span", null, "waiting ");
    w.appendChild(el("b", "num", snap.totals.waiting));
    box.appendChild(w);
    for (const s of STATES) {
      const e = el("span", null, STATE_LABEL[s] + " ");
      e.appendChild(el("b", "num", snap.totals.agents[s] || 0));
      box.appendChild(e);
    }
  }

  function render(snap) {
    if (last !== null && snap.now < last.now) return;  // an older one
    skewMs = snap.now * 1000 - Date.now();
    last = snap;
    draw(snap);
  }

  function draw(snap) {  // again after a resize: the same snapshot, the same clock
    renderSummary(snap);
    renderAlerts(snap.alerts);
    const queues = document.getElementById("queues");
    queues.replaceChildren(...snap.queues.map(renderQueue));
    const shown = snap.agents.filter((a) => a.state !== "logged_out");
    document.getElementById("agents").replaceChildren(...shown.map(renderAgent));
    const out = snap.agents.length - shown.length;
    document.getElementById("agents-note").textContent = out ? "(" + out + " logged out)" : "";
    ticks();
    fit();
  }

  // ------------------------------------------------------------------ fit
  // The board is exactly the screen (wallboard.css: no scrolling).  The
  // agent tiles shrink first, within their share of the height, then the
  // queue cards in what is left; the waiting-call lists keep the calls that
  // fit and say "+N more"; agents that still do not fit are counted in the
  // heading.
  const AGENT_STEPS = [[1, false], [0.9, false], [0.85, true], [0.78, true], [0.72, true],
                       [0.66, true]];  // smaller is not read from across a room
  const QUEUE_STEPS = [1, 0.92, 0.85, 0.78, 0.72, 0.66, 0.6];
  const QUEUE_MIN_EM = 16;  // a queue card's narrowest width (root em)

  function overflows(e) { return e.scrollHeight > e.clientHeight || e.scrollWidth > e.clientWidth; }
  function rootPx() { return parseFloat(getComputedStyle(document.documentElement).fontSize) || 16; }

  function fitAgents() {
    const box = document.getElementById("agents");
    const tiles = [...box.children];
    for (const t of tiles) t.hidden = false;
    for (const [scale, compact] of AGENT_STEPS) {
      box.style.setProperty("--as", String(scale));
      box.classList.toggle("compact", compact);
      if (!overflows(box)) return 0;
    }
    // the smallest tiles and still too many: the ones below the edge are not drawn
    const bottom = box.getBoundingClientRect().top + box.clientHeight;
    const cut = tiles.filter((t) => t.getBoundingClientRect().bottom > bottom + 1);
    for (const t of cut) t.hidden = true;
    const hidden = cut.length;
    return hidden;
  }

  function queueFits(card) {
    if (overflows(card)) return false;
    const list = card.querySelector(".calls");
    const row = list.querySelector("li");
    // a card with waiting calls shows at least two of them (or one and "+N more")
    return !row || list.clientHeight >= Math.min(2, list.children.length) * row.offsetHeight;
  }

  function trimCalls(card, waiting) {
    const list = card.querySelector(".calls");
    // its last row below its bottom edge (to the fraction of a pixel)
    const cut = () => list.lastElementChild !== null && list.lastElementChild
      .getBoundingClientRect().bottom > list.getBoundingClientRect().bottom + 0.25;
    if (!cut()) return;
    let more = list.querySelector(".more");
    if (!more) { more = el("li", "more"); list.appendChild(more); }
    const calls = [...list.querySelectorAll("li[data-call-id]")];
    for (;;) {
      more.textContent = "+" + (waiting - calls.length) + " more";
      if (!cut() || !calls.length) break;
      calls.pop().remove();
    }
  }

  function fit() {
    if (last === null) return;
    const queues = document.getElementById("queues");
    const cards = [...queues.children];
    const n = Math.max(1, cards.length);
    const maxCols = Math.max(1, Math.floor(queues.clientWidth / (QUEUE_MIN_EM * rootPx())));
    const rows = Math.ceil(n / maxCols);
    queues.style.setProperty("--qcols", String(Math.ceil(n / rows)));
    const hidden = fitAgents();
    const note = document.getElementById("agents-note");
    note.textContent = note.textContent.replace(/ ?\(\+\d+ not shown\)$/, "")
      + (hidden ? " (+" + hidden + " not shown)" : "");
    for (const scale of QUEUE_STEPS) {
      queues.style.setProperty("--qs", String(scale));
      if (cards.every(queueFits)) break;
    }
    for (const card of cards) {
      const q = last.queues.find((x) => x.name === card.dataset.queue);
      trimCalls(card, q ? q.waiting : 0);
    }
  }

  function ticks() {
    const now = engineNow();
    for (const e of document.querySelectorAll("[data-since]")) {
      const s = now - Number(e.dataset.since);
      e.textContent = duration(s);
      if (e.dataset.threshold) {
        const t = Number(e.dataset.threshold);
        e.classList.toggle("bad", s > t);
        e.classList.toggle("warn", s > t * 0.75 && s <= t);
      }
    }
    const d = new Date(Date.now() + skewMs);
    document.getElementById("clock").textContent = d.toLocaleTimeString([], { hour12: false });
  }

  function status(state, text) {
    const s = document.getElementById("status");
    s.dataset.state = state;
    document.getElementById("status-text").textContent = text;
  }

  function connect() {
    const source = new EventSource("/wallboard/events");
    source.addEventListener("snapshot", (ev) => {
      try {
        render(JSON.parse(ev.data));
        status("live", "live");
      } catch (err) {
        status("down", "bad snapshot: " + err);
      }
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // refused (e.g. 401: no or expired cookie) or the engine is gone: try again later
        status("down", "not connected: open /wallboard?token=<read token> if this lasts");
        source.close();
        setTimeout(connect, 10000);
      } else {
        status("connecting", "reconnecting…");
      }
    };
  }

  function first() {
    // the snapshot the page was served with: a full board before any stream
    const data = document.getElementById("snapshot");
    if (data === null || !data.textContent.trim()) return false;
    try {
      render(JSON.parse(data.textContent));
      return true;
    } catch (err) {
      status("down", "bad snapshot: " + err);
      return false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const drawn = first();
    setInterval(ticks, 1000);
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { if (last) draw(last); }, 100);
    });
    if (document.fonts && document.fonts.ready) {
      document.fonts.ready.then(() => { if (last) draw(last); });
    }
    if (new URLSearchParams(location.search).get("once") === "1") {
      // no live feed: the page's snapshot, its times counting up
      if (drawn) status("once", "snapshot, not live (?once=1)");
      return;
    }
    if (drawn) status("connecting", "connecting…");
    connect();
  });
  window.wallboardLast = () => last;  // for tests and the curious
})();
