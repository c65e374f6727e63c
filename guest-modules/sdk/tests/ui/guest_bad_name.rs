#[hotswap_guest::guest(name = "My Guest", version = "1.0.0", schema = 1)]
#[derive(Default)]
struct State;

fn main() {}
