// knnvocab console: pointing at the overlay opens the segment under the pointer in the
// list (the list itself works without this script, by keyboard or click).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const img = document.getElementById("overlay");
  if (!img || !img.dataset.map) return;
  const map = JSON.parse(img.dataset.map);
  const step = Math.max(1, Math.ceil(map.w / map.rows[0].length));
  let shown = null;
  const marker = document.getElementById("marker");
  const mark = (panel) => {  // outline the open segment's box on the overlay
    const [x, y, w, h] = panel.dataset.bbox.split(",").map(Number);
    const sx = img.clientWidth / map.w, sy = img.clientHeight / map.h;
    Object.assign(marker.style, { left: `${img.offsetLeft + x * sx}px`, top: `${img.offsetTop + y * sy}px`,
      width: `${w * sx}px`, height: `${h * sy}px` });
    marker.hidden = false;
  };
  document.querySelectorAll("#segments details").forEach((panel) => {
    panel.addEventListener("toggle", () => { if (panel.open) mark(panel); });
  });
  const show = (id, scroll) => {
    const panel = document.getElementById("segment-" + id);
    if (!panel || panel === shown) return;
    if (shown) { shown.open = false; shown.classList.remove("pointed"); }
    panel.open = true;
    panel.classList.add("pointed");
    if (scroll) panel.scrollIntoView({ block: "nearest" });
    shown = panel;
    mark(panel);
  };
  const at = (event) => {
    const box = img.getBoundingClientRect();
    const x = Math.floor(((event.clientX - box.left) / box.width) * map.w / step);
    const y = Math.floor(((event.clientY - box.top) / box.height) * map.h / step);
    const row = map.rows[Math.min(map.rows.length - 1, Math.max(0, y))];
    return row ? row[Math.min(row.length - 1, Math.max(0, x))] : 0;
  };
  img.addEventListener("mousemove", (event) => { const id = at(event); if (id) show(id, true); });
  img.addEventListener("click", (event) => { const id = at(event); if (id) show(id, true); });
});
