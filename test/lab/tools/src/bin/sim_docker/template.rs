//! The part of Go's text/template that docker's `--format` uses in Kamal's and kamal_rs's commands:
//! fields (`.Config.Labels.service`), `index X 0` / `index X "key"`, `json X`, `if` / `else` / `end`.
//! Values are JSON; a missing field prints `<no value>`, as Go's templates do for maps.

use serde_json::Value;

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Vec<String>),
    If(Vec<String>, Vec<Node>, Vec<Node>),
}

pub fn render(template: &str, data: &Value) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let (nodes, rest) = parse(&tokens, 0)?;
    if rest != tokens.len() {
        return Err(format!(
            "template: :1: unexpected {{{{{}}}}}",
            describe(&tokens[rest])
        ));
    }
    let mut out = String::new();
    eval(&nodes, data, &mut out)?;
    Ok(out)
}

#[derive(Debug, Clone)]
enum Token {
    Text(String),
    Action(Vec<String>),
}

fn describe(t: &Token) -> String {
    match t {
        Token::Text(s) => s.clone(),
        Token::Action(words) => words.join(" "),
    }
}

fn tokenize(template: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            tokens.push(Token::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or("template: :1: unclosed action")?;
        tokens.push(Token::Action(words(after[..j].trim())));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_string()));
    }
    Ok(tokens)
}

/// An action's words; a double-quoted string is one word (quotes kept).
fn words(action: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut w = String::from('"');
            chars.next();
            for c in chars.by_ref() {
                w.push(c);
                if c == '"' {
                    break;
                }
            }
            out.push(w);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(w);
        }
    }
    out
}

/// Nodes up to an `else` or `end` (not consumed), and the index reached.
fn parse(tokens: &[Token], mut i: usize) -> Result<(Vec<Node>, usize), String> {
    let mut nodes = Vec::new();
    while i < tokens.len() {
        match &tokens[i] {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Action(w) if w.first().map(String::as_str) == Some("if") => {
                let (then, j) = parse(tokens, i + 1)?;
                let (otherwise, k) = match tokens.get(j) {
                    Some(Token::Action(e)) if e == &["else"] => parse(tokens, j + 1)?,
                    _ => (Vec::new(), j),
                };
                match tokens.get(k) {
                    Some(Token::Action(e)) if e == &["end"] => {}
                    _ => return Err("template: :1: unexpected EOF".into()),
                }
                nodes.push(Node::If(w[1..].to_vec(), then, otherwise));
                i = k;
            }
            Token::Action(w) if w == &["else"] || w == &["end"] => return Ok((nodes, i)),
            Token::Action(w) => nodes.push(Node::Action(w.clone())),
        }
        i += 1;
    }
    Ok((nodes, i))
}

fn eval(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(words) => {
                let v = pipeline(words, data)?;
                out.push_str(&print(&v));
            }
            Node::If(cond, then, otherwise) => {
                let v = pipeline(cond, data)?;
                eval(if truthy(&v) { then } else { otherwise }, data, out)?;
            }
        }
    }
    Ok(())
}

fn pipeline(words: &[String], data: &Value) -> Result<Value, String> {
    match words.first().map(String::as_str) {
        Some("json") => {
            let v = pipeline(&words[1..], data)?;
            Ok(Value::String(serde_json::to_string(&v).unwrap_or_default()))
        }
        Some("index") => {
            let mut v = operand(words.get(1).ok_or("index needs arguments")?, data)?;
            for key in &words[2..] {
                v = if let Some(s) = key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                    v.get(s).cloned().unwrap_or(Value::Null)
                } else {
                    let n: usize = key.parse().map_err(|_| format!("bad index {key}"))?;
                    match v.get(n) {
                        Some(x) => x.clone(),
                        None => {
                            return Err(format!(
                                "template: :1:2: executing \"\" at <{}>: error calling index: reflect: slice index out of range",
                                words.join(" ")
                            ))
                        }
                    }
                };
            }
            Ok(v)
        }
        Some(w) => operand(w, data),
        None => Ok(Value::Null),
    }
}

fn operand(word: &str, data: &Value) -> Result<Value, String> {
    if let Some(s) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        return Ok(Value::String(s.to_string()));
    }
    if word == "." {
        return Ok(data.clone());
    }
    let Some(path) = word.strip_prefix('.') else {
        return Err(format!("template: :1: function \"{word}\" not defined"));
    };
    let mut v = data;
    for part in path.split('.') {
        match v.get(part) {
            Some(x) => v = x,
            None => return Ok(Value::Null),
        }
    }
    Ok(v.clone())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty() && s != "<no value>",
        Value::Array(a) => !a.is_empty(),
        // A JSON object stands for a Go struct (pointer): present is true.
        Value::Object(_) => true,
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

fn print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(print).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_formats_kamal_uses() {
        let c = json!({"Config": {"Image": "reg/app:v1", "Labels": {"service": "app"}},
                       "State": {"Running": true, "Status": "running"},
                       "NetworkSettings": {"Networks": {"kamal": {}}}});
        assert_eq!(render("{{ .Config.Labels.service }}", &c).unwrap(), "app");
        assert_eq!(
            render("{{.State.Running}}/{{if index .NetworkSettings.Networks \"kamal\"}}kamal{{end}} {{.Config.Image}}", &c).unwrap(),
            "true/kamal reg/app:v1"
        );
        assert_eq!(
            render(
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                &c
            )
            .unwrap(),
            "running"
        );
        assert_eq!(render("{{json .State.Health}}", &c).unwrap(), "null");
        assert_eq!(render("{{.Config.Labels.nope}}", &c).unwrap(), "<no value>");
        let info = json!({"RegistryConfig": {"Mirrors": []}});
        assert!(render("{{index .RegistryConfig.Mirrors 0}}", &info)
            .unwrap_err()
            .contains("error calling index: reflect: slice index out of range"));
        assert_eq!(
            render(
                "{{.Names}} {{.State}}",
                &json!({"Names": "a", "State": "exited"})
            )
            .unwrap(),
            "a exited"
        );
    }
}
