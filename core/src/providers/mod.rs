//! The providers' HTTP APIs as the core calls them: credential checks (R-CFG-3) now, senders later.
