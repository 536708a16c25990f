//! Writes a synthetic stack: `gen-stack DIR N [SEED]` (see `test_support::generate`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(n)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: gen-stack DIR RESOURCES [SEED]");
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(42);
    test_support::generate::write_stack(std::path::Path::new(dir), n, seed)
        .expect("write the stack");
    println!("wrote a {n}-resource stack to {dir}");
}
