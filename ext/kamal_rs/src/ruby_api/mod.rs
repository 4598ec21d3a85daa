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

/// dotenv 3.2's rules over `text`. With a block, each `$(...)` is the block's value for the command
/// text (variables expanded): the Ruby side runs them as Kamal does, and whatever the block raises
/// (Errno::ENOENT from backticks, Kamal's own errors) reaches the caller as it was raised.
fn parse_dotenv(ruby: &Ruby, text: String) -> Result<Vec<(String, String)>, Error> {
    let env = |name: &str| std::env::var(name).ok();
    let result = if ruby.block_given() {
        let block = RubyCommands {
            block: ruby.block_proc()?,
            raised: std::cell::RefCell::new(None),
        };
        let parsed = kamal_rs_core::secrets::dotenv::parse(&text, &env, &block);
        if let Some(raised) = block.raised.into_inner() {
            return Err(raised);
        }
        parsed
    } else {
        kamal_rs_core::secrets::dotenv::parse(
            &text,
            &env,
            &kamal_rs_core::secrets::dotenv::ShellCommand,
        )
    };
    result.map_err(|e| errors::to_ruby(ruby, e))
}

/// A Ruby block as the parser's `$(...)` runner; runs with the GVL held (parse_dotenv's caller's).
struct RubyCommands {
    block: magnus::block::Proc,
    raised: std::cell::RefCell<Option<Error>>,
}

impl kamal_rs_core::secrets::CommandSubstitution for RubyCommands {
    fn run(&self, command: &str) -> kamal_rs_core::Result<String> {
        self.block.call::<_, String>((command,)).map_err(|e| {
            self.raised.borrow_mut().get_or_insert(e);
            kamal_rs_core::Error::runtime("a secrets command raised")
        })
    }
}
