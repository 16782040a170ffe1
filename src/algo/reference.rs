//! Reference models (test only).
