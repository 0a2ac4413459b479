// The gallery's behaviour: endless scroll of the grid; on an item, the confidence slider and
// the toggles that hide shapes, and the left/right keys through the results.
"use strict";

function moreCards() {
  const more = document.getElementById("more");
  const cards = document.getElementById("cards");
  if (!more || !cards) return;
  let loading = false;
  async function load(event) {
    if (event) event.preventDefault();
    if (loading || !more.getAttribute("href")) return;
    loading = true;
    const response = await fetch(more.getAttribute("href"), { credentials: "same-origin" });
    if (response.ok) {
      cards.insertAdjacentHTML("beforeend", await response.text());
      const next = response.headers.get("X-Next");
      if (next) more.setAttribute("href", next);
      else more.parentElement.remove();
    }
    loading = false;
  }
  more.addEventListener("click", load);
  if ("IntersectionObserver" in window) {
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && document.body.contains(more)) load();
    }, { rootMargin: "400px" });
    seen.observe(more);
  }
}

function shapeFilters() {
  const slider = document.getElementById("confidence");
  if (!slider) return;
  const output = document.getElementById("confidence-value");
  const sources = [...document.querySelectorAll("[data-toggle-source]")];
  const labels = [...document.querySelectorAll("[data-toggle-label]")];
  function apply() {
    const minimum = parseFloat(slider.value);
    output.textContent = minimum.toFixed(2);
    const offSources = new Set(sources.filter((b) => !b.checked).map((b) => b.dataset.toggleSource));
    const offLabels = new Set(labels.filter((b) => !b.checked).map((b) => b.dataset.toggleLabel));
    for (const shape of document.querySelectorAll("#overlay .shape")) {
      const source = shape.dataset.source;
      const confidence = shape.dataset.confidence === "" ? null : parseFloat(shape.dataset.confidence);
      const belowSlider = source !== "human" && confidence !== null && confidence < minimum;
      const hidden = belowSlider || offSources.has(source) || offLabels.has(shape.dataset.label);
      shape.classList.toggle("hidden", hidden);
    }
  }
  slider.addEventListener("input", apply);
  // a field following the slider (the review's "accept all above")
  const follower = document.querySelector(`[data-follows="${slider.id}"]`);
  if (follower) {
    slider.addEventListener("input", () => { follower.value = parseFloat(slider.value).toFixed(2); });
    follower.value = parseFloat(slider.value).toFixed(2);
  }
  for (const box of [...sources, ...labels]) box.addEventListener("change", apply);
  apply();
}

// The image as large as the column and 78% of the window allow, small ones scaled up too; the
// SVG over it follows, its shapes staying in the image's own pixels.
function fitImage() {
  const image = document.querySelector(".stage img");
  if (!image) return;
  const ratio = Number(image.getAttribute("width")) / Number(image.getAttribute("height"));  // the file's pixels
  if (!(ratio > 0 && Number.isFinite(ratio))) return;
  const stage = image.parentElement;
  stage.style.width = `min(100%, calc(78vh * ${ratio}))`;
  stage.classList.add("fitted");
}

function arrowKeys() {
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")
        && target.type !== "checkbox") return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const link = document.getElementById(event.key === "ArrowLeft" ? "previous" : event.key === "ArrowRight" ? "next" : "");
    if (link) { event.preventDefault(); window.location.href = link.getAttribute("href"); return; }
    const button = document.getElementById({ a: "accept", r: "reject", u: "undo" }[event.key] || "");
    if (button) { event.preventDefault(); button.click(); }
  });
}

function pollJobs() {
  const table = document.querySelector("table[data-poll]");
  if (!table || !table.dataset.poll) return;
  let ids = table.dataset.poll.split(",");
  async function poll() {
    const response = await fetch("/ui/jobs/progress?ids=" + ids.join(","), { credentials: "same-origin" });
    if (!response.ok) return;
    for (const job of await response.json()) {
      for (const row of table.querySelectorAll(`[data-job="${job.id}"]`)) {
        for (const name of ["status", "done", "total", "failed"]) {
          const cell = row.querySelector("." + name);
          if (cell) cell.textContent = String(job[name]);
        }
        const bar = row.querySelector("progress");
        if (bar) { bar.max = Math.max(job.total, 1); bar.value = job.done; }
      }
      if (job.finished) {
        ids = ids.filter((id) => id !== String(job.id));
        if (table.dataset.reload) { window.location.reload(); return; }
      }
    }
    if (ids.length) setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

document.addEventListener("DOMContentLoaded", () => { moreCards(); fitImage(); shapeFilters(); arrowKeys(); pollJobs(); });
