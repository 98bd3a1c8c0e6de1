// knnvocab console: pointing at the overlay opens the segment under the pointer in the
// list (the list itself works without this script, by keyboard or click).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const img = document.getElementById("overlay");
  if (!img || !img.dataset.map) return;
  const map = JSON.parse(img.dataset.map);
  const step = Math.max(1, Math.ceil(map.w / map.rows[0].length));
  let shown = null;
  const show = (id, scroll) => {
    const panel = document.getElementById("segment-" + id);
    if (!panel || panel === shown) return;
    if (shown) { shown.open = false; shown.classList.remove("pointed"); }
    panel.open = true;
    panel.classList.add("pointed");
    if (scroll) panel.scrollIntoView({ block: "nearest" });
    shown = panel;
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
