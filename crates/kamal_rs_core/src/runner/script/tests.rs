//! Scripts run through `sh`: markers printed then parsed back, gates, interrupts, guards.

use super::*;

#[test]
fn every_mark_is_printed_then_parsed_back() {
    for mark in Mark::ALL {
        let echo = mark.echo_with("v1 2");
        // What `echo "..."` prints: the text between the quotes.
        let printed = echo
            .strip_prefix("echo \"")
            .and_then(|s| s.strip_suffix('"'))
            .unwrap();
        assert_eq!(Mark::parse(printed), Some((mark, "v1 2")), "{echo}");
        let bare = mark.echo();
        let printed = &bare[6..bare.len() - 1];
        assert_eq!(Mark::parse(printed), Some((mark, "")), "{bare}");
    }
    let names: std::collections::HashSet<&str> = Mark::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(names.len(), Mark::ALL.len(), "mark names are distinct");
    assert_eq!(Mark::parse("kamal-rs:nonsense x"), None);
    assert_eq!(Mark::parse("app v1"), None);
}

#[test]
fn every_exit_code_is_its_own() {
    let codes: std::collections::HashSet<i32> = Exit::ALL.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), Exit::ALL.len(), "exit codes are distinct");
    for exit in Exit::ALL {
        assert_eq!(Exit::of(Some(exit.code())), Some(exit));
    }
    assert_eq!(Exit::of(Some(0)), None);
    assert_eq!(Exit::of(Some(1)), None);
    assert_eq!(Exit::of(None), None);
}

/// Runs `script` with `sh -c`, `input` on its stdin: (exit status, stdout).
fn sh_with_stdin(script: &str, input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code(), stdout)
}

#[test]
fn the_gate_goes_on_or_halts() {
    let script = format!("{}\necho booted", gate().text());
    let (code, out) = sh_with_stdin(&script, "go\nENV=1\n");
    let waits = "kamal-rs:ready\nkamal-rs:wait pull-barrier\n";
    assert_eq!((code, out), (Some(0), format!("{waits}booted\n")));
    let (code, out) = sh_with_stdin(&script, "stop\n");
    assert_eq!((code, out), (Some(85), format!("{waits}kamal-rs:halted\n")));
    let (code, _) = sh_with_stdin(&script, "");
    assert_eq!(code, Some(85), "stdin closed: no boot");
}

/// After its boot a script says so and tags only on `go`; without it, it ends with 85.
#[test]
fn the_booted_gate_tags_or_halts() {
    let script = format!("{}\necho tagged", booted_gate(false).text());
    let (code, out) = sh_with_stdin(&script, "go\n");
    let waits = "kamal-rs:booted\nkamal-rs:wait tag-wait\n";
    assert_eq!((code, out), (Some(0), format!("{waits}tagged\n")));
    let (code, out) = sh_with_stdin(&script, "");
    assert_eq!((code, out), (Some(85), format!("{waits}kamal-rs:halted\n")));
    assert_eq!(Exit::of(code).map(Exit::step), Some(Step::Halt));
    // Announced by the boot already: only the wait.
    let script = format!("{}\necho tagged", booted_gate(true).text());
    let (code, out) = sh_with_stdin(&script, "go\n");
    assert_eq!(
        (code, out),
        (Some(0), "kamal-rs:wait tag-wait\ntagged\n".to_string())
    );
}

/// SIGTERM while the lock is taken waits until the script has said so, then ends it.
#[test]
fn an_interrupt_while_taking_the_lock_waits_for_the_locked_mark() {
    let script = format!(
        "{}\n{}\necho after",
        interruptible(),
        holding_interrupts("kill -TERM $$; sleep 0.2; echo \"kamal-rs:locked\"")
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("kamal-rs:locked\nkamal-rs:interrupted"),
        "{stdout}"
    );
    assert!(!stdout.contains("after"));
}

/// SIGTERM during a waited command ends the script at once, the command stopped with it.
#[test]
fn an_interrupt_stops_a_waited_command_at_once() {
    let script = format!("{}\n{}\necho after", interruptible(), waited("sleep 30"));
    let started = std::time::Instant::now();
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        Mark::Interrupted.seen(&stdout) && !stdout.contains("after"),
        "{stdout}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "not waiting for the command"
    );
}

/// Each shown command says when it starts and how it ended, ids stay right when parts are
/// appended or wrapped, a guard still sees the command's own status, and a command after the one
/// that failed never says it started.
#[test]
fn shown_commands_mark_their_start_and_end() {
    let mut first = Script::new();
    first.run(Shown::info(Phase::Pull, "echo one"), "echo one");
    let mut second = Script::new();
    let failing = second.marked(Shown::info(Phase::Boot, "sh -c 'exit 3'"), "sh -c 'exit 3'");
    second.line(guard(&failing, Exit::Run));
    second.run(Shown::info(Phase::Boot, "echo never"), "echo never");
    let mut s = Script::new();
    s.append(first.map(|t| format!("( {t} )")));
    s.append(second);
    assert_eq!(s.shown.len(), 3);
    let text = s.text();
    assert!(text.starts_with(PROLOGUE), "{text}");
    assert!(
        text.contains("kamal-rs:start 1\"; sh -c 'exit 3'; kamal_rs_end 1 $?"),
        "{text}"
    );
    let (code, out) = sh_with_stdin(&text, "");
    assert_eq!(code, Some(72));
    let marks: Vec<(Mark, &str)> = out.lines().filter_map(Mark::parse).collect();
    assert_eq!(
        marks,
        [
            (Mark::Start, "0"),
            (Mark::End, "0 0"),
            (Mark::Start, "1"),
            (Mark::End, "1 3"),
            (Mark::Failed, "3"),
        ],
        "{out}"
    );
    assert!(out.contains("one\n"));
}

#[test]
fn a_guarded_part_reports_its_status_and_exits_with_its_code() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{}\necho after", guard("false", Exit::Pull)))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(Mark::Failed.find(&stdout), Some("1"));
    assert!(!stdout.contains("after"));
}
