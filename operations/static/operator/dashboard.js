// Refresh the dashboard in place: the server renders it, this only fetches it again.
(function () {
  "use strict";
  const panel = document.getElementById("dashboard");
  if (!panel) return;
  const seconds = Number(panel.dataset.refreshSeconds) || 5;
  async function refresh() {
    try {
      const response = await fetch(panel.dataset.url, { credentials: "same-origin" });
      if (response.ok) panel.innerHTML = await response.text();
    } finally {
      setTimeout(refresh, seconds * 1000);
    }
  }
  setTimeout(refresh, seconds * 1000);
})();
