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

  // The quality metrics as a small inline SVG: SWD (mean, and each pyramid level faintly) and the
  // MS-SSIM of synthetic pairs next to real pairs, per measured step.
  const SVG_NS = "http://www.w3.org/2000/svg";
  let drawnMetrics = "";

  function svgChild(parent, name, attributes, text) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text != null) element.textContent = text;
    parent.appendChild(element);
    return element;
  }

  function panel(svg, left, title, steps, series) {
    const [top, width, height] = [34, 190, 130];
    const values = series.flatMap((line) => line.values).filter((value) => value != null);
    let [low, high] = [Math.min(...values), Math.max(...values)];
    if (high - low < 1e-9) { low -= 0.5 * Math.abs(low || 1); high += 0.5 * Math.abs(high || 1); }
    const margin = 0.08 * (high - low);  // points off the frame
    [low, high] = [low - margin, high + margin];
    const [first, last] = [steps[0], steps[steps.length - 1]];
    const x = (step) => left + (last > first ? (step - first) / (last - first) * width : width / 2);
    const y = (value) => top + height - (value - low) / (high - low) * height;
    svgChild(svg, "text", { x: left, y: 12, fill: "#ccc", "font-size": 10 }, title);
    svgChild(svg, "rect", { x: left, y: top, width, height, fill: "none", stroke: "#555" });
    svgChild(svg, "text", { x: left - 4, y: top + 8, fill: "#999", "font-size": 9, "text-anchor": "end" }, +high.toPrecision(3));
    svgChild(svg, "text", { x: left - 4, y: top + height, fill: "#999", "font-size": 9, "text-anchor": "end" }, +low.toPrecision(3));
    svgChild(svg, "text", { x: left, y: top + height + 12, fill: "#999", "font-size": 9 }, `step ${first}`);
    if (last > first) svgChild(svg, "text", { x: left + width, y: top + height + 12, fill: "#999", "font-size": 9, "text-anchor": "end" }, `${last}`);
    series.forEach((line, index) => {
      const points = steps.map((step, i) => [x(step), y(line.values[i])]).filter((_, i) => line.values[i] != null);
      const style = { fill: "none", stroke: line.colour, "stroke-width": line.width || 1.5, opacity: line.opacity || 1 };
      if (line.dash) style["stroke-dasharray"] = "4 3";
      svgChild(svg, "polyline", { ...style, points: points.map((point) => point.join(",")).join(" ") });
      for (const [cx, cy] of points) svgChild(svg, "circle", { cx, cy, r: 2.5, fill: line.colour, opacity: line.opacity || 1 });
      if (line.label) svgChild(svg, "text", { x: left + 4 + 50 * index, y: 26, fill: line.colour, "font-size": 9, opacity: line.opacity || 1 }, line.label);
    });
  }

  function showMetrics(points) {
    if (!points || !points.length) return;
    const drawn = JSON.stringify(points);
    if (drawn === drawnMetrics) return;
    drawnMetrics = drawn;
    const svg = document.getElementById("metrics-plot");
    svg.replaceChildren();
    svg.removeAttribute("hidden");  // an SVG element has no .hidden property
    const steps = points.map((point) => point.step);
    const latest = points[points.length - 1];
    const levels = Object.keys(latest.swd_levels).sort((a, b) => b - a);  // finest first
    panel(svg, 40, "SWD ×10³ (lower: closer to real)", steps, [
      { label: "mean", values: points.map((point) => point.swd_mean), colour: "#7fb3ff", width: 2 },
      ...levels.map((level, index) => ({
        label: index === 0 ? `levels ${levels.join("², ")}²` : null,
        values: points.map((point) => (point.swd_levels || {})[level]),
        colour: "#7fb3ff",
        width: 1,
        opacity: 0.45,
      })),
    ]);
    panel(svg, 280, `MS-SSIM, ${latest.scales} scales (lower: diverse)`, steps, [
      { label: "synthetic", values: points.map((point) => point.ms_ssim_synthetic), colour: "#f6ad55" },
      { label: "real", values: points.map((point) => point.ms_ssim_real), colour: "#9ae6b4", dash: true },
    ]);
    text("metrics-scales", `(MS-SSIM over ${latest.scales} scales)`);
    const perLevel = levels.map((level) => `${level}²: ${latest.swd_levels[level].toFixed(1)}`).join(", ");
    text("metrics-figures", `step ${latest.step} (epoch ${latest.epoch}): SWD×10³ ${latest.swd_mean.toFixed(1)} ` +
      `(${perLevel}) · MS-SSIM synthetic ${latest.ms_ssim_synthetic.toFixed(3)}, real ${latest.ms_ssim_real.toFixed(3)} · ` +
      `${latest.sample_count} images of each, ${latest.pairs} pairs`);
  }

  function showDiversity(d) {
    if (!d) return;
    const element = document.getElementById("diversity-verdict");
    const collapsed = d.verdict === "collapsed";
    element.className = collapsed ? "error" : "muted";
    element.textContent = (collapsed ? "Collapsed: synthetic pairs are far more alike than real pairs"
      : "Diverse: synthetic pairs about as alike as real pairs") +
      ` (MS-SSIM ${d.ms_ssim_synthetic.toFixed(3)} against ${d.ms_ssim_real.toFixed(3)}, ` +
      `${d.excess.toFixed(3)} over real; collapsed above ${d.margin.toFixed(2)}).`;
  }

  function show(job) {
    const p = job.progress || {};
    text("job-state", job.state);
    text("job-attempts", job.attempts > 1 ? `(attempt ${job.attempts})` : "");
    document.getElementById("job-progress").value = job.progress_fraction;
    // A budget in steps shows "step n of N"; one in minutes, the training time spent and left.
    const parts = [p.total ? `step ${p.step || 0} of ${p.total}` : `step ${p.step || 0}`];
    if (p.budget_s) parts.push(`trained ${duration(p.trained_s)} of ${duration(p.budget_s)}`);
    if (p.epoch) parts.push(`epoch ${p.epoch}`);
    if (p.d_loss != null) parts.push(`D loss ${p.d_loss}`, `G loss ${p.g_loss}`);
    if (p.images_per_s) parts.push(`${p.images_per_s} images/s`);
    if (!finished.has(job.state) && p.eta_s != null) {
      const end = new Date(Date.now() + p.eta_s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      parts.push(`${duration(p.eta_s)} left (ETA ${end})`);
    }
    text("job-figures", parts.join(" · "));
    text("job-error", job.error || "");
    text("job-log", job.log_tail.join("\n"));
    for (const [id, url] of [["samples", job.samples_url], ["loss", job.loss_plot_url]]) {
      const img = document.getElementById(id);
      if (url && img.getAttribute("src") !== url) img.src = url;
    }
    showMetrics(job.metrics);
    showDiversity(job.diversity);
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
