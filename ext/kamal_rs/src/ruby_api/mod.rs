mod config;
mod convert;
mod deploy;
mod errors;

use magnus::{function, prelude::*, Error, Ruby};

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.define_module("KamalRs")?;
    let native = module.define_module("Native")?;
    native.define_singleton_method(
        "kamal_version",
        function!(|| kamal_rs_core::KAMAL_VERSION, 0),
    )?;
    config::init(ruby, &native)?;
    Ok(())
}
