//! Core errors become the Ruby exceptions defined in `lib/kamal_rs/errors.rb`.

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

pub fn to_ruby(ruby: &Ruby, err: kamal_rs_core::Error) -> Error {
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("KamalRs")
        .and_then(|m| m.const_get::<_, ExceptionClass>(err.kind.ruby_class()))
        .unwrap_or_else(|_| ruby.exception_runtime_error());
    Error::new(class, err.message)
}
