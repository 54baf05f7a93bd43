//! The `daemonic` command-line tool.

fn main() {
    println!("daemonic");
}
