// The console's one person, one place panel, one per queue card: the event's clusters of
// accounts that look like one actor's (GET /admin/queues/{id}/clusters: address blocks
// and devices with more than K accounts, cards paid with by more than one account), the
// rule in force and how many fans it moved. The rule itself is set in the card's form
// (cluster_rule, cluster_threshold: admin.js).
"use strict";

window.TK.clusterPanel = (() => {
  const { el, count } = window.TK;
  const REFRESH_MS = 5000;
  const KINDS = { address_block: "address block", device: "device", card: "card" };
  const RULES = {
    off: "recorded and shown only",
    harder_challenge: "flagged fans get a harder challenge",
    back_of_line: "flagged fans are moved to the back of the line",
  };

  function create(eventId, call) {
    const rows = el("tbody", {});
    const summary = el("p", { class: "muted small", dataset: { c: "summary" } }, "–");
    const table = el(
      "table",
      { class: "clusters", hidden: true },
      el(
        "thead",
        {},
        el("tr", {}, el("th", {}, "Kind"), el("th", {}, "Key"), el("th", {}, "Accounts"), el("th", {}, "Some of them")),
      ),
      rows,
    );
    const node = el("section", { class: "clusters", dataset: { clusters: eventId } }, el("h3", {}, "One person, one place"), summary, table);
    let at = 0;

    async function update(force) {
      const now = Date.now();
      if (!force && now - at < REFRESH_MS) return;
      at = now;
      let body;
      try {
        body = await call("GET", `/admin/queues/${eventId}/clusters`);
      } catch (err) {
        summary.textContent = `Clusters unavailable: ${err.message}`;
        return;
      }
      const moved = body.moved ? ` · ${count(body.moved)} moved to the back` : "";
      const cards = body.cards_unavailable ? " · cards unavailable just now" : "";
      summary.textContent =
        `Rule ${body.cluster_rule} (${RULES[body.cluster_rule] || ""}), K = ${body.cluster_threshold}: ` +
        `${count(body.clusters.length)} cluster${body.clusters.length === 1 ? "" : "s"}${moved}${cards}`;
      rows.replaceChildren(
        ...body.clusters.map((c) =>
          el(
            "tr",
            { dataset: { kind: c.kind } },
            el("td", {}, KINDS[c.kind] || c.kind),
            el("td", {}, el("code", {}, c.key)),
            el("td", {}, count(c.accounts)),
            el("td", { class: "small" }, c.sample.join(", ") + (c.accounts > c.sample.length ? ", …" : "")),
          ),
        ),
      );
      table.hidden = body.clusters.length === 0;
    }

    return { node, update };
  }

  return { create };
})();
