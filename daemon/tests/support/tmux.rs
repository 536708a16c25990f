//! A terminal in tmux for end-to-end UI tests: start a command in a detached session of 100×30,
//! read the screen, send keys.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux(pub String);

impl Tmux {
    pub fn start(name: &str, dir: &std::path::Path, command: &str) -> Tmux {
        let session = format!("platformd-tui-{}-{name}", std::process::id());
        let script = format!(
            "cd '{}' && {command}; echo EXIT=$?; sleep 30",
            dir.display()
        );
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "100",
                "-y",
                "30",
                &script,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        Tmux(session)
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(
            &Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &self.0])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    }

    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            assert!(Instant::now() < deadline, "`{needle}` never appeared:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_gone(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.screen().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "`{needle}` never went away:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.0, keys])
            .status()
            .unwrap();
    }

    /// Whether the pane is still in the alternate screen (the UI did not restore the terminal).
    pub fn alternate(&self) -> bool {
        let out = Command::new("tmux")
            .args(["display", "-p", "-t", &self.0, "#{alternate_on}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    pub fn pane_pid(&self) -> i32 {
        let out = Command::new("tmux")
            .args(["display", "-p", "-t", &self.0, "#{pane_pid}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}
