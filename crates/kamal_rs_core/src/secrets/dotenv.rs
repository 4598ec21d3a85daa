//! A `.env` parser with dotenv 3.2's rules, which Kamal 2 uses for `.kamal/secrets*` (`lib/kamal/secrets.rb`, Kamal 2.12.0; dotenv 3.2's `lib/dotenv/parser.rb`):
//! `[export ]KEY=value` or `KEY: value`, comments, single quotes literal, double quotes multi-line,
//! backslash escapes, then `$(command)` substitution and then `$VAR` / `${VAR}` interpolation against
//! the keys defined earlier in the same file and the process environment.

use std::sync::OnceLock;

use regex::Regex;

use crate::error::{Error, Result};

/// Runs the `$(...)` of a secrets file. Kamal serves `kamal secrets ...` in-process and runs every
/// other command with Ruby's backticks: the gem plugs in its Ruby handler (`lib/kamal_rs/secrets.rb`).
pub trait CommandSubstitution {
    /// Runs the command text (variables already expanded) and returns the text that replaces
    /// `$(...)` (Kamal's: the output chomped).
    fn run(&self, command: &str) -> Result<String>;
}

/// The core's own: `sh -c`, chomped. A failing command is not an error: its output (often empty)
/// is the value, and its stderr goes to the terminal.
pub struct ShellCommand;

impl CommandSubstitution for ShellCommand {
    fn run(&self, command: &str) -> Result<String> {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::runtime(format!("Could not run a secrets command: {e}")))?;
        Ok(chomp(&String::from_utf8_lossy(&output.stdout)).to_string())
    }
}

fn line_regex() -> &'static Regex {
    static LINE: OnceLock<Regex> = OnceLock::new();
    LINE.get_or_init(|| {
        Regex::new(
            // Ruby's `\s` is ASCII whitespace only (U+00A0 and U+3000 are not space to dotenv).
            &r#"(?m)(?:^|\A)\s*(?P<export>export\s+)?(?P<key>[A-Za-z0-9_.]+)(?:(?:\s*=\s*?|:\s+?)(?P<value>\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|[^#\n]+)?)?\s*(?:#.*)?(?:$|\z)"#
                .replace(r"\s", r"[\t\n\x0B\x0C\r ]"),
        )
        .expect("valid regex")
    })
}

/// Parses one file's text. `env` looks up the process environment (for tests, any function).
pub fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    commands: &dyn CommandSubstitution,
) -> Result<Vec<(String, String)>> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut vars: Vec<(String, String)> = Vec::new();
    for caps in line_regex().captures_iter(&text) {
        let key = caps["key"].to_string();
        let value = caps.name("value").map(|m| m.as_str());
        if caps.name("export").is_some() && value.is_none() {
            if !vars.iter().any(|(k, _)| *k == key) {
                return Err(Error::runtime(format!(
                    "Line {:?} has an unset variable",
                    caps.get(0).unwrap().as_str()
                )));
            }
            continue;
        }
        let parsed = parse_value(value.unwrap_or(""), &vars, env, commands)?;
        set(&mut vars, key, parsed);
    }
    Ok(vars)
}

fn set(vars: &mut Vec<(String, String)>, key: String, value: String) {
    if let Some(slot) = vars.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        vars.push((key, value));
    }
}

fn lookup(
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Option<String> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .or_else(|| env(name))
}

fn parse_value(
    raw: &str,
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    commands: &dyn CommandSubstitution,
) -> Result<String> {
    // Ruby's `strip`: ASCII whitespace and NUL, nothing else.
    let trimmed =
        raw.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r' | '\0'));
    let (mut value, quote) = strip_quotes(trimmed);
    if quote == Some('"') {
        value = if lookup(vars, env, "DOTENV_LINEBREAK_MODE").as_deref() == Some("legacy") {
            value.replace("\\n", "\n").replace("\\r", "\r")
        } else {
            // dotenv 3 keeps `\n` literal: the backslash is doubled here and undone by unescaping.
            value.replace("\\n", "\\\\n").replace("\\r", "\\\\r")
        };
    }
    if quote == Some('\'') {
        return Ok(value);
    }
    let value = unescape(&value);
    let value = substitute_commands(&value, vars, env, commands)?;
    Ok(substitute_variables(&value, vars, env))
}

fn strip_quotes(value: &str) -> (String, Option<char>) {
    let mut chars = value.chars();
    match (chars.next(), chars.next_back()) {
        (Some(first @ ('\'' | '"')), Some(last)) if first == last => {
            (value[1..value.len() - 1].to_string(), Some(first))
        }
        _ => (value.to_string(), None),
    }
}

/// `\x` becomes `x`, except `\$`, which the substitutions treat as "leave this literal".
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&next)) if next != '$' => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// `$(command)`, nested parentheses allowed; `\$(...)` stays literal without its backslash.
fn substitute_commands(
    value: &str,
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    commands: &dyn CommandSubstitution,
) -> Result<String> {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'$');
        let dollar = if escaped { i + 1 } else { i };
        if bytes[dollar] == b'$' && bytes.get(dollar + 1) == Some(&b'(') {
            if let Some(close) = matching_paren(bytes, dollar + 1) {
                let inner = &value[dollar + 2..close];
                if escaped {
                    out.push_str(&value[dollar..=close]);
                } else {
                    let command = substitute_variables(inner, vars, env);
                    out.push_str(&commands.run(&command)?);
                }
                i = close + 1;
                continue;
            }
        }
        let ch = value[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    Ok(out)
}

/// The index of the `)` closing the `(` at `open`, if the group is balanced and not empty. A
/// backslash takes the next character as it is (Kamal's `InlineCommandSubstitution` pattern).
fn matching_paren(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (j, &b) in bytes.iter().enumerate().skip(open) {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if j > open => escaped = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return (j > open + 1).then_some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn chomp(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .or_else(|| s.strip_suffix('\r'))
        .unwrap_or(s)
}

/// `$VAR` and `${VAR}` from the file so far, then the environment, else empty; `\$VAR` stays literal.
fn substitute_variables(
    value: &str,
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'$');
        let dollar = if escaped { i + 1 } else { i };
        if bytes[dollar] == b'$' && bytes.get(dollar + 1) != Some(&b'(') {
            let mut j = dollar + 1;
            if bytes.get(j) == Some(&b'{') {
                j += 1;
            }
            let name_start = j;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let name = &value[name_start..j];
            if bytes.get(j) == Some(&b'}') {
                j += 1;
            }
            if escaped {
                out.push_str(&value[dollar..j]);
            } else if !name.is_empty() {
                out.push_str(&lookup(vars, env, name).unwrap_or_default());
            } else {
                out.push_str(&value[dollar..j]);
            }
            i = j;
            continue;
        }
        let ch = value[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl CommandSubstitution for Echo {
        fn run(&self, command: &str) -> Result<String> {
            Ok(format!("<{command}>"))
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "HOME_DIR").then(|| "/home/me".to_string())
    }

    fn p(text: &str) -> Vec<(String, String)> {
        parse(text, &env, &Echo).unwrap()
    }

    fn get(vars: &[(String, String)], key: &str) -> String {
        vars.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn plain_quoted_and_commented_lines() {
        let vars = p("A=1\nexport B = two # note\nC: three\nD='$A literal'\nE=\"x $A ${A}\"\n# comment\nF=\n");
        assert_eq!(get(&vars, "A"), "1");
        assert_eq!(get(&vars, "B"), "two");
        assert_eq!(get(&vars, "C"), "three");
        assert_eq!(get(&vars, "D"), "$A literal");
        assert_eq!(get(&vars, "E"), "x 1 1");
        assert_eq!(get(&vars, "F"), "");
    }

    #[test]
    fn double_quotes_span_lines_and_keep_backslash_n() {
        let vars = p("KEY=\"-----BEGIN\nline2\n-----END\"\nN=\"a\\nb\"\nT=a\\tb\n");
        assert_eq!(get(&vars, "KEY"), "-----BEGIN\nline2\n-----END");
        assert_eq!(get(&vars, "N"), "a\\nb");
        assert_eq!(get(&vars, "T"), "atb");
    }

    #[test]
    fn commands_then_variables() {
        let vars = p("U=me\nX=$(echo $U)\nY=\\$(not run)\nZ=$HOME_DIR/x\nW=\\$U\nM=$MISSING.\n");
        assert_eq!(get(&vars, "X"), "<echo me>");
        assert_eq!(get(&vars, "Y"), "$(not run)");
        assert_eq!(get(&vars, "Z"), "/home/me/x");
        assert_eq!(get(&vars, "W"), "$U");
        assert_eq!(get(&vars, "M"), ".");
    }

    #[test]
    fn nested_parentheses_in_commands() {
        let vars = p("X=$(echo $(inner))\n");
        assert_eq!(get(&vars, "X"), "<echo $(inner)>");
    }

    #[test]
    fn export_without_value_needs_an_earlier_definition() {
        assert!(parse("export NOPE\n", &env, &Echo).is_err());
        assert_eq!(get(&p("A=1\nexport A\n"), "A"), "1");
    }

    #[test]
    fn only_ascii_whitespace_is_trimmed_as_ruby_strips() {
        let vars = p("NBSP=\u{a0}x\u{a0}\nIDEO=\u{3000}y\u{3000}\nTAB=\tt\t\nVT=\x0bv\x0b\n");
        assert_eq!(get(&vars, "NBSP"), "\u{a0}x\u{a0}");
        assert_eq!(get(&vars, "IDEO"), "\u{3000}y\u{3000}");
        assert_eq!(get(&vars, "TAB"), "t");
        assert_eq!(get(&vars, "VT"), "v");
    }

    #[test]
    fn a_backslash_in_a_command_takes_the_next_parenthesis_as_it_is() {
        // After unescaping, `\\(` is `\(`: a parenthesis the command group does not count.
        let vars = p("X=$(echo \\\\(a\\\\))\n");
        assert_eq!(get(&vars, "X"), "<echo \\(a\\)>");
    }

    #[test]
    fn the_runner_gives_the_final_text_and_the_shell_runner_chomps_once() {
        let vars = parse("X=$(printf a; echo; echo)\n", &env, &ShellCommand).unwrap();
        assert_eq!(get(&vars, "X"), "a\n");
    }
}
