//! How the binary's output looks: colour on or off per stream, and file names relative to where
//! the user ran the command. Used by every command module; imports none of them.

use crate::ColorChoice;
use planner::diagnostic::Colour;
use std::io::IsTerminal;
use std::path::Path;

/// Whether to colour stdout and stderr.
#[derive(Clone, Copy)]
pub struct Colours {
    pub stdout: bool,
    pub stderr: bool,
}

pub fn colour_enabled(choice: ColorChoice) -> Colours {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => Colours {
            stdout: true,
            stderr: true,
        },
        ColorChoice::Never => Colours {
            stdout: false,
            stderr: false,
        },
        ColorChoice::Auto => Colours {
            stdout: !no_color && std::io::stdout().is_terminal(),
            stderr: !no_color && std::io::stderr().is_terminal(),
        },
    }
}

pub fn paint(colours: Colours, code: &str, text: &str) -> String {
    if colours.stderr {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub(super) fn diag_colour(colours: Colours) -> Colour {
    if colours.stderr {
        Colour::Always
    } else {
        Colour::Never
    }
}

/// How diagnostics name files: relative to where the user ran the command.
pub(super) fn display_root(stack: &Path) -> String {
    let s = stack.to_string_lossy().trim_end_matches('/').to_string();
    if s == "." || s.is_empty() {
        String::new()
    } else {
        s
    }
}
