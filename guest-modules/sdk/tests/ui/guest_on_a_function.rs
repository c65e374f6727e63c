#[hotswap_guest::guest(name = "g", version = "1.0.0", schema = 1)]
fn not_a_state() {}

fn main() {}
