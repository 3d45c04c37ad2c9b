//! Integration tests of bridge-core: one test binary, one module per concern. Every test
//! opens its own store in a fresh temporary directory (see `support`), so tests run in
//! parallel.

mod reconcile;
mod record;
mod support;
mod sync_modes;
