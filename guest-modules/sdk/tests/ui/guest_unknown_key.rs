#[hotswap_guest::guest(name = "g", version = "1.0.0", schema = 1, colour = "red")]
#[derive(Default)]
struct State;

fn main() {}
