#[hotswap_guest::guest(name = "g", version = "1.0", schema = 1)]
#[derive(Default)]
struct State;

fn main() {}
