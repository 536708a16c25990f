//! Architecture invariants (`docs/ARCHITECTURE.md`) checked on the source: no file of a crate
//! imports a file that imports it back, directly or through others. A circle makes every file in
//! it depend on all the others, so none can be understood, tested or moved alone.
//!
//! The reading is deliberately simple: a file's references are the `crate::…`, `super::…` and
//! child-module paths in its `use` declarations and its code, each resolved to the longest
//! module path that is a file of the crate. A file reaching the items of a module that contains
//! it (its parent, the crate root) is nesting, not an import: Rust's modules are built that
//! way, and such a reference is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod support;

/// The crates' source roots.
const CRATES: &[&str] = &[
    "descriptors/src",
    "planner/src",
    "drivers/src",
    "daemon/src",
    "daemon/api/src",
    "tui/src",
];

/// `a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; the crate root (`lib.rs`, `main.rs`) is empty.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    // A binary's modules (`main.rs` and below) are a crate of their own; `bin/` is not read.
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without comments and string literals (which may mention paths).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            c => out.push(c),
        }
    }
    out
}

/// Every path of a `use` tree (`a::{b, c::{d, self}}` → `a::b`, `a::c::d`, `a::c`).
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand_use)
        .map(|p| match p.as_str() {
            "self" => prefix.to_string(),
            _ if prefix.is_empty() => p,
            _ => format!("{prefix}::{p}"),
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths a file names, before resolution: `use` trees and `x::y` paths in code.
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if before.is_none_or(|c| !is_ident(c)) {
            paths.extend(expand_use(&after[..end]));
        }
        rest = &after[end.min(after.len())..];
    }
    // Paths in code: runs of `ident::ident::…`.
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':') {
            let start = i;
            while i < bytes.len() && (is_ident(bytes[i]) || bytes[i] == ':') {
                i += 1;
            }
            let run: String = bytes[start..i].iter().collect();
            if run.contains("::") {
                paths.push(run.trim_end_matches(':').to_string());
            }
        } else {
            i += 1;
        }
    }
    paths
}

/// The file a path leads to from `module`, if it is another file of the crate.
fn resolve(
    module: &[String],
    path: &str,
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segments.first()? {
        &"crate" => Vec::new(),
        &"super" => module[..module.len().saturating_sub(1)].to_vec(),
        &"self" => module.to_vec(),
        first if files.contains_key(&[module, &[first.to_string()]].concat()) => module.to_vec(),
        _ => return None,
    };
    let mut rest = &segments[..];
    if matches!(rest.first(), Some(&"crate" | &"self")) {
        rest = &rest[1..];
    }
    while rest.first() == Some(&"super") {
        base.pop();
        rest = &rest[1..];
    }
    let mut found = None;
    let mut current = base.clone();
    if files.contains_key(&current) {
        found = Some(current.clone());
    }
    for segment in rest {
        current.push(segment.to_string());
        if files.contains_key(&current) {
            found = Some(current.clone());
        } else {
            break;
        }
    }
    // Not itself, and not a module that contains it.
    found.filter(|f| f.as_slice() != module && !module.starts_with(f))
}

/// A circle in `edges`, as a list of files, if there is one.
fn find_circle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    return Some(stack[from..].to_vec());
                }
                Some(_) => {}
                None => {
                    if let Some(circle) = visit(next, edges, state, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node)
            && let Some(circle) = visit(node, edges, &mut state, &mut Vec::new())
        {
            return Some(circle);
        }
    }
    None
}

/// The file-level import graph of one crate (or a binary's tree under `main.rs`).
fn import_graph(root: &Path, binary: bool) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut paths = Vec::new();
    rust_files(root, &mut paths);
    let in_binary = |p: &Path| {
        let module = module_of(root, p);
        p.ends_with("main.rs") || module.first().is_some_and(|m| m == "cli")
    };
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .filter(|p| !root.ends_with("daemon/src") || in_binary(p) == binary)
        .filter(|p| !(binary && p.ends_with("lib.rs")))
        .map(|p| (module_of(root, p), p.clone()))
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, path) in &files {
        let code = code_only(&std::fs::read_to_string(path).unwrap());
        // Test modules may import anything of their file's parent.
        let code = code
            .split("#[cfg(test)]")
            .next()
            .unwrap_or(&code)
            .to_string();
        let targets = edges.entry(module.clone()).or_default();
        for named in named_paths(&code) {
            if let Some(target) = resolve(module, &named, &files) {
                targets.insert(target);
            }
        }
    }
    edges
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let repo = support::repo_root();
    let mut circles = Vec::new();
    for krate in CRATES {
        let root = repo.join(krate);
        let graphs = if *krate == "daemon/src" {
            vec![import_graph(&root, false), import_graph(&root, true)]
        } else {
            vec![import_graph(&root, false)]
        };
        for graph in graphs {
            assert!(graph.len() > 3, "{krate}: too few files read");
            if let Some(circle) = find_circle(&graph) {
                circles.push(format!(
                    "{krate}: {}",
                    circle
                        .iter()
                        .map(|m| if m.is_empty() {
                            "(root)".to_string()
                        } else {
                            m.join("::")
                        })
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reading_finds_a_circle_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n",
    )
    .unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::{self, Thing};\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub fn f() { crate::c::g(); }\n").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "// crate::a is only mentioned\nuse super::{a::X, d};\n",
    )
    .unwrap();
    std::fs::write(src.join("d.rs"), "\"crate::a\";\n").unwrap();
    let graph = import_graph(src, false);
    let circle = find_circle(&graph).expect("a -> b -> c -> a");
    assert_eq!(circle.len(), 3, "{circle:?}");
    std::fs::write(src.join("c.rs"), "use super::d;\n").unwrap();
    assert_eq!(find_circle(&import_graph(src, false)), None);
}

/// Library code reports typed errors (`thiserror`), never bare strings: a caller can tell one
/// failure from another, and the API can answer each with its own status.
#[test]
fn no_library_function_returns_a_string_error() {
    let repo = support::repo_root();
    let mut found = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&repo.join(krate), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if let Some(at) = line.find("Result<")
                    && line[at..].contains(", String>")
                {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "string errors:\n{}", found.join("\n"));
}
