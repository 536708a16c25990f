//! `apply` on a real terminal (tmux): the confirmation prompt and the progress bar.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{PLATFORM, Workspace};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(ws: &Workspace, command: &str) -> Tmux {
        // tmux turns `.` and `:` in session names into `_`; keep names it will not rewrite.
        let unique: String = ws
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let session = format!("platformd-test-{}-{unique}", std::process::id());
        let binary = env!("CARGO_BIN_EXE_platformd");
        let script = format!(
            "cd '{}' && '{binary}' {command}; echo EXIT=$?; sleep 30",
            ws.path().display()
        );
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "120",
                "-y",
                "40",
                &script,
            ])
            .status()
            .expect("tmux is installed (scripts/test.sh installs it)")
            .success();
        assert!(ok, "tmux session starts");
        Tmux { session }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-S", "-", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_line(&self, text: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.session, text, "Enter"])
            .status()
            .unwrap();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

fn stack(ws: &Workspace) {
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!("topic \"t{i}\" {{\n    team \"web\"\n}}\n"));
    }
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &text)]);
    ws.local_driver(&[("simulate-latency-ms", "30")]);
}

#[test]
fn apply_asks_on_a_terminal_and_shows_a_progress_bar() {
    let ws = Workspace::new();
    stack(&ws);
    let tmux = Tmux::start(&ws, "apply stack --parallelism 2");
    let screen = tmux.wait_for("Only 'yes' will be accepted:");
    assert!(
        screen.contains("20 to create"),
        "the plan is shown before the question:\n{screen}"
    );
    tmux.type_line("yes");
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("[##############################] 20/20"),
        "a finished progress bar:\n{screen}"
    );
    assert!(screen.contains("Apply succeeded: 20 applied"), "{screen}");
}

#[test]
fn anything_but_yes_cancels_and_changes_nothing() {
    let ws = Workspace::new();
    stack(&ws);
    let tmux = Tmux::start(&ws, "apply stack");
    tmux.wait_for("Only 'yes' will be accepted:");
    tmux.type_line("y");
    let screen = tmux.wait_for("EXIT=");
    assert!(
        screen.contains("Apply cancelled.") && screen.contains("EXIT=1"),
        "{screen}"
    );
    assert!(
        !ws.path().join(".platformd/rendered").exists(),
        "nothing was applied"
    );
}
