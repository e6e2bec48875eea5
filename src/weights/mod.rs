//! Managed weights: import, lockfile, packing, artifacts.
