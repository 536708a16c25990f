//! The terminal loop: raw mode and the alternate screen (restored on exit, panic and SIGTERM),
//! a fetch thread that refreshes the model every second, and actions run on their own thread,
//! so the screen never waits on the network.

use crate::app::{Action, App, Key};
use crate::model::Model;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub use crate::model::SourceError;

/// Where the data comes from and where actions go: the daemon's API, or a state directory.
pub trait Source: Send + Clone + 'static {
    fn fetch(&mut self) -> Result<Model, SourceError>;
    fn act(&mut self, action: &Action) -> Result<String, SourceError>;
    /// The plan a rollback to `revision` would apply (changes nothing).
    fn rollback_plan(&mut self, revision: &str) -> Result<api::Plan, SourceError>;
}

enum Update {
    Model(Box<Result<Model, SourceError>>),
    Done(Result<String, SourceError>),
    RollbackPlan(String, Box<Result<api::Plan, SourceError>>),
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

enum Input {
    Ready,
    Idle,
    /// The terminal hung up (its window or tmux session closed).
    Gone,
}

/// Waits for input on the terminal with poll(2). crossterm's own poll spins forever on a
/// hung-up terminal (reads return EOF at once), so waiting happens here and crossterm is only
/// asked for events that are ready.
fn wait_for_input(timeout: Duration) -> Input {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    if ready > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        Input::Gone
    } else if ready > 0 {
        Input::Ready
    } else {
        Input::Idle
    }
}

fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Key::Char('q'),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// The keys pressed that crossterm has ready (it may read several events at once).
fn pressed_keys() -> std::io::Result<Vec<Key>> {
    let mut keys = Vec::new();
    while event::poll(Duration::ZERO)? {
        if let Event::Key(k) = event::read()?
            && k.kind == KeyEventKind::Press
            && let Some(k) = key(k.code, k.modifiers)
        {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// Runs the UI until the operator quits (or SIGTERM/SIGHUP).
pub fn run<S: Source>(source: S, read_only: bool) -> std::io::Result<()> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_terminate as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGHUP,
            on_terminate as *const () as libc::sighandler_t,
        );
    }
    let (tx, rx) = mpsc::channel();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    {
        let (tx, stop, mut source) = (tx.clone(), stop.clone(), source.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if tx.send(Update::Model(Box::new(source.fetch()))).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
    }
    let mut terminal = ratatui::try_init()?;
    let mut app = App::new(Model::default(), read_only);
    app.message = Some("connecting…".into());
    let result = (|| -> std::io::Result<()> {
        loop {
            while let Ok(update) = rx.try_recv() {
                match update {
                    Update::Model(fetched) => match *fetched {
                        Ok(model) => {
                            app.model = model;
                            if app.message.as_deref() == Some("connecting…") {
                                app.message = None;
                            }
                        }
                        Err(e) => app.message = Some(format!("cannot refresh: {e}")),
                    },
                    Update::RollbackPlan(revision, plan) => {
                        app.show_rollback_plan(&revision, *plan)
                    }
                    Update::Done(Ok(m)) => app.message = Some(m),
                    Update::Done(Err(e)) => app.message = Some(format!("failed: {e}")),
                }
            }
            terminal.draw(|f| crate::ui::draw(f, &app))?;
            if TERMINATE.load(Ordering::SeqCst) {
                return Ok(());
            }
            match wait_for_input(Duration::from_millis(100)) {
                Input::Gone => return Ok(()),
                Input::Idle => continue,
                Input::Ready => {}
            }
            for k in pressed_keys()? {
                match app.on_key(k) {
                    Some(Action::Quit) => return Ok(()),
                    Some(Action::PreviewRollback(revision)) => {
                        let (tx, mut source) = (tx.clone(), source.clone());
                        std::thread::spawn(move || {
                            let plan = source.rollback_plan(&revision);
                            let _ = tx.send(Update::RollbackPlan(revision, Box::new(plan)));
                        });
                    }
                    Some(action) => {
                        app.message = Some("working…".into());
                        let (tx, mut source) = (tx.clone(), source.clone());
                        std::thread::spawn(move || {
                            let _ = tx.send(Update::Done(source.act(&action)));
                        });
                    }
                    None => {}
                }
            }
        }
    })();
    stop.store(true, Ordering::SeqCst);
    ratatui::restore();
    result
}

/// The stack picker of a daemon that follows many stacks: the stack chosen, or `None` when the
/// operator quit.
pub fn pick_stack(daemon: &str, stacks: Vec<api::StackSummary>) -> std::io::Result<Option<String>> {
    let mut picker = crate::picker::Picker::new(daemon, stacks);
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> std::io::Result<Option<String>> {
        loop {
            terminal.draw(|f| crate::picker::draw(f, &picker))?;
            if TERMINATE.load(Ordering::SeqCst) {
                return Ok(None);
            }
            match wait_for_input(Duration::from_millis(100)) {
                Input::Gone => return Ok(None),
                Input::Idle => continue,
                Input::Ready => {}
            }
            for k in pressed_keys()? {
                match picker.on_key(k) {
                    Some(crate::picker::Picked::Open(name)) => return Ok(Some(name)),
                    Some(crate::picker::Picked::Quit) => return Ok(None),
                    None => {}
                }
            }
        }
    })();
    ratatui::restore();
    result
}
