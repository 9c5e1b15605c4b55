// The console's registered presale panel, one per queue card: the presale's window, where
// it stands, its registrations, codes issued and redeemed and the seats of its share
// taken, and whether the queue holds admission because all of it is
// (GET /admin/queues/{id}/presale), the form that makes or changes it (PUT) and
// the draw (POST .../presale/draw). An event without one shows the form only.
"use strict";

window.TK.presalePanel = (() => {
  const { el, count, say } = window.TK;
  const REFRESH_MS = 5000;
  const TIMES = ["registration_opens_at", "registration_closes_at", "general_sale_at"];
  const STATES = {
    scheduled: "registration not open yet",
    registration_open: "registration open",
    registration_closed: "registration closed: draw it",
    drawn: "drawn: presale codes issued",
    over: "over: the general sale is on",
  };

  // A datetime-local input's value for an RFC 3339 time, in the operator's time zone.
  function local(value) {
    const d = new Date(value);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  const when = (value) => new Date(value).toLocaleString();

  function create(eventId, call) {
    const figure = (label, key) =>
      el("div", {}, el("dt", {}, label), el("dd", { dataset: { p: key } }, "–"));
    const input = (label, name, attrs) => el("label", {}, label, el("input", { name, ...attrs }));
    const form = el(
      "form",
      { class: "controls", dataset: { form: "presale" } },
      input("Registration opens", "registration_opens_at", { type: "datetime-local", required: true }),
      input("Registration closes", "registration_closes_at", { type: "datetime-local", required: true }),
      input("General sale at", "general_sale_at", { type: "datetime-local", required: true }),
      input("Codes to draw", "codes", { type: "number", min: 1, step: 1, inputmode: "numeric", required: true }),
      input("Presale seats", "seats", { type: "number", min: 1, step: 1, inputmode: "numeric", required: true }),
      el(
        "div",
        { class: "actions" },
        el("button", { type: "submit", class: "secondary", dataset: { action: "save-presale" } }, "Save presale"),
        el("button", { type: "button", dataset: { action: "draw" }, hidden: true }, "Draw codes"),
      ),
    );
    const node = el(
      "section",
      { class: "presale", dataset: { presale: eventId } },
      el("h3", {}, "Registered presale ", el("span", { class: "badge", dataset: { p: "state" } }, "none")),
      el(
        "dl",
        { class: "figures", dataset: { p: "figures" } },
        figure("Registrations", "registrations"),
        figure("Codes issued", "codes_issued"),
        figure("Codes redeemed", "codes_redeemed"),
        figure("Presale seats taken", "seats_taken"),
      ),
      el("p", { class: "muted small", dataset: { p: "window" } }),
      form,
      el("p", { class: "result", role: "status", dataset: { p: "result" } }),
    );
    const p = (key) => node.querySelector(`[data-p="${key}"]`);
    // Set through the CSSOM, which the page's CSP allows (a style attribute it refuses).
    p("figures").style.display = "none";
    // A date and time field is wider than half a phone: one column there, and no field
    // wider than its column.
    form.style.gridTemplateColumns = "repeat(auto-fit, minmax(11rem, 1fr))";
    for (const field of form.querySelectorAll("label, input")) {
      field.style.minWidth = "0";
      if (field.tagName === "INPUT") field.style.width = "100%";
    }
    const panel = { node, presale: null, at: 0, dirty: false };
    form.addEventListener("input", () => (panel.dirty = true));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      save();
    });
    form.querySelector('[data-action="draw"]').addEventListener("click", draw);

    function render() {
      const ps = panel.presale;
      p("figures").style.display = ps ? "" : "none"; // .figures' display: grid beats [hidden]
      p("state").textContent = ps ? STATES[ps.state] || ps.state : "none";
      if (!ps) {
        p("window").textContent = "No presale: the queue is open to every fan from on-sale.";
        return;
      }
      p("registrations").textContent = count(ps.registrations);
      p("codes_issued").replaceChildren(count(ps.codes_issued), el("small", {}, ` of ${count(ps.codes)}`));
      p("codes_redeemed").textContent = count(ps.codes_redeemed);
      p("seats_taken").replaceChildren(count(ps.seats_taken), el("small", {}, ` of ${count(ps.seats)}`));
      if (ps.admission_held) {
        // Nobody is admitted until holds of the share lapse or the general sale opens.
        const held = el("small", { dataset: { p: "held" } }, " · admission held");
        held.style.color = "var(--bad)"; // the CSSOM: the page's CSP refuses style attributes
        p("seats_taken").append(held);
      }
      const seed = ps.seed ? `seed ${ps.seed.slice(0, 12)}…` : `commitment ${ps.commitment.slice(0, 12)}…`;
      p("window").textContent =
        `Registration ${when(ps.registration_opens_at)} – ${when(ps.registration_closes_at)}; ` +
        `codes only until ${when(ps.general_sale_at)}; ${seed}`;
      const drawn = ps.state === "drawn" || ps.state === "over";
      form.querySelector('[data-action="draw"]').hidden = ps.state !== "registration_closed";
      form.querySelector('[data-action="save-presale"]').hidden = drawn;
      for (const name of [...TIMES, "codes", "seats"]) form.elements[name].disabled = drawn;
      if (panel.dirty || form.contains(document.activeElement)) return; // never under the operator's typing
      for (const name of TIMES) form.elements[name].value = local(ps[name]);
      form.elements.codes.value = ps.codes;
      form.elements.seats.value = ps.seats;
    }

    async function update(force) {
      const now = Date.now();
      if (!force && now - panel.at < REFRESH_MS) return;
      panel.at = now;
      try {
        panel.presale = await call("GET", `/admin/queues/${eventId}/presale`);
      } catch (err) {
        if (err.status !== 404) throw err;
        panel.presale = null;
      }
      render();
    }

    async function send(method, path, body, done) {
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => (b.disabled = true));
      try {
        panel.presale = await call(method, path, body ? { body } : {});
        panel.dirty = false;
        render();
        say(p("result"), done, "good");
      } catch (err) {
        say(p("result"), err.message, "bad");
      } finally {
        buttons.forEach((b) => (b.disabled = false));
      }
    }

    function save() {
      const body = {};
      for (const name of TIMES) {
        const raw = form.elements[name].value;
        if (!raw) return say(p("result"), `${name.replace(/_/g, " ")} is needed.`, "bad");
        body[name] = new Date(raw).toISOString();
      }
      for (const name of ["codes", "seats"]) body[name] = Number(form.elements[name].value);
      send("PUT", `/admin/queues/${eventId}/presale`, body, "Presale saved; in force within a second.");
    }

    function draw() {
      send("POST", `/admin/queues/${eventId}/presale/draw`, null, "Drawn: the codes are issued.");
    }

    return { node, update };
  }

  return { create };
})();
