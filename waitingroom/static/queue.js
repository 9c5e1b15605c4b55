// The fans' queue page: join, wait (websocket, polling /status when it is down), then
// choose seats, hold them with the admission token, pay with a test card, see the booking.
"use strict";

(() => {
  const {
    api, signIn, signedIn, money, waitWords, countdown, clock, count, el, $, say, sleep, randomId,
  } = window.TK;

  const eventId = Number(location.pathname.split("/")[2]);
  const params = new URLSearchParams(location.search);
  const MAX_TICKETS = 8; // the per-fan cap (TICKETING_MAX_TICKETS_PER_USER's default)
  const POLL_MS = 3000; // fallback cadence while the websocket is down
  const SILENCE_MS = 12000; // the server pushes at least every 5 s; this long means trouble
  // A socket still not open this long after it was asked for (a busy server, a failover):
  // poll meanwhile, since the queue drops a fan who neither polls nor holds a socket.
  const CONNECT_MS = 5000;

  const s = {
    phase: "loading", // queue | seats | checkout | done | sold_out | error
    token: null,
    user: null,
    event: null,
    status: null,
    first: null, // the position first seen: the progress bar's 0 %
    admission: null, // {token, expiresAt}
    hold: null,
    ws: null,
    connecting: false, // asking for a websocket ticket
    stops: 0, // times stopListening ran: a ticket asked for before one opens no socket
    wsFailures: 0,
    pollTimer: null,
    silenceTimer: null,
    connectTimer: null, // polls once a socket asked for is slow to open
    picked: new Map(), // ticket id -> ticket
    taken: new Set(),
    reserveAttempt: null, // {body, key}: a retry of the same ask reuses its key
    payKey: null,
    turnOver: false,
    presale: null, // GET /queue/{id}/presale, while the event has a registered presale
    presaleNote: false, // the line's note says when the general sale opens
  };
  const firstKey = () => `ticketing.first.${eventId}.${s.user}`;
  const holdKey = () => `ticketing.hold.${eventId}.${s.user}`;
  // The signed queue ticket of the last status: sent back on (re)join, it keeps the fan's
  // place even if the queue's store lost it.
  const ticketKey = () => `ticketing.queue-ticket.${eventId}.${s.user}`;

  function show(phase) {
    s.phase = phase;
    $("queue").hidden = !["queue", "sold_out"].includes(phase);
    $("leave").hidden = phase !== "queue";
    $("seats").hidden = phase !== "seats";
    $("checkout").hidden = phase !== "checkout";
    $("done").hidden = phase !== "done";
  }

  const notice = (message, tone) => say($("notice"), message, tone);

  // --- signing in and calling the API ------------------------------------------------------

  const call = signedIn("fan", [], s);


  // Keep trying what the fan cannot do anything about (a busy server, a lost connection).
  async function patiently(what) {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await what();
        if (attempt) notice("");
        return result;
      } catch (err) {
        if (![0, 429, 502, 503, 504].includes(err.status)) throw err;
        notice(err.message);
        await sleep(1000 * (err.retryAfter || Math.min(30, 2 ** attempt)));
      }
    }
  }

  // --- the event ---------------------------------------------------------------------------

  async function loadEvent() {
    s.event = await patiently(() => api("GET", `/events/${eventId}`));
    $("event-name").textContent = s.event.name;
    const venue = s.event.venue || {};
    $("event-meta").textContent = [clock(s.event.date), venue.name, venue.city]
      .filter(Boolean)
      .join(" · ");
    document.title = `${s.event.name} · waiting room`;
  }

  // --- the line ----------------------------------------------------------------------------

  async function join() {
    show("queue");
    $("leave").hidden = false;
    $("queue-state").textContent = "Joining the line…";
    let solved = null; // a solved challenge for the next try (each is used once)
    const status = await patiently(async () => {
      for (let solves = 0; ; ) {
        const ticket = localStorage.getItem(ticketKey());
        const body = {};
        if (ticket) body.queue_ticket = ticket;
        if (solved) body.altcha = solved;
        const code = s.presale && s.presale.you && s.presale.you.code;
        if (code) body.presale_code = code;
        solved = null;
        try {
          return await call("POST", `/queue/${eventId}/join`, {
            body: Object.keys(body).length ? body : undefined,
          });
        } catch (err) {
          if (PRESALE_REFUSALS.includes(err.code)) {
            await presaleRefused(err.problem); // until the general sale opens
            continue;
          }
          if (err.status === 403 && err.problem.challenge && solves++ < 5) {
            // The event asks for proof of work: the refusal carries a fresh challenge.
            // A harder one for accounts that look like one (cluster): the refusal says why.
            if (err.problem.cluster) $("door-note").textContent = err.problem.detail;
            solved = await solveDoor(err.problem.challenge);
            $("queue-state").textContent = "Joining the line…";
            continue;
          }
          if (!ticket || ![400, 403].includes(err.status)) throw err;
          localStorage.removeItem(ticketKey()); // not ours any more: join afresh
        }
      }
    });
    apply(status);
    if (s.phase === "queue") listen();
  }

  // --- a registered presale: register, the fan's code, why they cannot join yet ----------

  const PRESALE_REFUSALS = ["presale_code_required", "presale_code_invalid"];

  // The event's presale (null: none) with where this fan stands in it, shown above the line.
  async function loadPresale() {
    try {
      s.presale = await patiently(() => call("GET", `/queue/${eventId}/presale`));
    } catch (err) {
      if (err.status !== 404) throw err;
      s.presale = null;
    }
    renderPresale();
  }

  function presaleCard() {
    let card = $("presale");
    if (!card) {
      card = el(
        "section",
        { class: "card", id: "presale" },
        el("h2", {}, "Presale"),
        el("p", { id: "presale-words", "aria-live": "polite" }),
        el("p", { class: "code", id: "presale-code", hidden: true }),
        el("button", { type: "button", id: "presale-register", hidden: true }, "Register for the presale"),
        el("p", { class: "muted small", id: "presale-note" }),
      );
      $("queue").before(card);
      $("presale-register").addEventListener("click", registerPresale);
    }
    return card;
  }

  function renderPresale(why) {
    const ps = s.presale;
    if (!ps) {
      if ($("presale")) $("presale").hidden = true;
      return;
    }
    const card = presaleCard();
    const you = ps.you || {};
    const words = $("presale-words");
    const general = clock(ps.general_sale_at);
    card.hidden = ps.state === "over" && !why;
    $("presale-register").hidden = !(ps.state === "registration_open" && !you.registered);
    $("presale-code").hidden = !you.code;
    $("presale-code").textContent = you.code ? `Your presale code: ${you.code}` : "";
    if (ps.state === "scheduled") {
      words.textContent = `Registration for the presale opens ${clock(ps.registration_opens_at)}.`;
    } else if (ps.state === "registration_open") {
      words.textContent = you.registered
        ? `You are registered. Presale codes are drawn after registration closes ${clock(ps.registration_closes_at)}.`
        : `Register before ${clock(ps.registration_closes_at)} for a chance at one of ${count(ps.codes)} presale codes.`;
    } else if (ps.state === "registration_closed") {
      words.textContent = you.registered
        ? "Registration has closed; presale codes are being drawn."
        : "Registration for the presale has closed.";
    } else if (you.code) {
      words.textContent = you.redeemed
        ? "Your presale code is used: you are in the presale line."
        : "You were drawn a presale code: it is sent with your join, nothing to type.";
    } else {
      words.textContent = you.registered
        ? `You were not drawn a presale code. The general sale opens ${general}.`
        : `This is a presale for registered fans drawn a code. The general sale opens ${general}.`;
    }
    $("presale-note").textContent = why || `Codes only until ${general}; then everyone may join.`;
  }

  async function registerPresale(e) {
    const button = e.currentTarget;
    button.disabled = true;
    let altcha = null; // while the event's door is on, a registration carries a solution
    try {
      for (let solves = 0; ; ) {
        try {
          await call("POST", `/queue/${eventId}/presale/registration`, {
            body: altcha ? { altcha } : undefined,
          });
          break;
        } catch (err) {
          if (err.status !== 403 || !err.problem.challenge || solves++ >= 5) throw err;
          altcha = await solveDoor(err.problem.challenge);
        }
      }
      await loadPresale();
    } catch (err) {
      say($("presale-note"), err.message, "bad");
    } finally {
      button.disabled = false;
    }
  }

  // A presale join refused: say why, keep the fan's view of it fresh, and join once the
  // general sale opens (or the fan's code comes, drawn meanwhile).
  async function presaleRefused(problem) {
    const general = Date.parse(problem.general_sale_at);
    const why =
      problem.code === "presale_code_invalid"
        ? "That presale code is not yours for this event."
        : `Until ${clock(problem.general_sale_at)} only fans drawn a presale code can join.`;
    $("queue-state").textContent = why;
    for (;;) {
      await loadPresale();
      renderPresale(why);
      const code = s.presale && s.presale.you && s.presale.you.code;
      const left = general - Date.now();
      if (left <= 0 || (code && problem.code === "presale_code_required")) return;
      await sleep(Math.min(left + 500, 15000));
    }
  }

  // --- the door: proof of work, while the event asks for it -------------------------------

  // The ALTCHA widget (vendored, altcha.min.js) solves in web workers: altcha-progress.js,
  // its PBKDF2 worker with every try counted, told here over a BroadcastChannel. The bar
  // is the tries so far of the most the challenge can take (half of it on average).
  async function solveDoor(challenge) {
    await customElements.whenDefined("altcha-widget");
    const algorithms = window.$altcha.algorithms;
    if (!algorithms.has("PBKDF2/SHA-256")) {
      algorithms.set("PBKDF2/SHA-256", () => new Worker("/static/altcha-progress.js"));
    }
    const widget = $("door-widget");
    const bar = $("door-progress");
    const words = $("door-words");
    const most = (challenge.parameters.data || {}).max_tries || 0;
    let tries = 0;
    bar.value = 0;
    $("door-note").hidden = bar.hidden = false;
    $("door").hidden = false;
    const channel = new BroadcastChannel("ticketing.altcha-progress");
    channel.onmessage = (message) => {
      tries += message.data;
      // Kept as the workers' counts come: one sent just before the key was found may
      // arrive after the widget's answer (two channels, no order between them).
      document.body.dataset.solveTries = String(tries);
      if (most && bar.value < 1) bar.value = Math.min(0.99, tries / most);
    };
    const started = performance.now();
    const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
    const ticking = setInterval(() => {
      words.textContent = `Checking that you are a fan, not a bot… ${seconds()} s`;
    }, 100);
    try {
      widget.configure({
        challenge: JSON.stringify(challenge),
        minDuration: 0,
        hideFooter: true,
        hideLogo: true,
      });
      const result = await widget.verify();
      if (!result || !result.payload) throw new Error("The check could not be completed.");
      // How long the fan waited (the solution carries the workers' own time to the server).
      s.solveMs = Math.round(performance.now() - started);
      document.body.dataset.solveMs = String(s.solveMs);
      document.body.dataset.solveTries = String(tries); // as the workers told them so far
      bar.value = 1;
      words.textContent = `Checked in ${seconds()} s.`;
      $("door-note").hidden = bar.hidden = true; // done: the time stays, the rest goes
      return result.payload;
    } finally {
      clearInterval(ticking);
      setTimeout(() => channel.close(), 2000); // the counts still on their way
    }
  }

  async function leave() {
    stopListening();
    try {
      await call("POST", `/queue/${eventId}/leave`);
    } catch (err) {
      notice(err.message, "bad");
    }
    localStorage.removeItem(ticketKey());
    localStorage.removeItem(firstKey());
    s.first = null;
    show("left");
    notice("You left the line. Changed your mind?", "good");
    rejoinButton();
  }

  function apply(status) {
    if (!status) return;
    s.status = status;
    if (status.queue_ticket) localStorage.setItem(ticketKey(), status.queue_ticket);
    if (status.status === "admitted" && status.admission_token) {
      admitted(status.admission_token, status.admission_expires_at);
    } else if (status.status === "sold_out") {
      soldOut();
    } else if (s.phase === "queue") {
      renderLine(status);
    } else if (s.phase === "sold_out" && status.position) {
      // Seats came back (a refund, a hold released): the fan kept the place, and the line
      // moves again.
      show("queue");
      renderLine(status);
    }
  }

  const STATE_WORDS = {
    pre_queue: "The sale has not started yet. You are in the pre-queue.",
    waiting: "You are in line.",
    paused: "The line is paused for a moment. You keep your place.",
    all_held: "Every remaining seat is in another fan's cart; some may come back. You keep your place.",
    presale_sold_out: "The presale's seats are all taken; some may come back from carts. You keep your place.",
  };

  function renderLine(status) {
    const state = $("queue-state");
    state.textContent = STATE_WORDS[status.status] || "You are in line.";
    state.className = "state " + status.status;
    const position = status.position;
    $("position").textContent = position ? "#" + count(position) : "–";
    $("ahead").textContent = count(status.ahead);
    $("eta").textContent =
      status.status === "paused"
        ? "paused"
        : status.status === "all_held"
          ? "when seats come back"
          : status.status === "presale_sold_out"
          ? "at the general sale"
          : status.status === "pre_queue"
          ? untilSale()
          : waitWords(status.eta_seconds);
    const rate = status.admit_rate_per_minute;
    $("rate").textContent =
      status.status === "waiting" && rate > 0
        ? `Fans are let in at about ${count(Math.round(rate))} a minute right now.`
        : "";
    if (status.status === "presale_sold_out" && status.general_sale_at) {
      // The fan stays in line: let in if a hold of the share lapses, or at the general sale.
      $("queue-note").textContent =
        `The general sale opens ${clock(status.general_sale_at)}, and you keep your place in ` +
        "line for it. Keep this page open.";
      s.presaleNote = true;
    } else if (s.presaleNote) {
      s.presaleNote = false;
      $("queue-note").textContent =
        "Keep this page open: it updates by itself, and you keep your place if you reload.";
    }
    if (status.status === "pre_queue" && s.event && s.event.on_sale_at) {
      $("queue-note").textContent =
        `The sale opens ${clock(s.event.on_sale_at)}. Then everyone in the pre-queue gets a ` +
        "random place ahead of later arrivals, so there is no need to rush. Keep this page open.";
      $("fairness").hidden = false;
    }
    // One person, one place: the join's and status's answers say so (not the pushes).
    if (status.moved) s.moved = status.moved;
    if (s.moved === "cluster") {
      $("queue-note").textContent =
        "Your place was moved to the back of the line: several accounts joined from your " +
        "network or browser, or paid with one card, and this sale keeps one place per person.";
    }
    if (position) {
      s.first = Math.max(s.first || 0, position);
      localStorage.setItem(firstKey(), String(s.first));
    }
    const done = s.first && position ? (s.first - position) / s.first : 0;
    progress(Math.round(100 * done));
  }

  // Before on-sale nobody moves: the wait is the time to the sale (then the draw).
  function untilSale() {
    const opens = s.event && Date.parse(s.event.on_sale_at);
    if (!opens) return "until the sale opens";
    const seconds = (opens - Date.now()) / 1000;
    return seconds > 60 ? "sale in " + waitWords(seconds).replace("about ", "") : "moments";
  }

  function progress(percent) {
    $("progress-fill").style.width = Math.max(2, percent) + "%";
    $("progress").setAttribute("aria-valuenow", String(percent));
  }

  function soldOut() {
    show("sold_out");
    // The socket stays open: should seats come back, the fan still in line hears it.
    stopPolling();
    const state = $("queue-state");
    state.textContent = "Sold out: every seat has been sold. Sorry!";
    state.className = "state sold_out";
    $("eta").textContent = "–";
    $("queue-note").textContent = "Seats sometimes come back when holds expire; check the event later.";
  }

  // --- live updates: the websocket, polling /status while it is down -----------------------

  const settled = () => ["done", "sold_out"].includes(s.phase);

  // The socket opens with a single-use ticket asked for right before each (re)connect, so
  // the access token never travels in a URL (proxies and access logs keep those).
  async function listen() {
    if (s.ws || s.connecting || settled()) return;
    s.connecting = true;
    clearTimeout(s.connectTimer);
    s.connectTimer = setTimeout(() => {
      if (!settled()) startPolling(); // onopen stops it
    }, CONNECT_MS);
    const stopped = s.stops;
    let ticket;
    try {
      ({ ticket } = await call("POST", `/queue/${eventId}/ws-ticket`));
    } catch (err) {
      clearTimeout(s.connectTimer);
      if (stopped !== s.stops || settled()) return;
      if (err.code === "not_in_queue" && s.phase === "queue") {
        stopPolling();
        join(); // lost the place (or the store did): the queue ticket asks for it back
      } else {
        disconnected();
      }
      return;
    } finally {
      s.connecting = false;
    }
    // The fan may have left, booked or been told the sale is over meanwhile.
    if (stopped !== s.stops || s.ws || settled()) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/queue/${eventId}/ws?ticket=${encodeURIComponent(ticket)}`;
    const ws = new WebSocket(url);
    s.ws = ws;
    ws.onopen = () => {
      clearTimeout(s.connectTimer);
      s.wsFailures = 0;
      stopPolling();
      live("Live");
      watchSilence();
    };
    ws.onmessage = (message) => {
      watchSilence();
      let push;
      try {
        push = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      onPush(push);
    };
    ws.onclose = () => {
      if (s.ws !== ws) return;
      s.ws = null;
      clearTimeout(s.connectTimer);
      clearTimeout(s.silenceTimer);
      if (settled()) return;
      disconnected();
    };
  }

  // No socket (it closed, or no ticket came): poll meanwhile, and try again later.
  function disconnected() {
    s.wsFailures += 1;
    live("Live updates interrupted; checking every few seconds.");
    startPolling();
    setTimeout(listen, 1000 * Math.min(30, 2 ** s.wsFailures));
  }

  function onPush(push) {
    if (push.type === "status") apply(push);
    else if (push.type === "admitted") admitted(push.admission_token, push.expires_at);
    else if (push.type === "sold_out") soldOut();
    else if (push.type === "paused" && s.phase === "queue") {
      renderLine({ ...(s.status || {}), status: "paused" });
    } else if (push.type === "resumed" && s.phase === "queue" && s.status) {
      // Moving again (shown as paused since the pause push, whatever the last status
      // said): the new place and wait come with the next status.
      if (s.status.status === "paused") s.status = { ...s.status, status: "waiting", eta_seconds: null };
      if (s.status.status === "waiting") renderLine(s.status);
    } else if (push.type === "session_ended") ended(push.reason);
  }

  const ENDED_WORDS = {
    expired: "Your turn has ended.",
    abandoned: "You lost your place because this page stopped checking in.",
    left: "You left the line.",
    unclaimed: "Your turn passed: no seats were held in time, so the next fan got it.",
  };

  // The server ended the fan's place or turn (a booking ends it too, which needs no word).
  function ended(reason) {
    if (reason === "booked" || ["done", "left", "checkout"].includes(s.phase)) return;
    stopListening();
    if (reason === "lost") {
      // The queue lost its state, not the fan their place: the stored queue ticket asks
      // for it back (a place in line, or the turn itself), with nothing to click.
      notice("Reconnecting to the line…");
      join();
      return;
    }
    if (s.phase === "seats") s.turnOver = true;
    notice((ENDED_WORDS[reason] || "Your place in line has ended.") + " Rejoin to try again.", "bad");
    rejoinButton();
  }

  function watchSilence() {
    clearTimeout(s.silenceTimer);
    s.silenceTimer = setTimeout(() => {
      // Quiet for too long: a proxy may have dropped the socket without closing it.
      if (s.ws) s.ws.close();
    }, SILENCE_MS);
  }

  function startPolling() {
    if (s.pollTimer) return;
    const tick = async () => {
      try {
        apply(await call("GET", `/queue/${eventId}/status`));
        if (s.phase === "queue") notice("");
      } catch (err) {
        if (err.code === "not_in_queue" && s.phase === "queue") {
          stopPolling();
          join(); // lost the place (or the store did): the queue ticket asks for it back
          return;
        }
        if (err.status !== 429) notice(err.message);
      }
      if (s.pollTimer) s.pollTimer = setTimeout(tick, POLL_MS);
    };
    s.pollTimer = setTimeout(tick, 0);
  }

  function stopPolling() {
    clearTimeout(s.pollTimer);
    s.pollTimer = null;
  }

  function stopListening() {
    s.stops += 1;
    clearTimeout(s.connectTimer);
    stopPolling();
    clearTimeout(s.silenceTimer);
    const ws = s.ws;
    s.ws = null;
    if (ws) ws.close();
    live("");
  }

  const live = (text) => ($("live").textContent = text);

  // --- admitted: choose seats --------------------------------------------------------------

  function admitted(token, expiresAt) {
    if (["seats", "checkout", "done"].includes(s.phase)) {
      s.admission = { token, expiresAt }; // a renewed token replaces the old one
      return;
    }
    s.admission = { token, expiresAt };
    progress(100);
    const saved = savedHold();
    if (saved) {
      checkout(saved);
    } else {
      chooseSeats();
    }
  }

  function sessionTick() {
    const line = s.phase === "checkout" ? holdLine() : sessionLine();
    if (line !== null) {
      (s.phase === "checkout" ? $("hold-left") : $("session-left")).textContent = line;
    }
  }
  setInterval(sessionTick, 1000);

  function sessionLine() {
    if (!s.admission || !s.admission.expiresAt) return "";
    const { left, text } = countdown(s.admission.expiresAt);
    if (left > 0) return `Your turn lasts ${text} more. Hold seats to keep them while you pay.`;
    if (s.phase === "seats" && !s.turnOver) {
      s.turnOver = true;
      notice("Your turn has ended before seats were held. Rejoin the line to try again.", "bad");
      rejoinButton();
    }
    return "Your turn has ended.";
  }

  function rejoinButton() {
    $("notice").append(
      el("div", {}, el("button", { type: "button", onclick: () => location.reload() }, "Rejoin the line")),
    );
  }

  async function chooseSeats() {
    show("seats");
    sessionTick();
    const quantity = $("best-quantity");
    if (!quantity.options.length) {
      for (let n = 1; n <= MAX_TICKETS; n++) quantity.append(el("option", { value: n }, String(n)));
      quantity.value = "2";
    }
    try {
      await loadEvent(); // fresh availability per section
    } catch (err) {
      notice(err.message, "bad");
    }
    const tiers = (s.event.price_tiers || []).filter((t) => t.available > 0);
    const label = (t) => `${t.section} · ${money(t.price_cents, s.event.currency)} · ${count(t.available)} left`;
    for (const id of ["best-section", "pick-section"]) {
      const select = $(id);
      const keep = select.value;
      select.replaceChildren(...(id === "best-section" ? [el("option", { value: "" }, "Any section")] : []));
      for (const tier of tiers) select.append(el("option", { value: tier.section }, label(tier)));
      if (keep && tiers.some((t) => t.section === keep)) select.value = keep;
    }
    if (!tiers.length && s.event.availability && s.event.availability.available === 0) {
      notice("Every seat is held or sold right now. Held seats come back if they are not paid for.");
    }
    await loadSeatMap();
  }

  // Loads overlap (admission loads the first section while the fan picks another, a
  // refused reserve reloads): only the newest may draw, or a slow answer for a section the
  // fan has left would replace the seats of the one they chose.
  let seatMapLoads = 0;

  async function loadSeatMap() {
    const load = ++seatMapLoads;
    const section = $("pick-section").value;
    const map = $("seat-map");
    if (!section) {
      delete map.dataset.section;
      map.replaceChildren();
      return;
    }
    if (map.dataset.section !== section) {
      map.replaceChildren(el("p", { class: "muted" }, "Loading seats…"));
    }
    let page;
    try {
      const q = new URLSearchParams({ status: "available", section, limit: "500" });
      page = await patiently(() => api("GET", `/events/${eventId}/tickets?${q}`));
    } catch (err) {
      if (load !== seatMapLoads) return;
      delete map.dataset.section;
      map.replaceChildren(el("p", { class: "muted" }, err.message));
      return;
    }
    if (load !== seatMapLoads) return;
    map.dataset.section = section;
    const rows = new Map();
    for (const ticket of page.items) {
      const row = ticket.seat.row;
      if (!rows.has(row)) rows.set(row, []);
      rows.get(row).push(ticket);
    }
    map.replaceChildren(
      ...[...rows].map(([row, tickets]) =>
        el("div", { class: "seat-row" }, el("span", { class: "row-name" }, `Row ${row}`), tickets.map(seatButton)),
      ),
    );
    if (!page.items.length) map.replaceChildren(el("p", { class: "muted" }, "No seats left in this section."));
  }

  function seatButton(ticket) {
    const taken = s.taken.has(ticket.id);
    return el(
      "button",
      {
        type: "button",
        class: "seat" + (taken ? " taken" : ""),
        disabled: taken,
        "aria-pressed": String(s.picked.has(ticket.id)),
        "aria-label": `Row ${ticket.seat.row} seat ${ticket.seat.number}, ${money(ticket.price_cents, s.event.currency)}`,
        dataset: { ticket: ticket.id },
        onclick: (e) => togglePick(ticket, e.currentTarget),
      },
      String(ticket.seat.number),
    );
  }

  function togglePick(ticket, button) {
    if (s.picked.has(ticket.id)) {
      s.picked.delete(ticket.id);
    } else {
      if (s.picked.size >= MAX_TICKETS) {
        notice(`You can choose up to ${MAX_TICKETS} seats.`);
        return;
      }
      s.picked.set(ticket.id, ticket);
    }
    button.setAttribute("aria-pressed", String(s.picked.has(ticket.id)));
    renderPicked();
  }

  function renderPicked() {
    const picked = [...s.picked.values()];
    const total = picked.reduce((sum, t) => sum + t.price_cents, 0);
    $("picked").textContent = picked.length
      ? `${picked.length} seat${picked.length > 1 ? "s" : ""}: ` +
        picked.map((t) => `${t.seat.section} row ${t.seat.row} seat ${t.seat.number}`).join(", ") +
        ` · ${money(total, s.event.currency)}`
      : "No seats chosen yet.";
    $("reserve-picked").disabled = !picked.length;
  }

  async function reserve(ask, button) {
    const bodyText = JSON.stringify(ask);
    if (!s.reserveAttempt || s.reserveAttempt.body !== bodyText) {
      s.reserveAttempt = { body: bodyText, key: "reserve-" + randomId(12) };
    }
    const headers = { "Idempotency-Key": s.reserveAttempt.key };
    if (s.admission) headers["X-Admission-Token"] = s.admission.token;
    button.disabled = true;
    notice("");
    try {
      const hold = await call("POST", "/booking/reserve", { body: ask, headers });
      s.reserveAttempt = null;
      s.picked.clear();
      renderPicked();
      sessionStorage.setItem(holdKey(), JSON.stringify(hold));
      checkout(hold);
    } catch (err) {
      if (![0, 503].includes(err.status)) s.reserveAttempt = null; // an answer: ask anew
      notice(err.message, "bad");
      if (err.code === "tickets_unavailable") {
        for (const id of err.problem.unavailable_ticket_ids || []) {
          s.taken.add(id);
          s.picked.delete(id);
        }
        renderPicked();
        loadSeatMap();
      } else if (["admission_invalid", "admission_required"].includes(err.code)) {
        rejoinButton();
      }
    } finally {
      button.disabled = false;
      if (button.id === "reserve-picked") button.disabled = !s.picked.size;
    }
  }

  // --- checkout ----------------------------------------------------------------------------

  function savedHold() {
    try {
      const hold = JSON.parse(sessionStorage.getItem(holdKey()));
      return hold && Date.parse(hold.expires_at) > Date.now() ? hold : null;
    } catch (err) {
      return null;
    }
  }

  function checkout(hold) {
    s.hold = hold;
    s.payKey = null;
    show("checkout");
    const ticketLine = (t) =>
      el(
        "li",
        {},
        el("span", {}, `${t.seat.section} · row ${t.seat.row} · seat ${t.seat.number}`),
        el("span", {}, money(t.price_cents, hold.currency)),
      );
    $("hold-tickets").replaceChildren(...hold.tickets.map(ticketLine));
    $("hold-total").textContent = money(hold.amount_cents, hold.currency);
    sessionTick();
  }

  function holdLine() {
    if (!s.hold) return null;
    const { left, text } = countdown(s.hold.expires_at);
    if (left > 0) return `Your seats are held for ${text}.`;
    expired();
    return null;
  }

  function expired() {
    sessionStorage.removeItem(holdKey());
    s.hold = null;
    notice("Your hold on these seats expired. Please pick seats again.", "bad");
    chooseSeats();
  }

  async function pay(event) {
    event.preventDefault();
    if (!s.hold) return;
    s.payKey = s.payKey || "confirm-" + randomId(12);
    const button = $("pay");
    button.disabled = true;
    button.textContent = "Paying…";
    notice("");
    try {
      const booking = await call("POST", "/booking/confirm", {
        body: { hold_id: s.hold.hold_id, payment_method: $("card").value },
        headers: { "Idempotency-Key": s.payKey },
      });
      confirmed(booking);
    } catch (err) {
      // Only a lost answer is retried with the same key; a decline gets a fresh attempt.
      if (![0, 503].includes(err.status)) s.payKey = null;
      notice(err.message, "bad");
      if (["hold_expired", "hold_not_found"].includes(err.code)) expired();
    } finally {
      button.disabled = false;
      button.textContent = "Pay";
    }
  }

  async function changeSeats() {
    const hold = s.hold;
    if (!hold) return chooseSeats();
    try {
      await call("DELETE", `/booking/holds/${hold.hold_id}`);
    } catch (err) {
      if (!["hold_expired", "hold_not_found"].includes(err.code)) {
        notice(err.message, "bad");
        return;
      }
    }
    sessionStorage.removeItem(holdKey());
    s.hold = null;
    chooseSeats();
  }

  function confirmed(booking) {
    sessionStorage.removeItem(holdKey());
    s.hold = null;
    stopListening();
    show("done");
    notice("");
    $("booking-id").textContent = booking.booking_id;
    $("booking-tickets").replaceChildren(
      ...booking.tickets.map((t) =>
        el("li", {}, el("span", {}, `${t.seat.section} · row ${t.seat.row} · seat ${t.seat.number}`),
          el("span", {}, money(t.price_cents, booking.currency))),
      ),
    );
    $("booking-total").textContent = money(booking.amount_cents, booking.currency);
  }

  // --- wiring ------------------------------------------------------------------------------

  $("best-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const ask = { event_id: eventId, quantity: Number($("best-quantity").value) };
    if ($("best-section").value) ask.section = $("best-section").value;
    reserve(ask, $("best-submit"));
  });
  $("pick-section").addEventListener("change", loadSeatMap);
  $("reserve-picked").addEventListener("click", (e) =>
    reserve({ event_id: eventId, ticket_ids: [...s.picked.keys()] }, e.currentTarget),
  );
  $("card").addEventListener("change", (e) => {
    $("card-number").value = e.currentTarget.selectedOptions[0].dataset.number;
  });
  $("pay-form").addEventListener("submit", pay);
  $("change-seats").addEventListener("click", changeSeats);

  async function start() {
    $("leave").addEventListener("click", leave);
    $("fairness").href = `/queue/${eventId}/fairness`;
    if (!Number.isSafeInteger(eventId) || eventId < 1) {
      $("event-name").textContent = "No such event";
      return;
    }
    try {
      ({ token: s.token, user: s.user } = await signIn("fan", params.get("user"), []));
      $("who").textContent = "Signed in as " + s.user;
      s.first = Number(localStorage.getItem(firstKey())) || null;
      await loadEvent();
      if (!s.event.queue_enabled) {
        notice("This event has no waiting room: choose your seats straight away.", "good");
        const saved = savedHold();
        if (saved) checkout(saved);
        else chooseSeats();
        return;
      }
      await loadPresale();
      await join();
    } catch (err) {
      show("error");
      if (err.code === "event_not_found") $("event-name").textContent = "No such event";
      notice(err.message, "bad");
    }
  }

  start();
})();
