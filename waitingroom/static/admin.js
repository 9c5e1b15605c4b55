// The operators' console: every queue's figures, polled, its charts of the last 15
// minutes (admin-charts.js) and its controls (PATCH).
"use strict";

(() => {
  const { api, signIn, signedIn, count, el, $, say, sleep } = window.TK;

  const params = new URLSearchParams(location.search);
  const POLL_MS = 2000;
  const INVENTORY_MS = 5000; // availability comes from the catalog; it needs no 2 s refresh
  const RATE_WINDOW_MS = 60000;
  const WATCH_KEY = "ticketing.admin.watch";
  const FIELDS = [
    "admit_per_minute",
    "max_active",
    "session_seconds",
    "claim_seconds",
    "admission_margin_percent",
    "mode",
    "challenge_difficulty",
    "challenge_auto",
    "cluster_rule",
    "cluster_threshold",
  ];
  // Fields chosen from a list rather than typed as numbers: how each is sent and shown.
  const CHOSEN = {
    mode: { send: (raw) => raw, show: (v) => v },
    challenge_auto: { send: (raw) => raw === "on", show: (v) => (v ? "on" : "off") },
    cluster_rule: { send: (raw) => raw, show: (v) => v },
  };

  const s = {
    token: null,
    user: null,
    cards: new Map(), // event id -> {node, queue, samples, inventory, inventoryAt, dirty}
    watched: new Set(JSON.parse(localStorage.getItem(WATCH_KEY) || "[]")),
  };
  for (const id of (params.get("event") || "").split(",")) if (Number(id) > 0) s.watched.add(Number(id));

  const notice = (message, tone) => say($("notice"), message, tone);

  const call = signedIn("admin", ["admin"], s);


  // GET /admin/queues lists the queues; events watched by hand are fetched one by one.
  async function poll() {
    const listed = await call("GET", "/admin/queues");
    const queues = Array.isArray(listed) ? listed : listed.items || listed.queues || [];
    health(listed.booking_health);
    const seen = new Set(queues.map((q) => q.event_id));
    const extra = [...s.watched].filter((id) => !seen.has(id));
    const fetched = await Promise.all(
      extra.map((id) =>
        call("GET", `/admin/queues/${id}`).catch((err) => {
          if (err.status === 404) {
            s.watched.delete(id);
            saveWatched();
            notice(`Event ${id}: ${err.message}`, "bad");
            return null;
          }
          throw err;
        }),
      ),
    );
    return [...queues, ...fetched.filter(Boolean)].sort((a, b) => a.event_id - b.event_id);
  }

  function saveWatched() {
    localStorage.setItem(WATCH_KEY, JSON.stringify([...s.watched]));
  }

  // The booking path as the waiting room measures it (what auto mode steers by).
  function health(h) {
    const parts = [];
    if (h && typeof h.backlog === "number") parts.push(`booking backlog ${count(h.backlog)}`);
    if (h && typeof h.reserve_latency_ms === "number") {
      parts.push(`reserve latency ${count(Math.round(h.reserve_latency_ms))} ms`);
    }
    $("health").textContent = parts.join(" · ");
  }

  async function inventory(card) {
    if (card.queue.inventory) {
      card.inventory = card.queue.inventory; // the queue's own count, a second old at most
      card.name = card.queue.name || card.name;
      return;
    }
    const now = Date.now();
    if (card.inventoryAt && now - card.inventoryAt < INVENTORY_MS) return;
    card.inventoryAt = now;
    try {
      const event = await api("GET", `/events/${card.queue.event_id}`);
      card.inventory = event.availability;
      card.name = event.name;
    } catch (err) {
      card.inventory = null;
    }
  }

  // Admissions per minute as measured here, from admitted_total over the last minute
  // (unless the server reports its own measured rate).
  function measuredRate(card) {
    const q = card.queue;
    for (const name of ["admitted_per_minute", "measured_admit_per_minute", "admit_rate_per_minute"]) {
      if (typeof q[name] === "number") return q[name];
    }
    const now = Date.now();
    card.samples.push([now, q.admitted_total]);
    while (card.samples.length > 2 && now - card.samples[0][0] > RATE_WINDOW_MS) card.samples.shift();
    const [t0, n0] = card.samples[0];
    if (now - t0 < 5000) return null;
    return Math.max(0, ((q.admitted_total - n0) * 60000) / (now - t0));
  }

  function figure(label, key) {
    return el("div", {}, el("dt", {}, label), el("dd", { dataset: { f: key } }, "–"));
  }

  function buildCard(eventId) {
    const form = el(
      "form",
      { class: "controls", dataset: { form: "controls" } },
      el("label", {}, "Admit per minute", el("input", { name: "admit_per_minute", type: "number", min: 0, step: 1, inputmode: "numeric" })),
      el("label", {}, "Max active sessions", el("input", { name: "max_active", type: "number", min: 0, step: 1, inputmode: "numeric" })),
      el("label", {}, "Session seconds", el("input", { name: "session_seconds", type: "number", min: 1, step: 1, inputmode: "numeric" })),
      el("label", {}, "Claim window (s)", el("input", { name: "claim_seconds", type: "number", min: 1, step: 1, inputmode: "numeric" })),
      el("label", {}, "Admission margin %", el("input", { name: "admission_margin_percent", type: "number", min: 0, step: 1, inputmode: "numeric" })),
      el(
        "label",
        {},
        "Mode",
        el("select", { name: "mode" }, el("option", { value: "manual" }, "manual"), el("option", { value: "auto" }, "auto")),
      ),
      el("label", {}, "Challenge difficulty (0 off, 1-10)", el("input", { name: "challenge_difficulty", type: "number", min: 0, max: 10, step: 1, inputmode: "numeric" })),
      el(
        "label",
        {},
        "Challenge auto mode",
        el("select", { name: "challenge_auto" }, el("option", { value: "off" }, "off"), el("option", { value: "on" }, "on")),
      ),
      el(
        "label",
        {},
        "Accounts that look like one (clusters)",
        el(
          "select",
          { name: "cluster_rule" },
          el("option", { value: "off" }, "off: show them only"),
          el("option", { value: "harder_challenge" }, "harder challenge"),
          el("option", { value: "back_of_line" }, "back of the line"),
        ),
      ),
      el("label", {}, "Cluster: more than K accounts", el("input", { name: "cluster_threshold", type: "number", min: 1, step: 1, inputmode: "numeric" })),
      el(
        "div",
        { class: "actions" },
        el("button", { type: "submit", dataset: { action: "apply" } }, "Apply"),
        el("button", { type: "button", class: "secondary", dataset: { action: "pause" } }, "Pause admission"),
      ),
    );
    const charts = window.TK.queueCharts.create(eventId, call);
    const presale = window.TK.presalePanel.create(eventId, call); // admin-presale.js
    const clusters = window.TK.clusterPanel.create(eventId, call); // admin-clusters.js
    const node = el(
      "article",
      { class: "card queue-card", dataset: { event: eventId } },
      el(
        "header",
        {},
        el("h2", { dataset: { f: "title" } }, `Event ${eventId}`),
        el("span", { class: "badge", dataset: { f: "state" } }),
        el("span", { class: "badge", dataset: { f: "mode" } }),
      ),
      el(
        "dl",
        { class: "figures" },
        figure("Waiting", "waiting"),
        figure("Active sessions", "active"),
        figure("Admitted so far", "admitted_total"),
        figure("Admission rate /min", "rate"),
        figure("Seats available", "available"),
        figure("Held / sold", "held_sold"),
        figure("Challenge in force", "challenge"),
      ),
      charts.node,
      form,
      el("p", { class: "muted small", dataset: { f: "pre" } }),
      el("p", { class: "result", role: "status", dataset: { f: "result" } }),
      presale.node,
      clusters.node,
    );
    const card = { node, charts, presale, clusters, queue: null, samples: [], inventory: null, inventoryAt: 0, dirty: new Set() };
    form.addEventListener("input", (e) => card.dirty.add(e.target.name));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      apply(card);
    });
    form.querySelector('[data-action="pause"]').addEventListener("click", () =>
      patch(card, { paused: !card.queue.paused }),
    );
    return card;
  }

  const f = (card, key) => card.node.querySelector(`[data-f="${key}"]`);

  function render(card) {
    const q = card.queue;
    const name = q.name || card.name;
    f(card, "title").textContent = name ? `#${q.event_id} ${name}` : `Event ${q.event_id}`;
    const inv = card.inventory;
    const soldOut = q.sold_out || (inv && inv.available === 0 && inv.reserved === 0);
    const state = f(card, "state");
    state.textContent = soldOut ? "sold out" : q.paused ? "paused" : "admitting";
    state.className = "badge " + (soldOut ? "sold-out" : q.paused ? "paused" : "running");
    f(card, "mode").textContent = q.mode + " mode";
    f(card, "waiting").textContent = count(q.waiting);
    f(card, "active").replaceChildren(count(q.active), el("small", {}, ` of ${count(q.max_active)}`));
    f(card, "admitted_total").textContent = count(q.admitted_total);
    const rate = measuredRate(card);
    const steering =
      q.mode === "auto" && typeof q.effective_admit_per_minute === "number"
        ? `, auto ${count(Math.round(q.effective_admit_per_minute))}`
        : "";
    f(card, "rate").replaceChildren(
      rate === null ? "–" : count(Math.round(rate)),
      el("small", {}, ` set ${count(q.admit_per_minute)}${steering}`),
    );
    f(card, "pre").textContent = q.pre_queue ? `${count(q.pre_queue)} in the pre-queue` : "";
    f(card, "available").replaceChildren(
      inv ? count(inv.available) : "–",
      inv ? el("small", {}, ` of ${count(inv.total)}`) : "",
    );
    f(card, "held_sold").textContent = inv ? `${count(inv.reserved)} / ${count(inv.booked)}` : "–";
    const level = q.effective_challenge_difficulty;
    f(card, "challenge").replaceChildren(
      level ? `difficulty ${level}` : "off",
      el("small", {}, q.challenge_auto ? " auto" : ""),
    );
    const form = card.node.querySelector("form");
    for (const name of FIELDS) {
      const input = form.elements[name];
      // Never overwrite what the operator is typing.
      if (!card.dirty.has(name) && document.activeElement !== input && q[name] !== undefined) {
        input.value = CHOSEN[name] ? CHOSEN[name].show(q[name]) : q[name];
      }
    }
    form.querySelector('[data-action="pause"]').textContent = q.paused ? "Resume admission" : "Pause admission";
  }

  function apply(card) {
    const form = card.node.querySelector("form");
    const changes = {};
    for (const name of FIELDS) {
      const raw = form.elements[name].value;
      const value = CHOSEN[name] ? CHOSEN[name].send(raw) : Number(raw);
      if (!CHOSEN[name] && (raw === "" || !Number.isInteger(value))) {
        say(f(card, "result"), `${name.replace(/_/g, " ")} must be a whole number.`, "bad");
        return;
      }
      if (value !== card.queue[name]) changes[name] = value;
    }
    if (!Object.keys(changes).length) {
      say(f(card, "result"), "Nothing changed.", "good");
      return;
    }
    patch(card, changes);
  }

  async function patch(card, changes) {
    const id = card.queue.event_id;
    const buttons = card.node.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const queue = await call("PATCH", `/admin/queues/${id}`, { body: changes });
      for (const name of Object.keys(changes)) card.dirty.delete(name);
      card.queue = { ...card.queue, ...queue };
      render(card);
      if ("cluster_rule" in changes || "cluster_threshold" in changes) card.clusters.update(true);
      const what = Object.entries(changes).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
      say(f(card, "result"), `Saved (${what}); in effect within 2 seconds.`, "good");
    } catch (err) {
      say(f(card, "result"), err.message, "bad");
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  async function refresh() {
    const queues = await poll();
    const list = $("queues");
    for (const queue of queues) {
      let card = s.cards.get(queue.event_id);
      if (!card) {
        card = buildCard(queue.event_id);
        s.cards.set(queue.event_id, card);
        list.append(card.node);
      }
      card.queue = { ...(card.queue || {}), ...queue };
    }
    await Promise.all([...s.cards.values()].filter((c) => c.queue).map(inventory));
    for (const card of s.cards.values()) if (card.queue) render(card);
    await Promise.all([...s.cards.values()].filter((c) => c.queue).map((c) => c.charts.update()));
    await Promise.all([...s.cards.values()].filter((c) => c.queue).map((c) => c.presale.update()));
    await Promise.all([...s.cards.values()].filter((c) => c.queue).map((c) => c.clusters.update()));
    busiestFirst(list);
    $("empty").hidden = s.cards.size > 0;
    const sum = (key) => queues.reduce((total, q) => total + (q[key] || 0), 0);
    $("sum-waiting").textContent = count(sum("waiting"));
    $("sum-active").textContent = count(sum("active"));
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  // Queues with fans in them first, then by event id; never while the operator is in a
  // form (moving a card would take the focus away).
  function busiestFirst(list) {
    if (list.contains(document.activeElement)) return;
    if ([...s.cards.values()].some((card) => card.dirty.size)) return;
    const busy = (card) =>
      (card.queue.waiting || 0) + (card.queue.active || 0) + (card.queue.pre_queue || 0) > 0;
    const order = [...s.cards.values()]
      .filter((card) => card.queue)
      .sort((a, b) => busy(b) - busy(a) || a.queue.event_id - b.queue.event_id);
    if (order.some((card, i) => list.children[i] !== card.node)) list.append(...order.map((c) => c.node));
  }

  async function loop() {
    for (let failures = 0; ; ) {
      try {
        await refresh();
        if (failures) notice("");
        failures = 0;
        await sleep(POLL_MS);
      } catch (err) {
        failures += 1;
        notice(err.message, "bad");
        if (err.status === 403) return; // not an operator: polling again will not help
        await sleep(1000 * (err.retryAfter || Math.min(30, 2 ** failures)));
      }
    }
  }

  $("watch-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = Number($("watch-id").value);
    if (!Number.isSafeInteger(id) || id < 1) {
      notice("Enter an event id (a whole number).", "bad");
      return;
    }
    s.watched.add(id);
    saveWatched();
    $("watch-id").value = "";
    try {
      await refresh();
    } catch (err) {
      notice(err.message, "bad");
    }
  });

  async function start() {
    try {
      ({ token: s.token, user: s.user } = await signIn("admin", params.get("user"), ["admin"]));
      $("who").textContent = "Signed in as " + s.user;
    } catch (err) {
      notice(err.message, "bad");
      return;
    }
    loop();
  }

  start();
})();
