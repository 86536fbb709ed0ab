// dlbook (see book/_ext/a11y.py): code and outputs that scroll stay reachable
// with the keyboard once a hidden code cell or a collapsed solution is opened
// (WCAG 2.1.1). The theme gives a scrolling region a tab stop when the page
// loads or its elements change, and opening a <details> or a toggled solution
// does neither; so the same rule is applied again inside what was opened.
(() => {
  const SCROLLERS = ["pre", ".nboutput > .output_area", ".cell_output > .output",
    ".jp-RenderedHTMLCommon", ".pst-scrollable-table-container"].join(", ");
  const update = (root) => {
    root.querySelectorAll(SCROLLERS).forEach((el) => {
      const scrolls = el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight;
      el.tabIndex = scrolls ? 0 : -1;
    });
  };
  // "toggle" does not bubble: listen in the capture phase.
  document.addEventListener("toggle", (event) => update(event.target), true);
  document.addEventListener("click", (event) => {
    const box = event.target.closest && event.target.closest(".toggle");
    if (box) requestAnimationFrame(() => update(box));
  });
})();
