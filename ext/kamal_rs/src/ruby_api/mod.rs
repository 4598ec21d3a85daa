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
    // Kamal 1.x loads `.env` files into ENV before its config's ERB runs: Ruby does the loading (ENV
    // is Ruby's), with the same dotenv rules as `.kamal/secrets`.
    native.define_singleton_method("parse_dotenv", function!(parse_dotenv, 1))?;
    // The run's options, declared once in the core: the CLI, `KamalRs.deploy` and the Rake tasks are
    // built from this table.
    native.define_singleton_method("options", function!(options, 0))?;
    // Each error's Ruby class and the class Kamal raises for it: the core names the latter in the
    // run's logs, the command line prints it.
    native.define_singleton_method("error_classes", function!(error_classes, 0))?;
    config::init(ruby, &native)?;
    Ok(())
}

fn options(ruby: &Ruby) -> Result<magnus::Value, Error> {
    serde_magnus::serialize(ruby, &kamal_rs_core::runner::OPTIONS)
}

fn error_classes() -> Vec<(&'static str, &'static str)> {
    kamal_rs_core::error::ErrorKind::ALL
        .iter()
        .map(|k| (k.ruby_class(), k.kamal_class()))
        .collect()
}

fn parse_dotenv(ruby: &Ruby, text: String) -> Result<Vec<(String, String)>, Error> {
    let env = |name: &str| std::env::var(name).ok();
    kamal_rs_core::secrets::dotenv::parse(
        &text,
        &env,
        &kamal_rs_core::secrets::dotenv::ShellCommand,
    )
    .map_err(|e| errors::to_ruby(ruby, e))
}
