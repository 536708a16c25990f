//! Writes a synthetic stack: `gen-stack DIR N [SEED] [TEMPLATE_USES]` (see
//! `test_support::generate`); with TEMPLATE_USES, that many of the N resources are made by uses
//! of a template.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(n)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: gen-stack DIR RESOURCES [SEED] [TEMPLATE_USES]");
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(42);
    let uses: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    test_support::generate::write_files(
        std::path::Path::new(dir),
        test_support::generate::stack_files_with_uses(n, seed, uses),
    )
    .expect("write the stack");
    println!("wrote a {n}-resource stack to {dir}");
}
