//! The stack picker of a daemon that follows many stacks: its screen (TestBackend snapshot) and
//! its keys.

use api::{StackSummary, SyncState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui::app::Key;
use tui::picker::{Picked, Picker};

fn stacks() -> Vec<StackSummary> {
    vec![
        StackSummary {
            name: "prod-eu".into(),
            source: "https://github.com/acme/platform-state.git (main, path `stacks/prod-eu`)"
                .into(),
            sync_state: SyncState::Synced,
            applied_revision: Some("9f1c2d3e4f5a6b7c8d9e".into()),
            last_error: None,
            ready: true,
            owner: None,
        },
        StackSummary {
            name: "prod-us".into(),
            source: "https://github.com/acme/platform-state.git (main, path `stacks/prod-us`)"
                .into(),
            sync_state: SyncState::Unknown,
            applied_revision: None,
            last_error: None,
            ready: false,
            owner: Some("platformd-7d9f-x2".into()),
        },
        StackSummary {
            name: "staging".into(),
            source: "file:///nonexistent/remote.git (main, path `.`)".into(),
            sync_state: SyncState::Starting,
            applied_revision: None,
            last_error: Some("cannot reach file:///nonexistent/remote.git".into()),
            ready: false,
            owner: None,
        },
    ]
}

fn render(picker: &Picker) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 10)).unwrap();
    terminal.draw(|f| tui::picker::draw(f, picker)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    (0..10)
        .map(|y| {
            let line: String = (0..80)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            format!("{}\n", line.trim_end())
        })
        .collect()
}

#[test]
fn the_picker_lists_each_stack_with_its_state_and_owner() {
    let picker = Picker::new("https://platformd.acme.internal", stacks());
    insta::assert_snapshot!(render(&picker));
}

#[test]
fn arrows_choose_enter_opens_and_q_quits() {
    let mut picker = Picker::new("http://127.0.0.1:7070", stacks());
    assert_eq!(picker.on_key(Key::Up), None);
    assert_eq!(picker.selected, 0, "stays at the top");
    picker.on_key(Key::Down);
    picker.on_key(Key::Down);
    picker.on_key(Key::Down);
    assert_eq!(picker.selected, 2, "stays at the bottom");
    picker.on_key(Key::Char('k'));
    assert_eq!(
        picker.on_key(Key::Enter),
        Some(Picked::Open("prod-us".into()))
    );
    assert_eq!(picker.on_key(Key::Char('q')), Some(Picked::Quit));
    assert_eq!(picker.on_key(Key::Esc), Some(Picked::Quit));
    let mut empty = Picker::new("x", Vec::new());
    assert_eq!(empty.on_key(Key::Enter), None);
}
