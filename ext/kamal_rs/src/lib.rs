//! The native half of the `kamal_rs` gem: a thin magnus layer over `kamal_rs_core`.
//! `ruby_api/*` mirrors the Ruby classes it defines under `KamalRs::Native`.

mod helpers;
mod ruby_api;

use magnus::{Error, Ruby};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    ruby_api::init(ruby)
}
