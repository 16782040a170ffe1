//! Randomised comparison and property tests.
