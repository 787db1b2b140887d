//! Locales (BCP 47 tags such as `nb-NO`) and the fallback chain of SPEC.md R-TPL-2.
