// Keeps a job page live: polls the job's JSON every 2 s until the job has finished.
(function () {
  const card = document.getElementById("job");
  if (!card) return;
  const finished = new Set(["succeeded", "failed", "cancelled"]);
  const text = (id, value) => { document.getElementById(id).textContent = value; };

  function duration(seconds) {
    if (seconds == null || !isFinite(seconds)) return "?";
    const s = Math.round(seconds);
    return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
      : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  }

  function show(job) {
    const p = job.progress || {};
    text("job-state", job.state);
    text("job-attempts", job.attempts > 1 ? `(attempt ${job.attempts})` : "");
    document.getElementById("job-progress").value = job.progress_fraction;
    const parts = [`step ${p.step || 0} of ${p.total || "?"}`];
    if (p.epoch) parts.push(`epoch ${p.epoch}`);
    if (p.d_loss != null) parts.push(`D loss ${p.d_loss}`, `G loss ${p.g_loss}`);
    if (p.images_per_s) parts.push(`${p.images_per_s} images/s`);
    if (!finished.has(job.state) && p.eta_s != null) parts.push(`ETA ${duration(p.eta_s)}`);
    text("job-figures", parts.join(" · "));
    text("job-error", job.error || "");
    text("job-log", job.log_tail.join("\n"));
    for (const [id, url] of [["samples", job.samples_url], ["loss", job.loss_plot_url]]) {
      const img = document.getElementById(id);
      if (url && img.getAttribute("src") !== url) img.src = url;
    }
    document.getElementById("cancel-form").hidden = finished.has(job.state);
    const download = document.getElementById("download");
    if (job.generator_url) { download.href = job.generator_url; download.hidden = false; }
    return finished.has(job.state);
  }

  async function poll() {
    try {
      const response = await fetch(card.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok && show(await response.json())) return;
    } catch (error) { /* the server may be restarting: try again */ }
    setTimeout(poll, 2000);
  }
  poll();
})();
