// aifdata serve: the web page's one script. The pages work without it; it adds small comforts.
"use strict";

// Light the edges of a lineage node while the pointer is on it.
function lightEdges(graph) {
  graph.querySelectorAll(".node").forEach((node) => {
    const key = node.dataset.key;
    const edges = Array.from(graph.querySelectorAll(".edge")).filter(
      (e) => e.dataset.source === key || e.dataset.target === key);
    node.addEventListener("mouseenter", () => edges.forEach((e) => e.classList.add("lit")));
    node.addEventListener("mouseleave", () => edges.forEach((e) => e.classList.remove("lit")));
  });
}

// Copy a checksum to the clipboard when clicked.
function copyOnClick(button) {
  button.addEventListener("click", () => {
    if (!navigator.clipboard) return;
    navigator.clipboard.writeText(button.dataset.copy).then(() => {
      button.classList.add("copied");
      setTimeout(() => button.classList.remove("copied"), 1200);
    });
  });
}

// Show only the table rows that contain what is typed in a filter box.
function filterRows(input) {
  const body = document.getElementById(input.dataset.filter);
  if (!body) return;
  input.addEventListener("input", () => {
    const want = input.value.toLowerCase();
    body.querySelectorAll("tr").forEach((row) => {
      row.hidden = want !== "" && !row.textContent.toLowerCase().includes(want);
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("svg.graph").forEach(lightEdges);
  document.querySelectorAll("button.copy").forEach(copyOnClick);
  document.querySelectorAll("input.filter").forEach(filterRows);
});
