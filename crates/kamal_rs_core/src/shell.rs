//! Kamal's value escaping and flag builders (`Kamal::Utils`, lib/kamal/utils.rb, Kamal 2.12.0). Every `docker` command and several
//! parts of `kamal config` go through these, so they follow Kamal 2.x to the byte.

use crate::value::Value;

/// `escape_shell_value`: ASCII runs become a Ruby `String#dump` (double-quoted, backslash escapes) with
/// backticks escaped and `$` escaped unless it opens a `${...}` group; non-ASCII runs stay raw.
pub fn escape_shell_value(value: &str) -> String {
    map_ascii_runs(
        value,
        |run| escape_dollars(&ruby_dump(run).replace('`', "\\`")),
        true,
    )
}

/// Kamal's escapers treat a value as maximal runs of ASCII and non-ASCII characters: `ascii` maps each
/// ASCII run, non-ASCII runs stay raw. `empty_run`: an empty value counts as one (empty) ASCII run.
pub fn map_ascii_runs(value: &str, ascii: impl Fn(&str) -> String, empty_run: bool) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    let mut run = String::new();
    let mut run_ascii = true;
    let flush = |out: &mut String, run: &str, is_ascii: bool| {
        out.push_str(&if is_ascii {
            ascii(run)
        } else {
            run.to_string()
        })
    };
    for ch in value.chars() {
        if ch.is_ascii() != run_ascii && !run.is_empty() {
            flush(&mut out, &run, run_ascii);
            run.clear();
        }
        run_ascii = ch.is_ascii();
        run.push(ch);
    }
    if !run.is_empty() || (value.is_empty() && empty_run) {
        flush(&mut out, &run, run_ascii);
    }
    out
}

/// Ruby's `String#dump` for an ASCII string.
pub fn ruby_dump(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0c => out.push_str("\\f"),
            0x0b => out.push_str("\\v"),
            0x08 => out.push_str("\\b"),
            0x07 => out.push_str("\\a"),
            0x1b => out.push_str("\\e"),
            b'#' if matches!(bytes.get(i + 1), Some(b'{' | b'$' | b'@')) => out.push_str("\\#"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out.push('"');
    out
}

/// `$` becomes `\$` unless it starts a `${...}` group that closes (`/\$(?!{[^\}]*\})/`).
fn escape_dollars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, ch) in s.char_indices() {
        if ch == '$' && !opens_brace_group(&s[i + 1..]) {
            out.push_str("\\$");
        } else {
            out.push(ch);
        }
    }
    out
}

fn opens_brace_group(rest: &str) -> bool {
    rest.strip_prefix('{')
        .is_some_and(|inner| inner.contains('}'))
}

/// `argumentize(flag, attrs)`: `flag key="escaped"` per pair; `false` gives `key=false`; a blank value
/// gives the bare key. A list of strings gives each string raw (that is how `--volume` is made).
pub fn argumentize(flag: &str, attrs: &Value) -> Vec<String> {
    argumentize_as(flag, attrs, Escaping::V2)
}

/// Which Kamal's `escape_shell_value` applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    V2,
    /// Kamal 1.9: the whole value `dump`ed (non-ASCII as `\uXXXX`), then backticks and `$`.
    V1,
}

impl Escaping {
    pub fn escape(self, value: &str) -> String {
        match self {
            Escaping::V2 => escape_shell_value(value),
            Escaping::V1 => escape_shell_value_v1(value),
        }
    }
}

/// Kamal 1.9's `escape_shell_value`: a plain `String#dump` (non-ASCII escaped), then the backtick and
/// `$` rules of 2.x.
pub fn escape_shell_value_v1(value: &str) -> String {
    let mut dumped = String::from("\"");
    let mut run = String::new();
    let flush = |dumped: &mut String, run: &mut String| {
        if !run.is_empty() {
            let d = ruby_dump(run);
            dumped.push_str(&d[1..d.len() - 1]);
            run.clear();
        }
    };
    for ch in value.chars() {
        if ch.is_ascii() {
            run.push(ch);
        } else {
            flush(&mut dumped, &mut run);
            let c = ch as u32;
            if c <= 0xFFFF {
                dumped.push_str(&format!("\\u{c:04X}"));
            } else {
                dumped.push_str(&format!("\\u{{{c:X}}}"));
            }
        }
    }
    flush(&mut dumped, &mut run);
    dumped.push('"');
    escape_dollars(&dumped.replace('`', "\\`"))
}

pub fn argumentize_as(flag: &str, attrs: &Value, escaping: Escaping) -> Vec<String> {
    let mut out = Vec::new();
    match attrs {
        Value::Map(map) => {
            for (k, v) in map.iter() {
                out.push(flag.to_string());
                out.push(argument(&k.to_ruby_s(), v, escaping));
            }
        }
        Value::Seq(items) => {
            for item in items.iter() {
                out.push(flag.to_string());
                out.push(item.to_ruby_s());
            }
        }
        Value::Nil => {}
        other => {
            out.push(flag.to_string());
            out.push(other.to_ruby_s());
        }
    }
    out
}

fn argument(key: &str, value: &Value, escaping: Escaping) -> String {
    if value.is_present() {
        format!("{key}={}", escaping.escape(&value.to_ruby_s()))
    } else if matches!(value, Value::Bool(false)) {
        format!("{key}=false")
    } else {
        key.to_string()
    }
}

/// `optionize(hash)`: `--key "escaped"`, a bare `--key` for `true`, arrays repeat the flag.
/// With `with = Some("=")`, `--key="escaped"` as one token.
pub fn optionize(pairs: &[(String, Value)], with: Option<&str>) -> Vec<String> {
    optionize_as(pairs, with, Escaping::V2)
}

pub fn optionize_as(
    pairs: &[(String, Value)],
    with: Option<&str>,
    escaping: Escaping,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        let values: Vec<&Value> = match value {
            Value::Seq(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values {
            match (v, with) {
                (Value::Bool(true), _) => out.push(format!("--{key}")),
                (Value::Nil, _) => {}
                (v, Some(sep)) => {
                    out.push(format!("--{key}{sep}{}", escaping.escape(&v.to_ruby_s())))
                }
                (v, None) => {
                    out.push(format!("--{key}"));
                    out.push(escaping.escape(&v.to_ruby_s()));
                }
            }
        }
    }
    out
}

/// Ruby's `Shellwords.escape`: a backslash before every character outside `[A-Za-z0-9_\-.,:+/@\n]`,
/// a newline as `'\n'`, and `''` for the empty string.
pub fn shellescape(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let mut out = String::with_capacity(s.len() * 2);
    for ch in s.chars() {
        match ch {
            '\n' => out.push_str("'\n'"),
            c if c.is_ascii_alphanumeric() || "_-.,:+/@".contains(c) => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;

    #[test]
    fn escapes_as_the_reference_table() {
        assert_eq!(escape_shell_value("plain"), r#""plain""#);
        assert_eq!(escape_shell_value("a b"), r#""a b""#);
        assert_eq!(escape_shell_value(r#"x"y"#), r#""x\"y""#);
        assert_eq!(escape_shell_value("$HOME"), r#""\$HOME""#);
        assert_eq!(escape_shell_value("${HOST_TOKEN}"), r#""${HOST_TOKEN}""#);
        assert_eq!(escape_shell_value("`id`"), r#""\`id\`""#);
        assert_eq!(escape_shell_value("café au lait"), r#""caf"é" au lait""#);
        assert_eq!(escape_shell_value("a\nb"), r#""a\nb""#);
        assert_eq!(escape_shell_value("#{x}"), r#""\#{x}""#);
        assert_eq!(escape_shell_value(""), r#""""#);
    }

    #[test]
    fn argumentize_follows_kamal() {
        let mut map = Map::new();
        map.set("max-size", Value::str("10m"));
        map.set("CLEAR_TAG", Value::str(""));
        map.set("off", Value::Bool(false));
        assert_eq!(
            argumentize("--log-opt", &Value::map(map)),
            vec![
                "--log-opt",
                r#"max-size="10m""#,
                "--log-opt",
                "CLEAR_TAG",
                "--log-opt",
                "off=false"
            ]
        );
        assert_eq!(
            argumentize("--volume", &Value::strs(&["/a:/b"])),
            vec!["--volume", "/a:/b"]
        );
    }

    #[test]
    fn optionize_follows_kamal() {
        let pairs = vec![
            ("log-driver".to_string(), Value::str("json-file")),
            ("init".to_string(), Value::Bool(true)),
            ("flag".to_string(), Value::Bool(false)),
        ];
        assert_eq!(
            optionize(&pairs, None),
            vec![
                "--log-driver",
                r#""json-file""#,
                "--init",
                "--flag",
                r#""false""#
            ]
        );
        assert_eq!(
            optionize(&pairs[..1], Some("=")),
            vec![r#"--log-driver="json-file""#]
        );
    }
}
