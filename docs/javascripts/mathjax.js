// MathJax 3 configuration for pymdownx.arithmatex (generic mode); the bundle itself is served from the
// site (assets/mathjax/tex-svg-full.js, copied by docs/hooks.py), so no page loads anything from a CDN.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: { fontCache: "global" },
};
