//! Helpers shared by the tests that change stacks at random.

/// A small deterministic generator: every run of a test makes the same changes.
pub use planner::testing::Lcg;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "\"",
    "=",
    "#true",
    "-1",
    "9999999999999999999999999",
    "/",
    ".",
    "\n",
    "é",
    "\u{feff}",
    "(t)",
    "r#\"",
    ";",
    "0x",
    "1e999",
    "#nan",
    "service",
    "depends-on \"service/a\"",
    "from=\"x/y.z\"",
];

pub fn mutate(text: &str, rng: &mut Lcg) -> String {
    let mut s = text.to_string();
    for _ in 0..1 + rng.below(4) {
        let mut pos = rng.below(s.len() + 1);
        while !s.is_char_boundary(pos) {
            pos -= 1;
        }
        match rng.below(4) {
            0 => s.insert_str(pos, TOKENS[rng.below(TOKENS.len())]),
            1 => {
                let mut end = (pos + 1 + rng.below(20)).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                s.replace_range(pos..end, "");
            }
            2 => s.truncate(pos),
            _ => {
                let mut end = (pos + rng.below(60)).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                let chunk = s[pos..end].to_string();
                s.insert_str(pos, &chunk);
            }
        }
    }
    s
}
