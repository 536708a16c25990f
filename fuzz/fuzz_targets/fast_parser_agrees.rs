//! The fast KDL parser and the reference (`kdl` crate) agree: whatever the fast parser accepts,
//! the reference accepts with the same tree (names, values, every token span).
#![no_main]

use libfuzzer_sys::fuzz_target;
use planner::source::{FileId, Span};
use planner::syntax::{self, Node};

fn strip_node_spans(nodes: &mut [Node]) {
    for n in nodes {
        n.span = Span::new(FileId(0), 0, 0);
        strip_node_spans(&mut n.children);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(mut fast) = syntax::parse_fast(FileId(0), text) else {
        return;
    };
    let mut reference = match syntax::parse_with_reference(FileId(0), text) {
        Ok(nodes) => nodes,
        Err(e) => panic!(
            "the fast parser accepted what the reference rejects ({}): {text:?}",
            e[0].message
        ),
    };
    strip_node_spans(&mut fast);
    strip_node_spans(&mut reference);
    assert_eq!(fast, reference, "trees differ for {text:?}");
});
