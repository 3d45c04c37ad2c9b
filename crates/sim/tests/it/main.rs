//! Integration tests of the simulators against a real HTTP client: one test binary, one
//! module per concern, the shared requests and demo starts in `support`.

mod asana;
mod docspace;
mod faults;
mod lifecycle;
mod support;
mod webhooks;
