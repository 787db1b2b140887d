//! Template text: `{{Placeholder}}` parsing and rendering (SPEC.md R-TPL-2, R-TPL-3).
