//! Ruby objects (what Psych loaded) to the core's `Value` tree and back.
//!
//! Ruby to core keeps identity: an Array or Hash reached twice (a YAML alias) becomes one shared node.
//! Core to Ruby makes a new Array or Hash each time, as Kamal's `config` does (it prints
//! `Kamal::Utils.redacted(config.to_h)`, which rebuilds every hash and array): so no anchors.
//! Objects the model does not interpret (a `Date`, say) are parked in `foreign` and come back untouched.

use std::collections::HashMap;

use kamal_rs_core::value::{Map, Object, Value as V};
use magnus::rb_sys::AsRawValue;
use magnus::{
    prelude::*, r_hash::ForEach, value::ReprValue, Error, Float, Integer, RArray, RClass, RHash,
    RModule, RString, Ruby, Symbol, Value,
};

/// Deeper than any real config; past it the tree is refused (a YAML alias that contains itself would
/// otherwise recurse without end, and a deep enough tree would overflow the stack).
const MAX_DEPTH: usize = 100;

pub struct FromRuby<'a> {
    ruby: &'a Ruby,
    foreign: RArray,
    seen: HashMap<usize, V>,
    depth: usize,
}

impl<'a> FromRuby<'a> {
    pub fn new(ruby: &'a Ruby, foreign: RArray) -> Self {
        FromRuby {
            ruby,
            foreign,
            seen: HashMap::new(),
            depth: 0,
        }
    }

    pub fn convert(&mut self, value: Value) -> Result<V, Error> {
        if self.depth > MAX_DEPTH {
            return Err(super::errors::to_ruby(
                self.ruby,
                kamal_rs_core::Error::config(format!(
                    "The configuration is nested more than {MAX_DEPTH} levels deep (or an alias contains itself)"
                )),
            ));
        }
        self.depth += 1;
        let result = self.convert_value(value);
        self.depth -= 1;
        result
    }

    fn convert_value(&mut self, value: Value) -> Result<V, Error> {
        if value.is_nil() {
            return Ok(V::Nil);
        }
        if value.as_raw() == self.ruby.qtrue().as_raw() {
            return Ok(V::Bool(true));
        }
        if value.as_raw() == self.ruby.qfalse().as_raw() {
            return Ok(V::Bool(false));
        }
        if let Some(s) = RString::from_value(value) {
            // Only plain Strings: a String subclass would print with its own YAML tag.
            if s.class().as_raw() == self.ruby.class_string().as_raw() {
                return Ok(V::Str(
                    String::from_utf8_lossy(unsafe { s.as_slice() }).into_owned(),
                ));
            }
        }
        if let Some(sym) = Symbol::from_value(value) {
            return Ok(V::Sym(sym.name()?.into_owned()));
        }
        if let Some(i) = Integer::from_value(value) {
            if let Ok(i) = i.to_i64() {
                return Ok(V::Int(i));
            }
        }
        if let Some(f) = Float::from_value(value) {
            return Ok(V::Float(f.to_f64()));
        }
        let key = value.as_raw() as usize;
        if let Some(done) = self.seen.get(&key) {
            return Ok(done.clone());
        }
        let plain = |class: RClass| value.class().as_raw() == class.as_raw();
        if let (Some(array), true) = (RArray::from_value(value), plain(self.ruby.class_array())) {
            let mut items = Vec::with_capacity(array.len());
            for i in 0..array.len() {
                let item: Value = array.entry(i as isize)?;
                items.push(self.convert(item)?);
            }
            let node = V::seq(items);
            self.seen.insert(key, node.clone());
            return Ok(node);
        }
        if let (Some(hash), true) = (RHash::from_value(value), plain(self.ruby.class_hash())) {
            let mut pairs: Vec<(Value, Value)> = Vec::with_capacity(hash.len());
            hash.foreach(|k: Value, v: Value| {
                pairs.push((k, v));
                Ok(ForEach::Continue)
            })?;
            let mut map = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                let k = self.convert(k)?;
                let v = self.convert(v)?;
                map.insert(k, v);
            }
            let node = V::map(map);
            self.seen.insert(key, node.clone());
            return Ok(node);
        }
        let index = self.foreign.len() as u32;
        self.foreign.push(value)?;
        let node = V::Foreign(index);
        self.seen.insert(key, node.clone());
        Ok(node)
    }
}

pub struct ToRuby<'a> {
    ruby: &'a Ruby,
    foreign: RArray,
}

impl<'a> ToRuby<'a> {
    pub fn new(ruby: &'a Ruby, foreign: RArray) -> Self {
        ToRuby { ruby, foreign }
    }

    pub fn convert(&mut self, value: &V) -> Result<Value, Error> {
        let ruby = self.ruby;
        Ok(match value {
            V::Nil => ruby.qnil().as_value(),
            V::Bool(true) => ruby.qtrue().as_value(),
            V::Bool(false) => ruby.qfalse().as_value(),
            V::Int(i) => ruby.integer_from_i64(*i).as_value(),
            V::Float(f) => ruby.float_from_f64(*f).as_value(),
            V::Str(s) => ruby.str_new(s).as_value(),
            V::Sym(s) => ruby.to_symbol(s).as_value(),
            V::Foreign(i) => self.foreign.entry::<Value>(*i as isize)?,
            V::Seq(items) => {
                let array = ruby.ary_new_capa(items.len());
                for item in items.iter() {
                    array.push(self.convert(item)?)?;
                }
                array.as_value()
            }
            V::Map(map) => self.hash(map)?.as_value(),
            V::Object(object) => self.object(object)?,
        })
    }

    fn hash(&mut self, map: &Map) -> Result<RHash, Error> {
        let hash = self.ruby.hash_new();
        for (k, v) in map.iter() {
            hash.aset(self.convert(k)?, self.convert(v)?)?;
        }
        Ok(hash)
    }

    /// `KamalRs::YamlObject` prints as `!ruby/object:<class>` with the given instance variables.
    fn object(&mut self, object: &Object) -> Result<Value, Error> {
        let class: RClass = self
            .ruby
            .class_object()
            .const_get::<_, RModule>("KamalRs")?
            .const_get("YamlObject")?;
        let ivars = self.hash(&object.ivars)?;
        class.new_instance((self.ruby.str_new(&object.class), ivars))
    }
}
