// Live ticket queue: reload the table when the server says a ticket changed (server-sent events).
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const source = new EventSource(live.dataset.live);
  let pending = false;
  async function refresh() {
    if (pending) return;
    pending = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ["ticket-table", "total"]) {
        const fresh = page.getElementById(id);
        const here = document.getElementById(id);
        if (fresh && here) here.replaceWith(fresh);
      }
      document.body.dataset.refreshed = String(Date.now());
    } finally {
      pending = false;
    }
  }
  source.addEventListener("open", () => { live.className = "on"; live.textContent = "live"; });
  source.addEventListener("error", () => { live.className = "off"; live.textContent = "reconnecting…"; });
  source.addEventListener("tickets", refresh);
})();
