//! Shared test support for platformd's test suites and benchmarks: real git repositories
//! built with the `git` CLI, and a generator of synthetic stacks of any size.

pub mod bench;
pub mod generate;
pub mod git;
pub mod http;

/// Copies a directory tree (test fixtures and example stacks into scratch directories).
pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).expect("create directory");
    for e in std::fs::read_dir(src).expect("read directory") {
        let e = e.expect("directory entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).expect("copy file");
        }
    }
}
